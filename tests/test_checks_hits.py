"""Hits and their follow-up: recording, outcomes (only by the hit's own organisation), the
false-positive review queue, overdue hits, figures per organisation, and the check counter under
concurrent requests (SQLite and PostgreSQL). All hashes are random."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from meldpunt import audit, checks, registry
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.config import get_settings, reset_settings
from meldpunt.registry.matching import Match
from meldpunt.store.models import AuditEvent, CheckCount, Hit

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def random_md5() -> str:
    return os.urandom(16).hex()


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


@pytest.fixture
def world(session, settings, clock):
    """Two platforms and a blocklist with two items."""
    a = checks.create_org(session, "platform-a", "platform")
    b = checks.create_org(session, "platform-b", "platform")
    police = registry.create_set(session, "police-nl", default_category="baseline")
    items = [registry.add_item(session, police, [("md5", random_md5())]).item.id for _ in range(2)]
    session.commit()
    return a, b, police, items


def new_hit(set_id: int, item_id: int, **extra) -> checks.NewHit:
    return checks.NewHit("md5", random_md5(), 0, set_id, item_id, "csam_baseline", **extra)


def audit_events(session: Session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query))


# --- recording -----------------------------------------------------------------------------------


def test_hits_are_recorded_in_order_with_a_recheck_when_a_url_is_given(session, world):
    a, _, police, items = world
    given = [
        new_hit(police.id, items[0], platform_ref="upload-1"),
        new_hit(police.id, items[1], public_url="https://cdn.example/p/1.jpg"),
        new_hit(police.id, items[0], public_url="  "),
    ]
    ids = checks.record_hits(session, a.id, given)
    session.commit()
    assert len(set(ids)) == 3
    hits = [checks.get_hit(session, a.id, i) for i in ids]
    assert [h.signal_value for h in hits] == [g.signal_value for g in given]
    assert hits[0].platform_ref == "upload-1" and hits[0].public_url is None
    assert hits[0].recheck_due_at is None and hits[0].recheck_status is None
    assert hits[1].recheck_due_at == T0 + timedelta(hours=24)
    assert hits[1].recheck_status == "pending"
    assert hits[2].public_url is None  # blank counts as absent
    assert all(h.at == T0 and h.outcome is None and not h.overdue for h in hits)
    assert checks.record_hits(session, a.id, []) == []

    (event,) = audit_events(session, "checks.hits.recorded")
    assert json.loads(event.details)["hit_ids"] == ids
    assert audit.verify(session).ok


def test_hit_ids_say_nothing_about_other_organisations(session, world):
    """Platforms hold their hits' ids: a sequence shared by everyone would let one platform read
    every other's volume from the gap between two of its own ids."""
    a, b, police, items = world
    (first,) = checks.record_hits(session, a.id, [new_hit(police.id, items[0])])
    others = checks.record_hits(session, b.id, [new_hit(police.id, items[1])] * 50)
    (second,) = checks.record_hits(session, a.id, [new_hit(police.id, items[0])])
    session.commit()
    ids = [first, *others, second]
    assert len(set(ids)) == len(ids) and all(0 < i < 2**53 for i in ids)
    # 50 hits of b in between: with one sequence, a would read the gap as 51.
    assert abs(second - first) > 10**6
    steps = {later - earlier for earlier, later in zip(ids, ids[1:], strict=False)}
    assert len(steps) > 40  # not a sequence with a fixed step either
    with pytest.raises(checks.NotFound):
        checks.get_hit(session, a.id, others[0])  # another's hit is not found, as before
    row_ids = [checks.get_hit(session, None, i).row_id for i in ids]
    assert row_ids == sorted(row_ids)  # inside meldpunt, rows keep their order for paging


def test_a_public_id_that_is_taken_already_is_drawn_again(session, world, monkeypatch):
    a, b, police, items = world
    (taken,) = checks.record_hits(session, a.id, [new_hit(police.id, items[0])])
    draws = iter([taken - 1, 41])  # randbelow(n) + 1: first the id in use, then 42
    monkeypatch.setattr(checks.hits.secrets, "randbelow", lambda limit: next(draws))
    assert checks.record_hits(session, b.id, [new_hit(police.id, items[1])]) == [42]


def test_the_recheck_delay_comes_from_the_settings(session, world, monkeypatch):
    a, _, police, items = world
    monkeypatch.setenv("MELDPUNT_HIT_RECHECK_AFTER_HOURS", "1.5")
    reset_settings()
    (hit_id,) = checks.record_hits(
        session, a.id, [new_hit(police.id, items[0], public_url="http://example.org/x")]
    )
    assert checks.get_hit(session, a.id, hit_id).recheck_due_at == T0 + timedelta(hours=1.5)


