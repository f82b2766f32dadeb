"""The hotline's items: URL normalisation, one open item per URL, state moves with their
timeline and audit events, and claims that never hand one item to two workers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from meldpunt import audit
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports import items
from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.vocabulary import Event, ItemState
from meldpunt.store import init_db, make_engine, make_sessionmaker
from meldpunt.store.models import AuditEvent, ItemEvent, UrlItem

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("example.com/a b", "http://example.com/a%20b"),
        ("https://example.com:443/x?y=1#frag", "https://example.com/x?y=1"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("http://example.com./p%20q", "http://example.com/p%20q"),
        ("http://[::1]:81/", "http://[::1]:81/"),
        ("  http://example.com/é  ", "http://example.com/%C3%A9"),
        ("localhost:8080/x", "http://localhost:8080/x"),
    ],
)
def test_two_spellings_of_one_address_are_one_url(given, kept):
    assert items.normalise_url(given) == kept
    assert items.normalise_url(kept) == kept  # normalising twice changes nothing


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("", "empty"),
        ("ftp://example.com/x", "only http and https"),
        ("http://exa\x00mple.com/", "NUL"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "not a URL"),
        ("http://example.com/" + "a" * 3000, "longer than"),
        ("javascript:alert(1)", "only http and https"),
        ("mailto:abuse@example.com", "only http and https"),
    ],
)
def test_what_is_not_a_url_is_refused_with_why(given, why):
    with pytest.raises(InvalidInput, match=why):
        items.normalise_url(given)


def test_an_open_url_is_one_item_until_it_is_final(session):
    url = items.normalise_url("http://example.com/a.jpg")
    with use_clock(FrozenClock(START)):
        first, created = items.open_item(session, url, kind="csam", actor="public")
        again, created_again = items.open_item(session, url, kind="csam", actor="public")
        assert created and not created_again and again.id == first.id
        assert (first.state, first.due_at, first.host) == ("received", START, "example.com")
        done = items.move(session, first, ItemState.not_illegal, actor="analyst:1", event="graded")
        items.note(session, [done])
        assert first.open_key is None and first.due_at is None
        later, created_later = items.open_item(session, url, kind="csam", actor="public")
    assert created_later and later.id != first.id and later.url_key == first.url_key


def test_notes_are_the_timeline_and_the_audit_log(session):
    url = items.normalise_url("http://example.com/b.jpg")
    item, _ = items.open_item(session, url, kind="ncii", actor="public")
    items.note(
        session,
        [
            items.Note(item.id, Event.received, "public", {"report": "MP-1"}),
            items.Note(item.id, Event.checked, "worker", audited=False),
        ],
    )
    events = items.timeline(session, item.id)
    assert [e.event for e in events] == ["received", "checked"]
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.subject_id == str(item.id))
    ).all()
    assert actions == ["hotline.received"]
    assert audit.verify(session).ok


def test_claims_hand_each_due_item_to_one_worker(db_url):
    init_db(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    frozen = FrozenClock(START)
    with use_clock(frozen):
        with sessions() as s, s.begin():
            for n in range(40):
                items.open_item(s, f"http://example.com/{n}", kind="csam", actor="t")
        taken: list[int] = []
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with sessions() as s, s.begin():
                    rows = items.claim(
                        s,
                        UrlItem.due_at,
                        [UrlItem.state == "received"],
                        limit=3,
                        lease=timedelta(minutes=5),
                    )
                    ids = [r.id for r in rows]
                if not ids:
                    return
                with lock:
                    taken.extend(ids)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(taken) == sorted(set(taken)) and len(taken) == 40
        with sessions() as s:
            assert not items.any_due(s, UrlItem.due_at, [UrlItem.state == "received"])
        # the lease ends: due again, for whoever comes next
        frozen.advance(timedelta(minutes=5, seconds=1))
        with sessions() as s:
            assert items.any_due(s, UrlItem.due_at, [UrlItem.state == "received"])
            assert s.scalar(select(func.count()).select_from(ItemEvent)) == 0
    engine.dispose()
