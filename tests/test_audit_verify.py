"""`meldpunt audit verify`: the chain, and the rows people could dispute, checked against it.

Each test builds a small registry with hits and keys through meldpunt, then changes one thing
directly in SQL, as someone with database access but without meldpunt would, and expects the
check to name the table, the row and the field set."""

from __future__ import annotations

import io
import json
import secrets

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from meldpunt import checks, registry
from meldpunt.audit_verify import verify_all
from meldpunt.cli.audit import audit_app


def md5() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def world(session, settings):
    """A set with an imported batch, a single entry, a withdrawn one; hits with and without an
    outcome; two keys, one revoked."""
    police = registry.create_set(session, "police", default_category="csam_baseline")
    single = registry.add_item(session, police, [("md5", md5()), ("pdq", secrets.token_hex(32))])
    gone = registry.add_item(session, police, [("md5", md5())]).item
    registry.withdraw_item(session, gone.id, reason="wrongly classified by the source")
    session.commit()
    lines = [{"signals": [["md5", md5()]]} for _ in range(30)]
    lines += [{"signals": [["md5", md5()]], "status": "disabled"} for _ in range(3)]
    listing = "".join(json.dumps(line) + "\n" for line in lines).encode()
    registry.import_stream(session, police, io.BytesIO(listing), format="jsonl", batch_size=7)
    org = checks.create_org(session, "platform-a", "platform")
    key, _ = checks.create_key(session, org.id, "platform")
    spare, _ = checks.create_key(session, org.id, "analyst")
    checks.revoke_key(session, spare.id, actor="admin")
    item = single.item
    hits = checks.record_hits(session, org.id, [
        checks.NewHit("md5", item.signals[0][1], 0, police.id, item.id, item.category)
        for _ in range(3)
    ])  # fmt: skip
    checks.record_outcome(session, org.id, hits[0], "blocked", actor="key:1")
    checks.record_outcome(session, org.id, hits[1], "reported", report_id="r-1", actor="key:1")
    checks.record_outcome(session, org.id, hits[1], "removed", actor="key:1")  # corrected
    session.commit()
    # a false positive confirmed by an analyst: the hit's outcome and the entry's status change
    doubt = registry.add_item(session, police, [("md5", md5())]).item
    (claimed,) = checks.record_hits(session, org.id, [
        checks.NewHit("md5", doubt.signals[0][1], 0, police.id, doubt.id, doubt.category)
    ])  # fmt: skip
    checks.record_outcome(session, org.id, claimed, "false_positive", reason="stock photo",
                          actor="key:1")  # fmt: skip
    (review,) = checks.review_queue(session)
    checks.resolve_review(session, review.id, "confirmed", actor="analyst:1")
    session.commit()
    assert registry.get_item(session, doubt.id).status == "disabled"
    rows = [checks.get_hit(session, org.id, h).row_id for h in hits]  # what SQL and reports name
    return {"set": police, "item": item, "gone": gone, "hits": rows, "key": key, "spare": spare}


def problems(session):
    report = verify_all(session)
    assert report.chain.ok
    return [(p.table, p.row, p.fields) for p in report.rows]


def sql(session, statement: str, **values) -> None:
    session.execute(text(statement), values)
    session.commit()


def test_a_clean_database_verifies(session, world):
    report = verify_all(session)
    assert report.ok, report.rows
    assert report.chain.count > 10 and report.chain.head_id is not None


def test_an_edited_audit_event_breaks_the_chain(session, world):
    sql(session, "UPDATE audit_events SET actor = 'someone else' WHERE action = :action",
        action="registry.item.withdrawn")  # fmt: skip
    report = verify_all(session)
    assert not report.ok and not report.chain.ok
    assert "altered" in (report.chain.reason or "")


def test_an_outcome_changed_in_sql_is_found(session, world):
    hit = world["hits"][0]
    sql(session, "UPDATE hits SET outcome = 'other' WHERE id = :id", id=hit)
    assert problems(session) == [("hits", f"id {hit}", ("outcome", "report_id", "outcome_reason"))]


def test_an_outcome_set_or_cleared_in_sql_is_found(session, world):
    never, corrected = world["hits"][2], world["hits"][1]
    sql(session, "UPDATE hits SET outcome = 'blocked' WHERE id = :id", id=never)
    sql(session, "UPDATE hits SET outcome = NULL WHERE id = :id", id=corrected)
    assert [row for _, row, _ in problems(session)] == [f"id {corrected}", f"id {never}"]