@pytest.mark.parametrize(
    "url", ["ftp://example.org/x", "javascript:alert(1)", "example.org/x", "https://", "x" * 3000]
)
def test_public_urls_must_be_http(session, world, url):
    a, _, police, items = world
    with pytest.raises(checks.InvalidInput, match="public_url"):
        checks.record_hits(session, a.id, [new_hit(police.id, items[0], public_url=url)])


def test_a_hit_is_made_from_a_match():
    match = Match("police-nl", 3, 77, "csam_baseline", "pdq", 12)
    hit = checks.NewHit.from_match(match, "ab" * 32, platform_ref="c-1")
    assert hit == checks.NewHit("pdq", "ab" * 32, 12, 3, 77, "csam_baseline", "c-1", None)


# --- outcomes ------------------------------------------------------------------------------------


def test_only_the_hits_own_organisation_sees_it_or_records_its_outcome(session, world):
    a, b, police, items = world
    (hit_id,) = checks.record_hits(session, a.id, [new_hit(police.id, items[0])])
    session.commit()
    missing = hit_id + 1000
    for org_id, wanted in ((b.id, hit_id), (a.id, missing)):
        with pytest.raises(checks.NotFound) as error:
            checks.get_hit(session, org_id, wanted)
        # the same words whether the hit is another organisation's or does not exist
        assert str(error.value) == f"no hit {wanted}"
        with pytest.raises(checks.NotFound):
            checks.record_outcome(session, org_id, wanted, "blocked", actor="org")
    assert checks.get_hit(session, None, hit_id).org_id == a.id  # analysts see every hit
    assert checks.list_hits(session, b.id) == []
    assert checks.get_hit(session, a.id, hit_id).outcome is None


def test_reported_needs_a_report_id_and_other_a_reason(session, world):
    a, _, police, items = world
    (hit_id,) = checks.record_hits(session, a.id, [new_hit(police.id, items[0])])
    with pytest.raises(checks.InvalidInput, match="report_id"):
        checks.record_outcome(session, a.id, hit_id, "reported", actor="org")
    with pytest.raises(checks.InvalidInput, match="reason"):
        checks.record_outcome(session, a.id, hit_id, "other", reason="  ", actor="org")
    with pytest.raises(checks.InvalidInput, match="outcome must be one of"):
        checks.record_outcome(session, a.id, hit_id, "deleted", actor="org")

    hit = checks.record_outcome(
        session, a.id, hit_id, "reported", report_id="NCMEC-123", actor="org"
    )
    assert hit.outcome == "reported" and hit.report_id == "NCMEC-123" and hit.outcome_at == T0
    hit = checks.record_outcome(
        session, a.id, hit_id, "other", reason="account suspended", actor="org"
    )
    assert hit.outcome == "other" and hit.outcome_reason == "account suspended"
    assert hit.report_id is None  # the latest outcome replaces the whole earlier one


def test_an_outcome_can_be_corrected_and_every_change_is_audited(session, world, clock):
    a, _, police, items = world
    (hit_id,) = checks.record_hits(session, a.id, [new_hit(police.id, items[0])])
    checks.record_outcome(session, a.id, hit_id, "blocked", actor="key:1")
    clock.advance(timedelta(hours=2))
    hit = checks.record_outcome(session, a.id, hit_id, "removed", actor="key:1")
    assert hit.outcome == "removed" and hit.outcome_at == T0 + timedelta(hours=2)
    # the same outcome again (a retried request) changes nothing
    clock.advance(timedelta(hours=1))
    again = checks.record_outcome(session, a.id, hit_id, "removed", actor="key:1")
    assert again.outcome_at == hit.outcome_at
    session.commit()

    events = audit_events(session, "checks.hit.outcome")
    assert [json.loads(e.details)["outcome"] for e in events] == ["blocked", "removed"]
    assert json.loads(events[0].details)["previous"] is None
    assert json.loads(events[1].details)["previous"]["outcome"] == "blocked"
    assert {json.loads(e.details)["public_id"] for e in events} == {hit_id}
    assert audit.verify(session).ok


