"""Hosters' answers: the signed link in a notice (good, tampered, expired), the public answer
page, the hoster API's role and organisation checks, and "removed" believed only after a
re-check (it brings the check forward; the item stays online until a check finds it gone).
Notices are made by the real worker step and mailed to a real SMTP sink on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from mail_sink import MailSink
from meldpunt import checks, clock
from meldpunt.reports.context import link_secret
from meldpunt.reports.errors import NotFound
from meldpunt.store import make_engine, make_sessionmaker
from meldpunt.store.models import ItemEvent, Notice, UrlItem
from meldpunt.takedown.answers import LinkExpired, read_token, sign_token
from meldpunt.takedown.notices import run_notices
from notice_support import add_contact, context_for, ready_item
from service import World, running
from web_support import csrf_of, sign_in

KEY = b"s" * 32


def test_a_signed_link_names_its_notice_until_it_expires():
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    token = sign_token(KEY, 42, now + timedelta(days=30))
    assert read_token(KEY, token, now) == 42
    assert read_token(KEY, token, now + timedelta(days=29, hours=23)) == 42
    with pytest.raises(LinkExpired) as expired:
        read_token(KEY, token, now + timedelta(days=30))
    assert expired.value.status == 410
    notice_id, stamp, signature = token.split(".")
    later = str(int(stamp) + 86400)
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for tampered in (
        f"43.{stamp}.{signature}",  # another notice
        f"{notice_id}.{later}.{signature}",  # a later expiry
        f"{notice_id}.{stamp}.{flipped}",
        f"{notice_id}.{stamp}.{signature[:-2]}",
        f"{notice_id}.{stamp}",
        f"{token}.x",
        f"٤٢.{stamp}.{signature}",  # digits, but not ASCII ones
        f"-42.{stamp}.{signature}",
        "0." + stamp + "." + signature,
        token + "A" * 200,
        "",
    ):
        with pytest.raises(NotFound):
            read_token(KEY, tampered, now)
    with pytest.raises(NotFound):  # another installation's key
        read_token(b"t" * 32, token, now)


@dataclass
class Hotline:
    world: World
    sink: MailSink
    keys: dict[str, str]
    notice_a: int
    notice_b: int
    urls_a: list[str]
    token: str
    key: bytes  # the installation's link key

    def client(self, who: str | None) -> httpx.Client:
        if who in self.keys:
            return self.world.client(None, headers={"Authorization": f"Bearer {self.keys[who]}"})
        return self.world.client(who)


@pytest.fixture
def hotline(db_url: str, settings) -> Iterator[Hotline]:
    """A service, two hosters (organisations with hoster keys and abuse contacts), and a sent
    notice to each, made by the worker step and mailed to the sink."""
    with running(db_url, run_worker=False) as world, MailSink() as sink:
        engine = make_engine(db_url)
        sessions = make_sessionmaker(engine)
        keys: dict[str, str] = {}
        with sessions() as s:
            orgs = {}
            for name in ("hoster-a", "hoster-b"):
                orgs[name] = checks.create_org(s, name, "hoster").id
                keys[name] = checks.create_key(s, name, "hoster")[1]
            a = add_contact(s, "desk-a", group_seconds=0, org_id=orgs["hoster-a"])
            b = add_contact(s, "desk-b", group_seconds=0, org_id=orgs["hoster-b"])
            urls = [ready_item(s, f"http://a.example/{n}.jpg", a).url for n in (1, 2)]
            ready_item(s, "http://b.example/1.jpg", b)
            s.commit()
        # The service's own link key (made in data_dir), as the worker of the service has it.
        context = context_for(sessions, settings, sink.relay, secret=None)
        run_notices(context, 50)
        messages = {m["To"]: m for m in sink.wait_for(2)}
        text = messages["abuse@desk-a.example"].get_body(("plain",)).get_content()
        token = re.search(r"/notice/(\S+)", text).group(1)
        with sessions() as s:
            found = {n.contact_id: n.id for n in s.scalars(select(Notice))}
        yield Hotline(world, sink, keys, found[a.id], found[b.id], urls, token, context.link_key)
        engine.dispose()


def _items(world: World, urls: list[str]) -> dict[str, UrlItem]:
    with world.session() as s:
        return {row.url: row for row in s.scalars(select(UrlItem).where(UrlItem.url.in_(urls)))}


def _answered(world: World, item_id: int) -> list[ItemEvent]:
    with world.session() as s:
        query = select(ItemEvent).where(ItemEvent.item_id == item_id, ItemEvent.event == "answered")
        return list(s.scalars(query))


def test_hosters_see_and_answer_only_their_own_notices(hotline: Hotline):
    with hotline.client("hoster-a") as a:
        listed = a.get("/v1/notices")
        assert listed.status_code == 200, listed.text
        (notice,) = listed.json()
        assert notice["id"] == hotline.notice_a and notice["status"] == "sent"
        assert sorted(i["url"] for i in notice["items"]) == sorted(hotline.urls_a)
        assert {i["state"] for i in notice["items"]} == {"noticed"}
        assert a.get(f"/v1/notices/{hotline.notice_a}").status_code == 200
        assert a.get(f"/v1/notices/{hotline.notice_b}").status_code == 403
        said = {"answers": [{"url": "http://b.example/1.jpg", "answer": "removed"}]}
        other = a.post(f"/v1/notices/{hotline.notice_b}/answer", json=said)
        assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
        missing = a.post("/v1/notices/999999/answer", json={"note": "which one?"})
        assert missing.status_code == 404
    with hotline.client("hoster-b") as b:
        assert [n["id"] for n in b.get("/v1/notices").json()] == [hotline.notice_b]
    with hotline.client("analyst") as analyst:
        assert {n["id"] for n in analyst.get("/v1/notices").json()} == {
            hotline.notice_a,
            hotline.notice_b,
        }
        refused = analyst.post(f"/v1/notices/{hotline.notice_a}/answer", json={"note": "x"})
        assert refused.status_code == 403
    for role in ("platform", "admin"):
        with hotline.client(role) as client:
            answer = client.post(f"/v1/notices/{hotline.notice_a}/answer", json={"note": "x"})
            assert answer.status_code == 403, role
    with hotline.client("platform") as platform:
        assert platform.get("/v1/notices").status_code == 403
    with hotline.client(None) as anonymous:
        assert anonymous.get("/v1/notices").status_code == 401
        answer = anonymous.post(f"/v1/notices/{hotline.notice_a}/answer", json={"note": "x"})
        assert answer.status_code == 401
    assert _answered(hotline.world, 1) == [] and _answered(hotline.world, 2) == []


def test_removed_is_believed_only_after_a_recheck(hotline: Hotline):
    removed, kept = hotline.urls_a
    before = _items(hotline.world, hotline.urls_a)
    with hotline.client("hoster-a") as a:
        answer = a.post(
            f"/v1/notices/{hotline.notice_a}/answer",
            json={
                "answers": [
                    {"url": removed, "answer": "removed", "note": "deleted the account"},
                    {"url": kept.replace("http://a.example", "HTTP://A.Example:80"),
                     "answer": "not_ours"},
                ],
                "note": "thanks",
            },
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["recorded"] == 2
        assert {i["state"] for i in answer.json()["items"]} == {"noticed"}
        said = {"answers": [{"url": "http://a.example/3.jpg", "answer": "removed"}]}
        unknown = a.post(f"/v1/notices/{hotline.notice_a}/answer", json=said)
        assert unknown.status_code == 400 and "does not name" in unknown.json()["error"]["message"]
        bad = a.post(f"/v1/notices/{hotline.notice_a}/answer",
                     json={"answers": [{"url": removed, "answer": "gone"}]})  # fmt: skip
        assert bad.status_code == 422
    after = _items(hotline.world, hotline.urls_a)
    # Not offline: the item stays online until a re-check finds it gone, and that check is now.
    assert after[removed].state == "noticed" and after[removed].offline_at is None
    assert after[removed].next_check_at <= clock.now()
    assert before[removed].next_check_at > clock.now()
    assert after[kept].next_check_at == before[kept].next_check_at
    (event,) = _answered(hotline.world, after[removed].id)
    assert event.actor == "hoster:hoster-a"
    assert '"answer": "removed"' in event.details and "deleted the account" in event.details
    with hotline.client("hoster-a") as a:
        shown = a.get(f"/v1/notices/{hotline.notice_a}").json()
    assert {i["url"]: i["answer"] for i in shown["items"]} == {removed: "removed", kept: "not_ours"}
    assert shown["answered_at"] is not None


def test_the_answer_page_works_without_signing_in(hotline: Hotline):
    removed, _ = hotline.urls_a
    with hotline.world.client(None, follow_redirects=False) as browser:
        form = browser.get(f"/notice/{hotline.token}")
        assert form.status_code == 200, form.text
        assert removed in form.text and "<img" not in form.text
        assert "Content-Security-Policy" in form.headers
        ids = re.findall(r'name="item" value="(\d+)"', form.text)
        assert len(ids) == 2
        items = _items(hotline.world, hotline.urls_a)
        chosen = {items[removed].id: "removed"}
        data = {
            "item": ids,
            "answer": [chosen.get(int(i), "") for i in ids],
            "note": ["gone since this morning" if int(i) in chosen else "" for i in ids],
            "general": "",
        }
        sent = browser.post(f"/notice/{hotline.token}", data=data)
        assert sent.status_code == 303, sent.text
        assert sent.headers["location"] == f"/notice/{hotline.token}?answered=1"
        thanks = browser.get(sent.headers["location"])
        assert "1 answer recorded" in thanks.text
        # A tampered link shows nothing; an expired one says so.
        notice_id, stamp, signature = hotline.token.split(".")
        tampered = browser.get(f"/notice/{notice_id}.{int(stamp) + 1}.{signature}")
        assert tampered.status_code == 404 and removed not in tampered.text
        old = sign_token(hotline.key, int(notice_id), clock.now() - timedelta(seconds=1))
        expired = browser.get(f"/notice/{old}")
        assert expired.status_code == 410 and "expired" in expired.text
    item = _items(hotline.world, [removed])[removed]
    (event,) = _answered(hotline.world, item.id)
    assert event.actor == f"link:notice-{hotline.notice_a}"
    assert item.state == "noticed" and item.next_check_at <= clock.now()


def test_analysts_see_notices_and_send_a_failed_one_again(hotline: Hotline):
    with hotline.world.session() as s:
        notice = s.get(Notice, hotline.notice_b)
        notice.status, notice.last_error = "failed", "the relay answered 550: no"
        s.commit()
    with sign_in(hotline.world, "analyst") as analyst:
        listed = analyst.get("/ui/notices")
        assert listed.status_code == 200
        with hotline.world.session() as s:
            for notice in s.scalars(select(Notice)):
                assert notice.message_id.replace("<", "&lt;").replace(">", "&gt;") in listed.text
        failed = analyst.get("/ui/notices?status=failed")
        assert "desk-b" in failed.text and "desk-a" not in failed.text
        detail = analyst.get(f"/ui/notices/{hotline.notice_a}")
        assert all(url in detail.text for url in hotline.urls_a) and "<img" not in detail.text
        page = analyst.get(f"/ui/notices/{hotline.notice_b}")
        assert "550" in page.text
        again = analyst.post(f"/ui/notices/{hotline.notice_b}/retry",
                             data={"csrf": csrf_of(page.text)})  # fmt: skip
        assert again.status_code == 303
        assert analyst.post(f"/ui/notices/{hotline.notice_b}/retry", data={}).status_code == 403
    with hotline.world.session() as s:
        notice = s.get(Notice, hotline.notice_b)
        assert (notice.status, notice.attempts) == ("open", 0)
    with sign_in(hotline.world, "platform") as platform:
        assert platform.get("/ui/notices").status_code == 403
    with hotline.world.client(None, follow_redirects=False) as anonymous:
        assert anonymous.get("/ui/notices").status_code == 303


def test_an_answer_link_for_a_police_notice_or_an_open_one_finds_nothing(db_url, settings):
    with running(db_url, run_worker=False) as world:
        engine = make_engine(db_url)
        with make_sessionmaker(engine)() as s:
            contact = add_contact(s, "police-nl", kind="police")
            notice = Notice(contact_id=contact.id, kind="police", status="sent",
                            created_at=clock.now(), attempts=1, message_id="<p@x>")  # fmt: skip
            s.add(notice)
            s.commit()
            police_id = notice.id
        engine.dispose()
        token = sign_token(link_secret(settings), police_id, clock.now() + timedelta(days=1))
        with world.client(None) as browser:
            assert browser.get(f"/notice/{token}").status_code == 404