def test_an_entry_status_changed_in_sql_is_found(session, world):
    item, gone = world["item"], world["gone"]
    sql(session, "UPDATE items SET status = 'withdrawn' WHERE id = :id", id=item.id)
    sql(session, "UPDATE items SET status = 'active' WHERE id = :id", id=gone.id)
    found = verify_all(session).rows
    assert [(p.table, p.row) for p in found] == [
        ("items", f"id {item.id}"),
        ("items", f"id {gone.id}"),
    ]
    assert found[0].fields == ("status", "category", "signals")
    assert "status 'withdrawn', the change log says 'active'" in found[0].detail


def test_an_inactive_entry_status_changed_in_sql_is_found(session, world):
    (disabled,) = session.execute(
        text("SELECT id FROM items WHERE status = 'disabled' LIMIT 1")
    ).one()
    sql(session, "UPDATE items SET status = 'withdrawn' WHERE id = :id", id=disabled)
    assert problems(session) == [("items", f"id {disabled}", ("status", "category", "signals"))]


def test_an_entry_signal_value_changed_in_sql_is_found(session, world):
    item = world["item"]
    statement = "UPDATE item_signals SET value = :value WHERE item_id = :id AND signal_type = 'md5'"
    sql(session, statement, value=md5(), id=item.id)
    found = verify_all(session).rows
    assert [(p.table, p.row) for p in found] == [("items", f"id {item.id}")]
    assert "signals not in the change log: md5" in found[0].detail


def test_an_imported_entry_changed_in_sql_is_found(session, world):
    (imported,) = session.execute(text("SELECT max(id) FROM items WHERE status = 'active'")).one()
    sql(session, "UPDATE items SET category = 'non_pertinent' WHERE id = :id", id=imported)
    assert problems(session) == [("items", f"id {imported}", ("status", "category", "signals"))]


def test_an_edited_change_row_is_found(session, world):
    (seq,) = session.execute(text("SELECT max(seq) FROM registry_changes")).one()
    sql(session, "UPDATE registry_changes SET reason = 'enabled' WHERE seq = :seq", seq=seq)
    # the edited row, and the entry that no longer fits the edited log
    assert [t for t, _, _ in problems(session)] == ["registry_changes", "items"]
    sql(session, "DELETE FROM registry_changes WHERE seq = :seq", seq=seq)
    assert [t for t, _, _ in problems(session)] == ["registry_changes", "items"]


def test_a_key_role_changed_in_sql_is_found(session, world):
    key = world["key"]
    sql(session, "UPDATE api_keys SET role = 'admin' WHERE id = :id", id=key.id)
    assert problems(session) == [
        ("api_keys", f"id {key.id}", ("role", "org_id", "expires_at", "revoked_at"))
    ]


def test_a_revocation_undone_in_sql_is_found(session, world):
    spare = world["spare"]
    sql(session, "UPDATE api_keys SET revoked_at = NULL WHERE id = :id", id=spare.id)
    assert [row for _, row, _ in problems(session)] == [f"id {spare.id}"]


def test_the_command_prints_the_head_and_fails_on_a_problem(cli_db, session):
    runner = CliRunner()
    police = registry.create_set(session, "police")
    item = registry.add_item(session, police, [("md5", md5())]).item
    session.commit()
    result = runner.invoke(audit_app, ["verify"])
    assert result.exit_code == 0, result.output
    assert "chain intact: 2 events, head #" in result.output

    sql(session, "UPDATE items SET status = 'disabled' WHERE id = :id", id=item.id)
    result = runner.invoke(audit_app, ["verify"])
    assert result.exit_code == 1
    assert f"items id {item.id}" in result.output and "status, category, signals" in result.output

    tail = runner.invoke(audit_app, ["tail", "-n", "1"]).output
    assert tail.startswith("#2 ") and f"registry.item.added item {item.id}" in tail

    sql(session, "UPDATE audit_events SET action = 'forged' WHERE id = 1")
    result = runner.invoke(audit_app, ["verify"])
    assert result.exit_code == 1
    assert "chain broken at event 1" in result.output