def test_a_false_positive_goes_to_review_and_a_confirmation_disables_the_entry(session, world):
    a, b, police, items = world
    (hit_a,) = checks.record_hits(session, a.id, [new_hit(police.id, items[0])])
    (hit_b,) = checks.record_hits(session, b.id, [new_hit(police.id, items[0])])
    (hit_c,) = checks.record_hits(session, b.id, [new_hit(police.id, items[1])])
    checks.record_outcome(session, a.id, hit_a, "false_positive", reason="a logo", actor="org:a")
    # saying it again, with other words, does not queue the same hit twice
    checks.record_outcome(session, a.id, hit_a, "false_positive", reason="our logo", actor="org:a")
    checks.record_outcome(session, b.id, hit_b, "false_positive", actor="org:b")
    checks.record_outcome(session, b.id, hit_c, "false_positive", actor="org:b")
    session.commit()

    queue = checks.review_queue(session)
    assert [(r.hit_id, r.org_id, r.item_id) for r in queue] == [
        (hit_a, a.id, items[0]),
        (hit_b, b.id, items[0]),
        (hit_c, b.id, items[1]),
    ]
    assert (
        queue[0].reason == "a logo" and queue[0].open and queue[0].hit_outcome == "false_positive"
    )

    decided = checks.resolve_review(session, queue[0].id, "confirmed", actor="analyst:7")
    session.commit()
    assert decided.resolution == "confirmed" and decided.resolved_by == "analyst:7"
    assert registry.get_item(session, items[0]).status == "disabled"
    assert registry.get_item(session, items[1]).status == "active"
    # the decision is about the entry: the other platform's claim on it is resolved with it
    assert [r.hit_id for r in checks.review_queue(session)] == [hit_c]
    assert len(checks.review_queue(session, open_only=False)) == 3
    (event,) = audit_events(session, "checks.review.confirmed")
    details = json.loads(event.details)
    assert details["item_disabled"] is True and details["also_resolved"] == [queue[1].id]

    with pytest.raises(checks.InvalidInput, match="resolved already"):
        checks.resolve_review(session, queue[1].id, "rejected", actor="analyst:7")
    session.rollback()
    rejected = checks.resolve_review(session, queue[2].id, "rejected", actor="analyst:7")
    assert rejected.resolution == "rejected"
    assert registry.get_item(session, items[1]).status == "active"
    with pytest.raises(checks.InvalidInput, match="resolution must be"):
        checks.resolve_review(session, queue[2].id, "maybe", actor="analyst:7")
    with pytest.raises(checks.NotFound):
        checks.resolve_review(session, 9999, "rejected", actor="analyst:7")
    session.commit()
    assert audit.verify(session).ok


def test_list_hits_filters_and_pages_newest_first(session, world):
    a, b, police, items = world
    ids = checks.record_hits(session, a.id, [new_hit(police.id, items[0]) for _ in range(5)])
    checks.record_hits(session, b.id, [new_hit(police.id, items[0])])
    checks.record_outcome(session, a.id, ids[1], "blocked", actor="org")
    checks.record_outcome(session, a.id, ids[3], "removed", actor="org")

    assert [h.id for h in checks.list_hits(session, a.id)] == ids[::-1]
    assert len(checks.list_hits(session)) == 6
    page = checks.list_hits(session, a.id, limit=2)
    assert [h.id for h in page] == [ids[4], ids[3]]
    page = checks.list_hits(session, a.id, limit=2, before_id=page[-1].row_id)
    assert [h.id for h in page] == [ids[2], ids[1]]
    assert [h.id for h in checks.list_hits(session, a.id, outcome="removed")] == [ids[3]]
    assert [h.id for h in checks.list_hits(session, a.id, outcome="none")] == [
        ids[4],
        ids[2],
        ids[0],
    ]
    with pytest.raises(checks.InvalidInput):
        checks.list_hits(session, a.id, outcome="gone")
    with pytest.raises(checks.InvalidInput):
        checks.list_hits(session, a.id, limit=0)


# --- overdue hits and figures --------------------------------------------------------------------


