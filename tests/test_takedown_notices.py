"""Notices over a real SMTP server on loopback, with the controlled clock, on SQLite and
PostgreSQL: grouping per abuse contact, what a notice says and carries (CSV, X-ARF valid by the
xarf package), retries with backoff, refusals, a crash after the relay took a message,
re-notices, police notices, two senders at once, and contacts that take no mail at weekends."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import xarf
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mail_sink import MailSink
from meldpunt import registry, worker
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports import items
from meldpunt.reports.context import HotlineContext
from meldpunt.store import init_db, make_engine, make_sessionmaker
from meldpunt.store.models import AuditEvent, Notice, UrlItem
from meldpunt.takedown import notices, sending
from meldpunt.takedown.answers import read_token
from meldpunt.takedown.notices import backoff, hold_until, retry_notice, run_notices
from notice_support import (
    MONDAY,
    add_contact,
    context_for,
    events,
    fresh,
    item_ids,
    notices_of,
    ready_item,
)


class World:
    def __init__(self, sessions: sessionmaker[Session], context: HotlineContext,
                 sink: MailSink, clock: FrozenClock) -> None:  # fmt: skip
        self.sessions, self.context, self.sink, self.clock = sessions, context, sink, clock

    def run(self) -> int:
        return run_notices(self.context, 50)

    def later(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))


@pytest.fixture
def world(db_url: str, settings) -> Iterator[World]:
    init_db(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with MailSink() as sink, use_clock(FrozenClock(MONDAY)) as frozen:
        yield World(sessions, context_for(sessions, settings, sink.relay), sink, frozen)
    engine.dispose()


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def attachments(message: EmailMessage) -> dict[str, bytes]:
    return {
        str(part.get_filename()): part.get_payload(decode=True)
        for part in message.iter_attachments()
    }


def test_items_ready_within_the_window_share_one_notice(world: World):
    with world.sessions() as s:
        contact = add_contact(s, "hoster-a", group_seconds=120)
        first = ready_item(s, "http://a.example/1.jpg", contact)
        s.commit()
    assert world.run() == 1
    with world.sessions() as s:
        (notice,) = notices_of(s)
        assert (notice.status, notice.kind, notice.due_at) == (
            "open",
            "notice",
            MONDAY + timedelta(seconds=120),
        )
        assert fresh(s, first).due_at is None  # the notice carries it now
    assert world.sink.received() == []

    world.later(seconds=30)
    with world.sessions() as s:
        second = ready_item(s, "http://a.example/2.jpg", s.get(type(contact), contact.id))
        s.commit()
    world.run()
    with world.sessions() as s:
        (notice,) = notices_of(s)
        assert item_ids(s, notice.id) == [first.id, second.id]

    world.later(seconds=90)  # the window is over: the notice goes out
    world.run()
    (message,) = world.sink.received()
    assert "http://a.example/1.jpg" in body(message) and "http://a.example/2.jpg" in body(message)
    assert message["To"] == "abuse@hoster-a.example"
    assert "2 URLs" in message["Subject"] and "Meldpunt Test" in message["Subject"]
    sent_at = world.clock.now()
    with world.sessions() as s:
        notice = fresh(s, notice)
        assert notice.status == "sent" and notice.sent_at == sent_at
        assert (notice.recipient, notice.subject) == ("abuse@hoster-a.example", message["Subject"])
        assert notice.message_id == message["Message-ID"]
        for row in (fresh(s, first), fresh(s, second)):
            assert row.state == "noticed"
            assert row.first_notice_at == row.last_notice_at == sent_at
            assert row.next_check_at == sent_at + timedelta(minutes=15)
            assert row.renotice_at == sent_at + timedelta(hours=24)
            assert row.escalation_at == sent_at + timedelta(hours=24)
            assert events(s, row.id)[-1] == "notice"
        audited = s.scalars(select(AuditEvent).where(AuditEvent.action == "hotline.notice_sent"))
        assert [json.loads(a.details)["message_id"] for a in audited] == [notice.message_id]

    # A URL that becomes ready after the window gets a notice of its own.
    world.later(seconds=50)
    with world.sessions() as s:
        third = ready_item(s, "http://a.example/3.jpg", s.get(type(contact), contact.id))
        s.commit()
    world.run()
    world.later(seconds=120)
    world.run()
    first_message, second_message = world.sink.received()
    assert "http://a.example/3.jpg" in body(second_message)
    assert "http://a.example/1.jpg" not in body(second_message)
    with world.sessions() as s:
        ids = [n.message_id for n in notices_of(s)]
        assert ids == [first_message["Message-ID"], second_message["Message-ID"]]
        assert len(set(ids)) == 2
        assert all(re.fullmatch(r"<notice-\d+\.[0-9a-f]{16}@hotline\.example>", i) for i in ids)
        assert fresh(s, third).state == "noticed"


def test_contacts_are_noticed_apart_and_the_worker_runs_the_step(world: World):
    assert ("notices", run_notices) in worker.STEPS
    with world.sessions() as s:
        a, b = add_contact(s, "hoster-a"), add_contact(s, "hoster-b", group_seconds=0)
        ready_item(s, "http://a.example/1.jpg", a)
        ready_item(s, "http://b.example/1.jpg", b)
        s.commit()
    worker.run_once(world.context)  # b's window is zero: sent at once
    (message,) = world.sink.received()
    assert message["To"] == "abuse@hoster-b.example"
    world.later(minutes=2)
    worker.run_once(world.context)
    assert [m["To"] for m in world.sink.received()] == [
        "abuse@hoster-b.example",
        "abuse@hoster-a.example",
    ]


def test_a_notice_says_what_dsa_article_16_asks_and_carries_csv_and_xarf(world: World):
    with world.sessions() as s:
        hash_set = registry.create_set(s, "industry-list")
        entry = registry.add_item(
            s, hash_set, [("md5", "1" * 32)], category="A1", category_scheme="industry"
        ).item
        contact = add_contact(s, "hoster-a", group_seconds=0)
        known = ready_item(s, "http://a.example/known.jpg", contact, entry_id=entry.id)
        national = ready_item(s, "http://a.example/n.jpg", contact, category="csam_national")
        intimate = ready_item(s, "http://a.example/ii.jpg", contact, kind="ncii", category="ncii")
        other = ready_item(s, "http://203.0.113.9/x", contact, kind="other", category=None,
                           media="page")  # fmt: skip
        s.commit()
    world.run()
    (message,) = world.sink.received()
    text = body(message)
    # Why it is illegal, per kind of material present, in plain words.
    assert "Child sexual abuse material (2 URLs)" in text and "Directive 2011/93/EU" in text
    assert "Non-consensual intimate image (1 URL)" in text and "2024/1385" in text
    assert "Other illegal content (1 URL)" in text
    assert "Article 16 of the Digital Services Act" in text
    # The exact URLs, who notifies, the good-faith statement.
    for row in (known, national, intimate, other):
        assert row.url in text and row.sha256 in text
    assert "Meldpunt Test" in text and "https://hotline.example" in text
    assert "notices@hotline.example" in text
    assert "states in good faith that the information in this notice is accurate" in text
    assert "matched known material in a hash list" in text and "assessed by an analyst" in text
    # The signed answer link names this notice.
    link = re.search(r"https://hotline\.example/notice/(\S+)", text)
    assert link is not None
    with world.sessions() as s:
        (notice,) = notices_of(s)
    assert read_token(world.context.link_key, link.group(1)) == notice.id
    assert message["Message-ID"] == notice.message_id

    files = attachments(message)
    rows = list(csv.reader(io.StringIO(files[f"notice-{notice.id}.csv"].decode()), delimiter=";"))
    assert rows[0] == ["url", "ip", "firstseen", "lastseen", "note"]
    by_url = {row[0]: row for row in rows[1:]}
    assert set(by_url) == {known.url, national.url, intimate.url, other.url}
    stamp = MONDAY.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert by_url[known.url][1:4] == ["127.0.0.5", stamp, stamp]
    assert "baseline" in by_url[known.url][4]

    reports = [json.loads(v) for k, v in sorted(files.items()) if k.endswith(".json")]
    assert len(reports) == 2  # child sexual abuse material only: one per URL
    for report in reports:
        checked = xarf.parse(report)
        assert checked.errors == [] and checked.warnings == [], checked.errors
        assert isinstance(checked.report, xarf.CsamReport)
        assert (report["category"], report["type"]) == ("content", "csam")
    found = {r["url"]: r for r in reports}
    assert set(found) == {known.url, national.url}
    assert found[known.url]["classification"] == "A1"  # the entry's own industry class
    assert found[known.url]["detection_method"] == "hash_match"
    assert found[known.url]["hash_values"]["sha256"] == known.sha256
    assert found[national.url]["detection_method"] == "manual_review"
    assert found[national.url]["reporter"]["org"] == "Meldpunt Test"
    assert "category:csam_national" in found[national.url]["tags"]


def test_smtp_down_is_retried_with_backoff_then_sent_once(world: World):
    world.sink.stop()  # nothing listens on the relay's port
    with world.sessions() as s:
        item = ready_item(s, "http://a.example/1.jpg", add_contact(s, "hoster-a", group_seconds=0))
        s.commit()
    world.run()
    with world.sessions() as s:
        (notice,) = notices_of(s)
        message_id = notice.message_id
        assert (notice.status, notice.attempts) == ("open", 1)
        assert notice.due_at == world.clock.now() + timedelta(minutes=5)
        assert "cannot send" in notice.last_error
        assert fresh(s, item).state == "ready"
    assert world.run() == 0  # not due yet
    world.later(minutes=5)
    world.run()
    with world.sessions() as s:
        notice = fresh(s, notice)
        assert notice.attempts == 2 and notice.due_at == world.clock.now() + timedelta(minutes=10)
    world.sink.start()
    world.later(minutes=10)
    world.run()
    world.later(hours=2)
    world.run()
    (message,) = world.sink.received()
    assert message["Message-ID"] == message_id
    with world.sessions() as s:
        notice = fresh(s, notice)
        assert (notice.status, notice.attempts, notice.last_error) == ("sent", 3, None)
        assert fresh(s, item).state == "noticed"
    settings = world.context.settings
    assert [backoff(settings, n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (5, 10, 20)]
    assert backoff(settings, 12) == backoff(settings, 500) == timedelta(days=1)


def test_a_notice_fails_after_its_attempts_or_at_once_when_refused(world: World):
    world.context.settings = world.context.settings.model_copy(update={"smtp_attempts": 2})
    world.sink.answer = "451 4.3.0 try again later"
    with world.sessions() as s:
        a = add_contact(s, "hoster-a", group_seconds=0)
        item = ready_item(s, "http://a.example/1.jpg", a)
        s.commit()
    world.run()
    world.later(minutes=5)
    world.run()
    with world.sessions() as s:
        (notice,) = notices_of(s)
        assert (notice.status, notice.attempts, notice.due_at) == ("failed", 2, None)
        assert "451" in notice.last_error
        assert fresh(s, item).state == "ready"  # waits: an analyst sees the failed notice

    world.sink.answer = "550 5.7.1 we take no notices"
    with world.sessions() as s:
        b = add_contact(s, "hoster-b", group_seconds=0)
        ready_item(s, "http://b.example/1.jpg", b)
        s.commit()
    world.run()
    with world.sessions() as s:
        refused = notices_of(s)[1]
        assert (refused.status, refused.attempts) == ("failed", 1) and "550" in refused.last_error

    # An analyst sends the first again: same Message-ID, sent once the relay takes it.
    world.sink.answer = None
    with world.sessions() as s:
        retry_notice(s, notice.id, actor="key:1")
        s.commit()
    world.run()
    (message,) = world.sink.received()
    assert message["Message-ID"] == notice.message_id
    with world.sessions() as s:
        assert fresh(s, notice).status == "sent" and fresh(s, item).state == "noticed"


def test_a_crash_after_the_relay_took_the_message_sends_the_same_message_again(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    with world.sessions() as s:
        item = ready_item(s, "http://a.example/1.jpg", add_contact(s, "hoster-a", group_seconds=0))
        s.commit()
    real = sending._mark_sent

    def crash(*args: Any) -> None:
        raise RuntimeError("killed between the relay's 250 and the commit")

    monkeypatch.setattr(sending, "_mark_sent", crash)
    with pytest.raises(RuntimeError):
        world.run()
    monkeypatch.setattr(sending, "_mark_sent", real)
    assert len(world.sink.received()) == 1
    assert world.run() == 0  # still claimed by the dead worker
    world.later(minutes=6)  # its lease ends
    world.run()
    messages = world.sink.received()
    assert len(messages) == 2
    with world.sessions() as s:
        (notice,) = notices_of(s)
        assert {m["Message-ID"] for m in messages} == {notice.message_id}  # one Message-ID
        assert notice.status == "sent"
        assert events(s, item.id).count("notice") == 1


def test_offline_and_reattributed_items_are_dropped_before_sending(world: World):
    with world.sessions() as s:
        a, b = add_contact(s, "hoster-a"), add_contact(s, "hoster-b")
        gone = ready_item(s, "http://a.example/gone.jpg", a)
        moved = ready_item(s, "http://a.example/moved.jpg", a)
        stays = ready_item(s, "http://a.example/stays.jpg", a)
        s.commit()
    world.run()
    with world.sessions() as s:
        row = s.get(UrlItem, gone.id)
        items.note(s, [items.move(s, row, "offline", actor="worker", event="offline")])
        row = s.get(UrlItem, moved.id)
        row.contact_id, row.due_at = b.id, world.clock.now()  # attributed anew, to b
        s.commit()
    world.later(minutes=2)
    world.run()
    (to_a,) = world.sink.received()
    assert "stays.jpg" in body(to_a) and "gone.jpg" not in body(to_a)
    assert "moved.jpg" not in body(to_a) and "1 URL" in to_a["Subject"]
    world.later(minutes=2)
    world.run()
    assert "moved.jpg" in body(world.sink.received()[1])
    with world.sessions() as s:
        first = notices_of(s)[0]
        assert item_ids(s, first.id) == [stays.id]
        assert fresh(s, gone).state == "offline" and "notice" not in events(s, gone.id)

    # A notice left with no URL at all is dropped, not mailed.
    with world.sessions() as s:
        lone = ready_item(s, "http://a.example/lone.jpg", s.get(type(a), a.id))
        s.commit()
    world.run()
    with world.sessions() as s:
        row = s.get(UrlItem, lone.id)
        items.move(s, row, "offline", actor="worker")
        s.commit()
    world.later(minutes=2)
    world.run()
    assert len(world.sink.received()) == 2
    with world.sessions() as s:
        assert len(notices_of(s)) == 2


def test_still_online_after_24_hours_a_renotice_follows_the_notice(world: World):
    with world.sessions() as s:
        contact = add_contact(s, "hoster-a", group_seconds=60)
        item = ready_item(s, "http://a.example/1.jpg", contact)
        s.commit()
    world.run()
    world.later(minutes=1)
    world.run()
    (notice_message,) = world.sink.received()
    with world.sessions() as s:
        first_at = fresh(s, item).first_notice_at
        escalation_at = fresh(s, item).escalation_at
    world.later(hours=23)
    world.run()
    assert len(world.sink.received()) == 1  # not yet
    world.later(hours=1)
    world.run()  # grouped into a re-notice
    world.later(minutes=1)
    world.run()
    renotice = world.sink.received()[1]
    assert "re-notice" in renotice["Subject"]
    assert renotice["In-Reply-To"] == notice_message["Message-ID"]
    text = body(renotice)
    assert notice_message["Message-ID"] in text and first_at.strftime("%Y-%m-%d %H:%M") in text
    assert item.url in text
    with world.sessions() as s:
        row = fresh(s, item)
        assert (row.state, row.renotices) == ("noticed", 1)
        assert row.first_notice_at == first_at and row.escalation_at == escalation_at
        assert row.renotice_at == world.clock.now() + timedelta(hours=24)
        assert events(s, item.id)[-1] == "renotice"
        renotice_id = notices_of(s)[1].message_id
        assert renotice_id == renotice["Message-ID"]
        # Escalated items are re-noticed too.
        row.state = "escalated"
        s.commit()
    world.later(hours=24, minutes=1)
    world.run()
    world.later(minutes=1)
    world.run()
    third = world.sink.received()[2]
    assert third["In-Reply-To"] == renotice_id
    with world.sessions() as s:
        assert fresh(s, item).renotices == 2 and fresh(s, item).state == "escalated"


def test_police_notice_flow(world: World):
    with world.sessions() as s:
        hoster = add_contact(s, "hoster-a", group_seconds=0)
        item = ready_item(s, "http://a.example/1.jpg", hoster, state="police")
        s.commit()
    world.run()
    with world.sessions() as s:
        row = fresh(s, item)
        assert row.state == "police" and "police contact" in row.last_error
        assert row.due_at == world.clock.now() + notices.POLICE_RETRY
        assert events(s, item.id).count("contact_needed") == 1
        assert notices_of(s) == []
    world.later(hours=1)
    world.run()
    with world.sessions() as s:
        assert events(s, item.id).count("contact_needed") == 1  # said once
        add_contact(s, "police-nl", kind="police", email="tips@police.example", group_seconds=0)
        s.commit()
    world.later(hours=1)
    world.run()
    (message,) = world.sink.received()
    assert message["To"] == "tips@police.example"
    assert "asking your word" in message["Subject"]
    text = body(message)
    assert item.url in text and item.sha256 in text and item.md5 in text
    assert "/notice/" not in text  # no answer link: the police answer by mail
    assert not any(name.endswith(".json") for name in attachments(message))
    with world.sessions() as s:
        row = fresh(s, item)
        assert (row.state, row.due_at, row.last_error) == ("police", None, None)
        assert events(s, item.id)[-1] == "police"
        assert notices_of(s)[0].kind == "police"
        # The police cleared it: the hoster is noticed.
        items.note(s, [items.move(s, row, "ready", actor="analyst:1", event="police_cleared",
                                  due_at=world.clock.now())])  # fmt: skip
        s.commit()
    world.run()
    to_hoster = world.sink.received()[1]
    assert to_hoster["To"] == "abuse@hoster-a.example"
    with world.sessions() as s:
        assert fresh(s, item).state == "noticed"


def test_two_workers_never_send_one_notice_twice(db_url: str, settings):
    """Two workers, each with its own engine, group the same items and send the same notices at
    once: one notice per contact, each mailed once (PostgreSQL: row locks and SKIP LOCKED;
    SQLite: the write lock)."""
    init_db(db_url)
    engines = [make_engine(db_url), make_engine(db_url)]
    with MailSink() as sink, use_clock(FrozenClock(MONDAY)) as frozen:
        contexts = [context_for(make_sessionmaker(e), settings, sink.relay) for e in engines]
        with contexts[0].sessions() as s:
            for n in range(24):
                contact = add_contact(s, f"hoster-{n}", group_seconds=60)
                ready_item(s, f"http://h{n}.example/{n}.jpg", contact)
                ready_item(s, f"http://h{n}.example/{n}-b.jpg", contact)
            s.commit()

        def both(work: Any) -> None:
            failures: list[BaseException] = []
            start = threading.Barrier(2)

            def run(context: HotlineContext) -> None:
                try:
                    start.wait()
                    while work(context, 3):
                        pass
                except BaseException as exc:  # noqa: BLE001 - reported below
                    failures.append(exc)

            threads = [threading.Thread(target=run, args=(c,)) for c in contexts]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert failures == []

        both(notices.group_ready)
        with contexts[0].sessions() as s:
            grouped = notices_of(s)
            assert len(grouped) == 24 and {len(item_ids(s, n.id)) for n in grouped} == {2}
        frozen.advance(timedelta(minutes=1))
        both(notices.send_due)
        run_notices(contexts[0], 50)  # nothing is left over
        messages = sink.received()
        with contexts[0].sessions() as s:
            sent = notices_of(s)
            assert len(sent) == 24 and {n.status for n in sent} == {"sent"}
            assert {n.attempts for n in sent} == {1}
            counts = Counter(m["Message-ID"] for m in messages)
            assert set(counts) == {n.message_id for n in sent}
            assert set(counts.values()) == {1}
            assert set(s.scalars(select(UrlItem.state))) == {"noticed"}
            notice_events = Counter(
                e for i in s.scalars(select(UrlItem.id)) for e in events(s, i) if e == "notice"
            )
            assert notice_events["notice"] == 48
    for engine in engines:
        engine.dispose()


def test_contacts_that_take_no_mail_at_weekends_get_it_on_monday(world: World):
    saturday = MONDAY + timedelta(days=5, hours=1)  # Saturday 10:00
    assert hold_until(saturday) == MONDAY + timedelta(days=7, hours=-9)  # Monday 00:00
    assert hold_until(MONDAY) is None
    world.clock.set(saturday)
    with world.sessions() as s:
        holds = add_contact(s, "hoster-weekdays", hold_weekends=True)
        plain = add_contact(s, "hoster-always")
        early = ready_item(s, "http://w.example/1.jpg", holds)
        ready_item(s, "http://p.example/1.jpg", plain)
        s.commit()
    world.run()
    world.later(minutes=2)
    world.run()
    (message,) = world.sink.received()  # never held unless the contact says so
    assert message["To"] == "abuse@hoster-always.example"
    monday = MONDAY + timedelta(days=7, hours=-9)
    with world.sessions() as s:
        held = next(n for n in notices_of(s) if n.contact_id == holds.id)
        assert (held.status, held.due_at) == ("open", monday)
    world.clock.set(saturday + timedelta(days=1))  # Sunday: joins the held notice
    with world.sessions() as s:
        late = ready_item(s, "http://w.example/2.jpg", s.get(type(holds), holds.id))
        s.commit()
    world.run()
    assert len(world.sink.received()) == 1
    world.clock.set(monday)
    world.run()
    to_holder = world.sink.received()[1]
    assert to_holder["To"] == "abuse@hoster-weekdays.example"
    assert early.url in body(to_holder) and late.url in body(to_holder)
    with world.sessions() as s:
        assert fresh(s, held).sent_at == monday


def test_a_notice_claimed_by_one_sender_takes_no_new_items(world: World):
    with world.sessions() as s:
        a = add_contact(s, "hoster-a", group_seconds=60)
        ready_item(s, "http://a.example/1.jpg", a)
        s.commit()
    world.run()
    world.later(minutes=1)
    claimed, _ = sending._claim_notices(world.context, 10, world.clock.now())
    assert len(claimed) == 1
    with world.sessions() as s:
        late = ready_item(s, "http://a.example/late.jpg", s.get(type(a), a.id))
        s.commit()
    notices.group_ready(world.context, 10)
    with world.sessions() as s:
        assert len(notices_of(s)) == 2  # a new notice, not the claimed one
        assert item_ids(s, claimed[0]) != [] and late.id not in item_ids(s, claimed[0])
        assert s.get(Notice, claimed[0]).lease_until is not None
