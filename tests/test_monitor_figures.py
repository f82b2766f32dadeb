"""The monitor's figures: a simulated three years with answers worked out by hand (the shape of
the Dutch headline figures: 84% removed within 24 hours, then 87%, then 40%, most volume at one
hoster), given exactly after a rebuild and after refreshes as events arrive; every table
checked against DuckDB on random histories; refresh recomputes only the groups that changed.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from meldpunt.clock import FrozenClock, use_clock
from meldpunt.monitor import figures
from meldpunt.monitor.figures import quantile, rebuild, refresh
from meldpunt.monitor.reference import compare, read_rows, reference_tables, stored_tables
from meldpunt.store.models import ItemEvent, MonitorHoster, MonitorPlatform
from monitor_support import (
    at,
    counts,
    go_offline,
    hash_set,
    hit,
    item,
    order,
    penalty,
    platform,
    random_history,
)

NOW = at("2027-01-15T12:00:00")


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    moment = FrozenClock(NOW)
    with use_clock(moment):
        yield moment


@pytest.fixture
def sessions(engine, frozen, settings) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def writing(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session
        session.commit()


def row(sessions, kind: str, period: str, key: str) -> MonitorHoster | None:
    with sessions() as session:
        return session.scalar(
            select(MonitorHoster).where(
                MonitorHoster.period_kind == kind,
                MonitorHoster.period == period,
                MonitorHoster.key == key,
            )
        )


def figures_of(sessions, kind: str, period: str, key: str) -> dict:
    found = row(sessions, kind, period, key)
    assert found is not None, f"no row {kind} {period} {key!r}"
    return {name: getattr(found, name) for name in figures.HOSTER_FIGURES}


def check_reference(sessions) -> None:
    with sessions() as session:
        differences = compare(reference_tables(session), stored_tables(session))
    assert differences == []


A, B, C = "100|BigHost B.V.", "200|MidHost", "300|SmallHost"


def three_years(session: Session, *, offline: bool = True) -> dict[str, list]:
    """The simulated history; with ``offline`` False every item is still online (noticed)."""
    made: dict[str, list] = {}

    def some(name, count, first, asn, hours, **kw):
        for _ in range(count):
            made.setdefault(name, []).append(
                (item(session, first, asn, hours=hours if offline else None, **kw), hours)
            )

    # year 1, 2024: A in March, B in June, C on New Year's Eve
    a1, b1, c1 = at("2024-03-10T12:00:00"), at("2024-06-05T08:00:00"), at("2024-12-31T23:00:00")
    some("2024", 50, a1, 100, 1.0)
    some("2024", 4, a1, 100, 20.0)
    some("2024", 3, a1, 100, 30.0)
    some("2024", 2, a1, 100, 72.0)
    some("2024", 1, a1, 100, None)
    some("2024", 25, b1, 200, 6.0)
    some("2024", 5, b1, 200, 40.0)
    some("2024", 5, c1, 300, 12.0)
    some("2024", 5, c1, 300, None)
    # reported at A, never notified (went to the police)
    item(session, None, 100, created=a1, state="police")
    # year 2, 2025
    a2, b2, c2 = at("2025-02-01T00:00:00"), at("2025-05-20T10:00:00"), at("2025-11-11T11:00:00")
    some("2025", 55, a2, 100, 1.0)
    some("2025", 1, a2, 100, 1.0, current_asn=200)  # moved to B since: B's "reported"
    some("2025", 4, a2, 100, None)
    some("2025", 28, b2, 200, 3.0)
    some("2025", 2, b2, 200, 50.0)
    some("2025", 3, c2, 300, 10.0)
    some("2025", 7, c2, 300, None)
    # year 3, 2026: A stops removing
    a3, b3, c3 = at("2026-03-01T06:00:00"), at("2026-07-14T09:00:00"), at("2026-10-01T00:00:00")
    some("2026", 20, a3, 100, 2.0)
    some("2026", 30, a3, 100, 100.0, renotices=2, escalated=a3 + timedelta(hours=72))
    some("2026", 10, a3, 100, 100.0, renotices=2)
    some("2026", 15, b3, 200, 5.0)
    some("2026", 15, b3, 200, None)
    some("2026", 5, c3, 300, 24.0)  # exactly 24 hours: within 24 hours
    some("2026", 5, c3, 300, 48.0)  # exactly 48 hours: 24 to 48 hours
    placed = order(session, 100, at("2026-04-01T09:00:00"))
    penalty(session, placed, at("2026-04-02T09:00:00"), 50_000, 1)
    penalty(session, placed, at("2026-04-03T09:00:00"), 50_000, 2)
    session.flush()
    return made


EXPECTED_YEARS = {
    # year: (notified, within 24 h, 24-48 h, later, online, median, p90)
    "2024": (100, 84, 8, 2, 6, 1.0, 27.0),
    "2025": (100, 87, 0, 2, 11, 1.0, 3.0),
    "2026": (100, 40, 5, 40, 15, 48.0, 100.0),  # 85 offline: the 43rd is 48 h
}


def test_the_hand_worked_quantiles():
    # 2024's 94 offline hours: median between the 47th and 48th (both 1 h); p90 at rank
    # 0.9 * 93 = 83.7: 20 h and 30 h, 70% of the way: 27 h
    hours = sorted([1.0] * 50 + [6.0] * 25 + [12.0] * 5 + [20.0] * 4 + [30.0] * 3 + [40.0] * 5
                   + [72.0] * 2)  # fmt: skip
    assert quantile(hours, 0.5) == 1.0
    assert quantile(hours, 0.9) == pytest.approx(27.0, abs=1e-12)
    assert quantile([], 0.5) is None
    assert quantile([3.0], 0.9) == 3.0


def assert_three_years(sessions) -> None:
    for year, (notified, d1, d2, later, online, median, p90) in EXPECTED_YEARS.items():
        total = figures_of(sessions, "year", year, "")
        shape = ("notified", "offline_24h", "offline_48h", "offline_later", "online")
        assert tuple(total[name] for name in shape) == (notified, d1, d2, later, online)
        assert total["median_hours"] == pytest.approx(median, abs=1e-9)
        assert total["p90_hours"] == pytest.approx(p90, abs=1e-9)
        share = round(100 * total["offline_24h"] / total["notified"])
        assert share == {"2024": 84, "2025": 87, "2026": 40}[year]
    a24 = figures_of(sessions, "year", "2024", A)
    assert a24 == {
        "reported": 61, "notified": 60, "offline_24h": 54, "offline_48h": 3, "offline_later": 2,
        "online": 1, "median_hours": 1.0, "p90_hours": pytest.approx(20.0), "renotices": 0,
        "escalations": 0, "orders": 0, "penalties_cents": 0,
    }  # fmt: skip
    b24 = figures_of(sessions, "quarter", "2024-Q2", B)
    assert (b24["notified"], b24["offline_24h"], b24["offline_48h"]) == (30, 25, 5)
    assert (b24["median_hours"], b24["p90_hours"]) == (6.0, pytest.approx(40.0))
    c24 = figures_of(sessions, "month", "2024-12", C)  # gone in 2025, counted in 2024
    assert (c24["notified"], c24["offline_24h"], c24["online"]) == (10, 5, 5)
    assert (c24["median_hours"], c24["p90_hours"]) == (12.0, 12.0)
    # the moved item: notified at A, reported at B
    assert figures_of(sessions, "year", "2025", A)["reported"] == 59
    assert figures_of(sessions, "year", "2025", B)["reported"] == 31
    assert figures_of(sessions, "year", "2025", "")["reported"] == 100
    a26 = figures_of(sessions, "year", "2026", A)
    assert (a26["offline_24h"], a26["offline_later"], a26["renotices"], a26["escalations"]) == (
        20, 40, 80, 30)  # fmt: skip
    # 20 at 2 h and 40 at 100 h: median between ranks 29 and 30 (100 h); p90 100 h
    assert (a26["median_hours"], a26["p90_hours"]) == (100.0, 100.0)
    assert (a26["orders"], a26["penalties_cents"]) == (1, 100_000)
    april = figures_of(sessions, "month", "2026-04", A)  # the order's month: no notices
    assert (april["notified"], april["orders"], april["penalties_cents"]) == (0, 1, 100_000)
    assert april["median_hours"] is None
    c26 = figures_of(sessions, "year", "2026", C)
    assert (c26["offline_24h"], c26["offline_48h"], c26["median_hours"]) == (5, 5, 36.0)
    # concentration: most volume at A
    assert figures_of(sessions, "year", "2026", A)["notified"] == 60


def test_three_years_exactly_after_a_rebuild(sessions):
    with writing(sessions) as session:
        three_years(session)
    written = rebuild(sessions)
    assert written > 0
    assert_three_years(sessions)
    check_reference(sessions)
    # a second rebuild changes nothing
    before = stored_tables_now(sessions)
    rebuild(sessions)
    assert stored_tables_now(sessions) == before


def stored_tables_now(sessions):
    with sessions() as session:
        return stored_tables(session)


def test_three_years_exactly_by_refreshes_as_the_items_go_offline(sessions, frozen):
    with writing(sessions) as session:
        made = three_years(session, offline=False)
    frozen.advance(timedelta(minutes=5))  # past the overlap: the rows are not read again
    refresh(sessions)  # the first refresh builds everything
    assert figures_of(sessions, "year", "2024", "")["online"] == 100
    assert figures_of(sessions, "year", "2024", "")["median_hours"] is None
    check_reference(sessions)
    for year in ("2024", "2025", "2026"):
        frozen.advance(timedelta(minutes=5))
        with writing(sessions) as session:
            for row_, hours in made[year]:
                if hours is not None:
                    session.add(row_)
                    go_offline(row_, hours)
        # past the overlap, as a worker's refresh comes a while after the changes
        frozen.advance(timedelta(minutes=2))
        recomputed = refresh(sessions)
        months = {"2024": {"2024-03", "2024-06", "2024-12"}, "2025": {"2025-02", "2025-05",
                  "2025-11"}, "2026": {"2026-03", "2026-07", "2026-10"}}[year]  # fmt: skip
        # the months and quarters of the notices, per hoster and total, and the year's 3 + 1;
        # 2025's items were reported the month before their notices (A and B: the moved one)
        # 2025-01: A, B, total and B in 2025-Q1; 2026-09: C, total and C in 2026-Q3
        extra = {"2025": 4, "2026": 3}.get(year, 0)
        assert recomputed == len(months) * 2 * 2 + 4 + extra
        check_reference(sessions)
    assert_three_years(sessions)
    # nothing changed: nothing recomputed (the platforms' current month aside)
    frozen.advance(timedelta(minutes=5))
    assert refresh(sessions) <= 3


def test_a_new_offline_event_is_reflected_by_the_next_refresh(sessions, frozen):
    with writing(sessions) as session:
        first = at("2026-11-02T10:00:00")
        waiting = item(session, first, 100)
        item(session, first, 100, hours=3.0)
        item(session, at("2026-05-02T10:00:00"), 200, hours=3.0)
        item(session, at("2025-05-02T10:00:00"), 300, hours=3.0)
    frozen.advance(timedelta(minutes=5))
    refresh(sessions)
    assert figures_of(sessions, "month", "2026-11", A)["online"] == 1
    frozen.advance(timedelta(minutes=10))
    with writing(sessions) as session:
        session.add(waiting)
        go_offline(waiting, 30.0)
    frozen.advance(timedelta(minutes=2))
    recomputed = refresh(sessions)
    # A's month, quarter and year, and the three totals; the platforms' current month, its
    # quarter and year (empty: no platforms) count nothing
    assert recomputed == 6
    a = figures_of(sessions, "month", "2026-11", A)
    assert (a["online"], a["offline_24h"], a["offline_48h"]) == (0, 1, 1)
    assert a["median_hours"] == pytest.approx(16.5)
    check_reference(sessions)
    # the marks moved: a refresh with nothing new recomputes nothing
    frozen.advance(timedelta(minutes=10))
    assert refresh(sessions) == 0


def test_refresh_follows_orders_penalties_and_moves(sessions, frozen):
    with writing(sessions) as session:
        moving = item(session, at("2026-02-02T10:00:00"), 100, hours=3.0)
        item(session, at("2026-02-02T10:00:00"), 200, hours=3.0)
    refresh(sessions)
    frozen.advance(timedelta(minutes=10))
    with writing(sessions) as session:
        session.add(moving)
        moving.asn, moving.network_owner, moving.updated_at = 200, "MidHost", frozen.now()
        moved = '{"from": {"asn": 100, "network_owner": "BigHost B.V."}}'
        session.add(
            ItemEvent(item_id=moving.id, at=frozen.now(), event="moved", actor="w", details=moved)
        )
        placed = order(session, 300, at("2026-02-20T10:00:00"))
        penalty(session, placed, at("2026-03-01T10:00:00"), 12_345, 1)
    refresh(sessions)
    check_reference(sessions)
    assert figures_of(sessions, "month", "2026-02", A)["reported"] == 0
    assert figures_of(sessions, "month", "2026-02", B)["reported"] == 2
    assert figures_of(sessions, "month", "2026-02", C)["orders"] == 1
    assert figures_of(sessions, "month", "2026-03", C)["penalties_cents"] == 12_345


def test_platform_figures(sessions, frozen):
    with writing(sessions) as session:
        hashes = hash_set(session)
        one, two = platform(session, "platform-one"), platform(session, "platform-two")
        hotline = platform(session, "hotline-x", kind="hotline")
        for outcome in ("blocked", "blocked", "removed", None):
            hit(session, one, at("2026-12-01T10:00:00"), outcome, hashes.id)
        hit(session, one, at("2027-01-15T11:00:00"), None, hashes.id)  # pending, not overdue
        hit(session, two, at("2026-11-01T10:00:00"), "false_positive", hashes.id)
        hit(session, hotline, at("2026-11-01T10:00:00"), "blocked", hashes.id)
        counts(session, one, "2026-12-01", 10, 100)
        counts(session, one, "2026-12-02", 5, 50)
        counts(session, hotline, "2026-12-02", 5, 50)
    refresh(sessions)
    with sessions() as session:
        found = session.scalars(select(MonitorPlatform))
        rows = {(r.period_kind, r.period, r.key): r for r in found}
    dec = rows[("month", "2026-12", str(one.id))]
    got = (dec.checks, dec.items, dec.hits, dec.blocked, dec.removed, dec.pending, dec.overdue)
    assert got == (15, 150, 4, 2, 1, 1, 1)
    year = rows[("year", "2026", "")]
    assert (year.hits, year.false_positive, year.blocked, year.checks) == (5, 1, 2, 15)
    jan = rows[("month", "2027-01", str(one.id))]
    assert (jan.pending, jan.overdue) == (1, 0)
    check_reference(sessions)
    # nothing new: nothing recomputed; a new hit: its month, quarter and year (org and total)
    frozen.advance(timedelta(minutes=5))
    assert refresh(sessions) == 0
    with writing(sessions) as session:
        hit(session, two, frozen.now(), "removed", hashes.id)
    frozen.advance(timedelta(minutes=2))
    assert refresh(sessions) == 3 * 3  # one, two and the total, by month, quarter and year
    check_reference(sessions)
    # past hit_outcome_due_hours (72) the pending hit is overdue: refresh brings it (its month
    # has pending hits)
    frozen.advance(timedelta(hours=80))
    refresh(sessions)
    with sessions() as session:
        jan_total = session.scalar(select(MonitorPlatform).where(
            MonitorPlatform.period_kind == "month", MonitorPlatform.period == "2027-01",
            MonitorPlatform.key == ""))  # fmt: skip
        assert (jan_total.pending, jan_total.overdue) == (1, 1)
    check_reference(sessions)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_histories_equal_duckdb(sessions, frozen, seed):
    with writing(sessions) as session:
        rows = random_history(session, seed)
    rebuild(sessions)
    check_reference(sessions)
    # then events: some go offline, some come back, new ones; refreshed, still equal
    import random

    rng = random.Random(seed)
    for _ in range(3):
        frozen.advance(timedelta(minutes=3))
        with writing(sessions) as session:
            for changed in rng.sample(rows, 20):
                session.add(changed)
                if changed.first_notice_at is None:
                    continue
                if changed.state == "offline":
                    changed.state, changed.gone_at, changed.offline_at = "noticed", None, None
                    changed.updated_at = frozen.now()
                else:
                    go_offline(changed, rng.uniform(0, 80))
            random_history(session, seed * 100 + _, items=20)
        refresh(sessions)
        check_reference(sessions)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(MonitorHoster)) > 50
        # the rows in memory give what the rows through files gave
        in_memory = reference_tables(read_rows(session))
        assert compare(in_memory, reference_tables(session)) == []


def test_refresh_with_a_limit_takes_the_rest_next_time(sessions, frozen):
    with writing(sessions) as session:
        item(session, at("2026-01-05T00:00:00"), 100)
    refresh(sessions)
    frozen.advance(timedelta(minutes=5))
    with writing(sessions) as session:
        for month in range(1, 7):
            item(session, at(f"2026-{month:02d}-05T00:00:00"), 100, hours=2.0)
    refresh(sessions, limit=2)
    with sessions() as session:
        assert compare(reference_tables(session), stored_tables(session))
    while refresh(sessions, limit=2):
        frozen.advance(timedelta(minutes=2))
    check_reference(sessions)


def test_totals_counts_follow_at_once_and_their_quantiles_with_the_next_full_refresh(
    sessions, frozen
):
    # the worker refreshes without the totals' quantiles (a scan of the whole period) most
    # of the time: the totals' counts are the sums of their hosters' rows and right at once
    with writing(sessions) as session:
        first = at("2026-11-02T10:00:00")
        waiting = item(session, first, 100)
        item(session, first, 100, hours=3.0)
        item(session, first, 200, hours=10.0)
    frozen.advance(timedelta(minutes=5))
    refresh(sessions)
    total = figures_of(sessions, "month", "2026-11", "")
    assert (total["online"], total["median_hours"]) == (1, pytest.approx(6.5))
    frozen.advance(timedelta(minutes=10))
    with writing(sessions) as session:
        session.add(waiting)
        go_offline(waiting, 30.0)
    frozen.advance(timedelta(minutes=2))
    assert refresh(sessions, quantiles=False) == 6
    total = figures_of(sessions, "month", "2026-11", "")
    assert (total["online"], total["offline_24h"], total["offline_48h"]) == (0, 2, 1)
    assert total["median_hours"] == pytest.approx(6.5)  # not yet: 10 hours when settled
    # A's month is recomputed from its items; its quarter and year are summed from the months
    assert figures_of(sessions, "month", "2026-11", A)["median_hours"] == pytest.approx(16.5)
    year = figures_of(sessions, "year", "2026", A)
    assert (year["online"], year["offline_24h"], year["offline_48h"]) == (0, 1, 1)
    assert year["median_hours"] == pytest.approx(3.0)  # not yet: 16.5 when settled
    differences = compare(reference_tables(sessions), stored_tables_now(sessions))
    # only quantiles differ: the totals' and A's quarter's and year's
    assert len(differences) == 10, differences
    assert all("median_hours" in d or "p90_hours" in d for d in differences), differences
    assert not [d for d in differences if "month/" in d and "/: " not in d], differences
    # the worker settles the five marked groups outside the refreshes' lock
    frozen.advance(timedelta(minutes=1))
    assert figures.settle_totals(sessions) == 5
    assert figures.settle_totals(sessions) == 0
    assert figures_of(sessions, "year", "2026", A)["median_hours"] == pytest.approx(16.5)
    assert figures_of(sessions, "month", "2026-11", "")["median_hours"] == pytest.approx(10.0)
    check_reference(sessions)
    assert refresh(sessions) == 0


def test_a_full_refresh_settles_what_refreshes_without_quantiles_marked(sessions, frozen):
    with writing(sessions) as session:
        first = at("2026-11-02T10:00:00")
        waiting = item(session, first, 100)
        item(session, first, 200, hours=10.0)
    frozen.advance(timedelta(minutes=5))
    refresh(sessions)
    frozen.advance(timedelta(minutes=10))
    with writing(sessions) as session:
        session.add(waiting)
        go_offline(waiting, 2.0)
    frozen.advance(timedelta(minutes=2))
    assert refresh(sessions, quantiles=False) == 6
    frozen.advance(timedelta(minutes=1))
    # nothing new: A's quarter and year (recomputed whole, with their totals), the month's total
    assert refresh(sessions) == 3
    assert figures_of(sessions, "month", "2026-11", "")["median_hours"] == pytest.approx(6.0)
    check_reference(sessions)