def test_hits_without_an_outcome_become_overdue_after_the_configured_hours(
    session, world, clock, monkeypatch
):
    monkeypatch.setenv("MELDPUNT_HIT_OUTCOME_DUE_HOURS", "2")
    reset_settings()
    a, b, police, items = world
    first, second = checks.record_hits(
        session, a.id, [new_hit(police.id, items[0]), new_hit(police.id, items[1])]
    )
    clock.advance(timedelta(minutes=30))
    (late,) = checks.record_hits(session, b.id, [new_hit(police.id, items[0])])
    session.commit()

    clock.advance(timedelta(hours=1, minutes=30))  # exactly 2 h after the first two
    assert checks.overdue_hits(session) == []
    assert not checks.get_hit(session, a.id, first).overdue
    clock.advance(timedelta(seconds=1))
    assert [h.id for h in checks.overdue_hits(session)] == [first, second]
    assert checks.get_hit(session, a.id, first).overdue
    assert checks.overdue_hits(session, b.id) == []

    checks.record_outcome(session, a.id, first, "blocked", actor="org")
    assert [h.id for h in checks.overdue_hits(session, a.id)] == [second]
    assert not checks.get_hit(session, a.id, first).overdue

    later = T0 + timedelta(hours=3)
    assert [h.id for h in checks.overdue_hits(session, now=later)] == [second, late]


def test_the_default_due_time_is_72_hours(session, world, clock):
    a, _, police, items = world
    (hit_id,) = checks.record_hits(session, a.id, [new_hit(police.id, items[0])])
    clock.advance(timedelta(hours=72))
    assert checks.overdue_hits(session) == []
    clock.advance(timedelta(seconds=1))
    assert [h.id for h in checks.overdue_hits(session)] == [hit_id]


def test_org_stats(session, world, clock):
    a, b, police, items = world
    checks.record_check(session, a.id, 5)
    checks.record_check(session, a.id, 2)
    clock.advance(timedelta(days=1))  # another day, another row: the figures add up
    checks.record_check(session, a.id, 1)
    ids = checks.record_hits(session, a.id, [new_hit(police.id, items[0]) for _ in range(5)])
    checks.record_outcome(session, a.id, ids[0], "removed", actor="org")
    checks.record_outcome(session, a.id, ids[1], "blocked", actor="org")
    checks.record_outcome(session, a.id, ids[2], "reported", report_id="r-1", actor="org")
    # a re-check found the blocked hit's public copy gone: a confirmed removal too
    session.execute(update(Hit).where(Hit.public_id == ids[1]).values(recheck_status="gone"))
    checks.record_check(session, b.id, 3)
    session.commit()
    assert session.scalar(select(CheckCount.checks).where(CheckCount.org_id == a.id)) == 2

    clock.advance(timedelta(hours=73))
    stats_a, stats_b = checks.org_stats(session)
    assert stats_a == checks.OrgStats(
        org_id=a.id,
        org_name="platform-a",
        checks=3,
        items=8,
        hits=5,
        outcomes={"blocked": 1, "removed": 1, "reported": 1, "false_positive": 0, "other": 0},
        open=2,
        overdue=2,
        confirmed_removals=2,
    )
    assert (stats_b.checks, stats_b.items, stats_b.hits, stats_b.overdue) == (1, 3, 0, 0)
    assert checks.org_stats(session, b.id) == [stats_b]
    with pytest.raises(checks.NotFound):
        checks.org_stats(session, 9999)


def test_record_check_refuses_negative_counts(session, world):
    a, *_ = world
    with pytest.raises(checks.InvalidInput):
        checks.record_check(session, a.id, -1)
    with pytest.raises(checks.InvalidInput):
        checks.record_check(session, a.id, 1, checks=-1)


def test_record_check_adds_several_checks_at_once(session, world):
    a, *_ = world
    checks.record_check(session, a.id, 10, checks=4)  # a service's summed-up counts
    checks.record_check(session, a.id, 1)
    (stats,) = checks.org_stats(session, a.id)
    assert (stats.checks, stats.items) == (5, 11)


def test_concurrent_checks_are_counted_exactly(engine, session, settings, db_url):
    org = checks.create_org(session, "busy", "platform")
    session.commit()
    threads_n, per_thread = 8, 25
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def work() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                with Session(engine) as own, own.begin():
                    checks.record_check(own, org.id, 3)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    (stats,) = checks.org_stats(session, org.id)
    assert (stats.checks, stats.items) == (threads_n * per_thread, threads_n * per_thread * 3)


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HIT_RECHECK_AFTER_HOURS", "HIT_OUTCOME_DUE_HOURS"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_follow_up_settings_must_be_positive_hours(settings, monkeypatch, name, value):
    from meldpunt.config import ConfigError

    monkeypatch.setenv(f"MELDPUNT_{name}", value)
    reset_settings()
    with pytest.raises(ConfigError, match=name.lower()):
        get_settings()


def test_follow_up_settings_have_defaults(settings):
    assert settings.hit_recheck_after_hours == 24
    assert settings.hit_outcome_due_hours == 72
