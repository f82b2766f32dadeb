"""Withdrawing one entry, with a reason: in Python, over the API, on the command line and on the
set's page. Afterwards the entry no longer matches anywhere, stays on record as withdrawn, the
change log says so (followers drop it), and the audit log keeps who withdrew it and why."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from meldpunt import registry
from meldpunt.audit_verify import verify_all
from meldpunt.store.models import AuditEvent
from service import World, running
from web_support import csrf_of, sign_in


def md5() -> str:
    return secrets.token_hex(16)


def withdrawals(session) -> list[tuple[str, str | None, dict]]:
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "registry.item.withdrawn")
        .order_by(AuditEvent.id)
    )  # fmt: skip
    return [(e.actor, e.subject_id, json.loads(e.details)) for e in events]


def test_a_withdrawal_needs_a_reason_and_is_a_numbered_change(session):
    police = registry.create_set(session, "police")
    other = registry.create_set(session, "other")
    value = md5()
    item = registry.add_item(session, police, [("md5", value)]).item
    for reason in ("", "   ", "bad\x00text", "x" * 2001):
        with pytest.raises(registry.InvalidInput):
            registry.withdraw_item(session, item.id, reason=reason)
    with pytest.raises(registry.NotFound):
        registry.withdraw_item(session, item.id, reason="wrong set", hash_set=other)
    before = registry.current_seq(session)

    info = registry.withdraw_item(session, item.id, reason=" wrongly classified ",
                                  hash_set="police", actor="analyst:7")  # fmt: skip
    session.commit()
    assert info.status == "withdrawn"
    (change,) = registry.changes_since(session, before)
    assert (change.action, change.item_id, change.value, change.reason) == (
        "remove", item.id, value, "withdrawn")  # fmt: skip
    ((actor, subject, details),) = withdrawals(session)
    assert (actor, subject) == ("analyst:7", str(item.id))
    assert details["reason"] == "wrongly classified" and details["from"] == "active"
    assert (details["first_seq"], details["last_seq"]) == (change.seq, change.seq)
    # again: nothing changes, nothing is recorded
    registry.withdraw_item(session, item.id, reason="once more")
    session.commit()
    assert len(withdrawals(session)) == 1 and registry.current_seq(session) == change.seq
    assert verify_all(session).ok


def test_a_disabled_entry_can_be_withdrawn_and_the_log_says_so(session):
    police = registry.create_set(session, "police")
    item = registry.add_item(session, police, [("md5", md5())]).item
    registry.disable_item(session, item.id)
    before = registry.current_seq(session)
    registry.withdraw_item(session, item.id, reason="the source took it back")
    session.commit()
    assert [c.reason for c in registry.changes_since(session, before)] == ["withdrawn"]
    assert registry.get_item(session, item.id).status == "withdrawn"


def entry_of(world: World, value: str) -> int:
    with world.session() as session:
        (item,) = registry.find_items(session, "md5", value)
        return item.id


def matches(client, value: str) -> bool:
    body = {"items": [{"signals": [{"type": "md5", "value": value}]}]}
    answer = client.post("/v1/check", json=body)
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["results"][0]["match"])


def until_no_match(world: World, value: str) -> None:
    with world.client("platform") as platform:
        deadline = time.monotonic() + 10
        while matches(platform, value):
            assert time.monotonic() < deadline, "the withdrawal did not reach checks"
            time.sleep(0.1)


def test_withdraw_over_the_api(db_url):
    with running(db_url) as world:
        entry = entry_of(world, world.known_md5)
        path = f"/v1/sets/police/items/{entry}/withdraw"
        with world.client("platform") as platform:
            assert matches(platform, world.known_md5)
            assert platform.post(path, json={"reason": "x"}).status_code == 403
        with world.client("analyst") as analyst:
            missing = analyst.post(path, json={})
            assert missing.status_code == 422 and "reason" in missing.json()["error"]["message"]
            blank = analyst.post(path, json={"reason": "  "})
            assert blank.status_code == 400 and "reason" in blank.json()["error"]["message"]
            elsewhere = analyst.post(f"/v1/sets/nope/items/{entry}/withdraw", json={"reason": "x"})
            assert elsewhere.status_code == 404
            done = analyst.post(path, json={"reason": "a known false positive"})
            assert done.status_code == 200, done.text
            assert done.json()["status"] == "withdrawn" and done.json()["id"] == entry
        until_no_match(world, world.known_md5)
        with world.session() as session:
            ((actor, subject, details),) = withdrawals(session)
            assert actor.startswith("key:") and subject == str(entry)
            assert details["reason"] == "a known false positive"


def test_withdraw_on_the_set_page_with_and_without_htmx(db_url):
    with running(db_url) as world:
        first = entry_of(world, world.known_md5)
        with world.session() as session:
            second = registry.add_item(session, "police", [("md5", md5())]).item
            session.commit()
        with sign_in(world, "analyst") as browser:
            page = browser.get("/ui/sets/police")
            assert f'action="/ui/sets/police/entries/{first}/withdraw"' in page.text
            form = {"csrf": csrf_of(page.text), "reason": "wrongly classified"}
            # without JavaScript: a plain form post, then back to the set's page
            plain = browser.post(f"/ui/sets/police/entries/{first}/withdraw", data=form)
            assert plain.status_code == 303 and plain.headers["location"] == "/ui/sets/police"
            shown = browser.get("/ui/sets/police").text
            assert f"Entry {first} withdrawn" in shown
            # with htmx: the row comes back to be swapped in, without the form
            row = browser.post(f"/ui/sets/police/entries/{second.id}/withdraw", data=form,
                               headers={"HX-Request": "true"})  # fmt: skip
            assert row.status_code == 200 and row.text.startswith(f'<tr id="entry-{second.id}">')
            assert "withdrawn" in row.text and "<form" not in row.text
            # no reason: refused, nothing changes
            third = registry_entry(world)
            empty = browser.post(f"/ui/sets/police/entries/{third}/withdraw",
                                 data={**form, "reason": ""})  # fmt: skip
            assert empty.status_code == 400 and "needs a reason" in empty.text
        until_no_match(world, world.known_md5)
        with world.session() as session:
            assert [s for _, s, _ in withdrawals(session)] == [str(first), str(second.id)]
            assert registry.get_item(session, third).status == "active"


def registry_entry(world: World) -> int:
    with world.session() as session:
        item = registry.add_item(session, "police", [("md5", md5())]).item
        session.commit()
        return item.id


def test_withdraw_on_the_command_line_and_match_no_longer_finds_it(cli_db, session):
    from meldpunt.cli import app

    value = md5()
    police = registry.create_set(session, "police")
    item = registry.add_item(session, police, [("md5", value)]).item
    session.commit()
    runner = CliRunner()

    def match() -> list[dict]:
        result = runner.invoke(app, ["match", "--signal", f"md5:{value}", "-f", "jsonl"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output.splitlines()[0])["matches"]

    assert len(match()) == 1
    refused = runner.invoke(app, ["sets", "withdraw", "police", str(item.id), "--reason", " "])
    assert refused.exit_code == 1 and "needs a reason" in refused.output
    done = runner.invoke(app, ["sets", "withdraw", "police", str(item.id),
                               "--reason", "wrongly classified"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert f"police: entry {item.id} withdrawn" in done.output
    assert match() == []
    exported = runner.invoke(app, ["sets", "export", "police", "-", "--format", "jsonl"]).output
    (line,) = [json.loads(line) for line in exported.splitlines() if line.startswith("{")]
    assert line["status"] == "withdrawn"  # still on record
    session.expire_all()
    ((actor, _, details),) = withdrawals(session)
    assert actor == "cli" and details["reason"] == "wrongly classified"
