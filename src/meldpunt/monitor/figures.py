"""The monitor's figures, kept up to date as events arrive (``docs/monitor.md``).

``monitor_hosters`` holds, per period (month, quarter, year) and hoster (``key``
``'<asn>|<network owner>'`` as attributed when the first notice went; ``''`` is the period's
total), the figures of the URLs first notified in that period; ``monitor_platforms`` holds the
check service's figures per platform and period. Pages and exports read only these rows.

``refresh`` follows what changed since its marks (``monitor_marks``): items by ``updated_at``,
orders by ``updated_at`` (both read back ``OVERLAP`` before the mark, for transactions that
committed late), penalties and hits by id, hits also by ``outcome_at``; it recomputes only
the groups those rows belong to, and the periods' totals. ``rebuild`` recomputes everything
from the raw rows. On PostgreSQL a group's quantiles are computed in SQL
(``percentile_cont``); on SQLite the group's hours are read and computed here, the same way
(linear interpolation between the closest ranks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.config import get_settings
from meldpunt.reports.context import HotlineContext
from meldpunt.store.db import begin_write
from meldpunt.store.models import (
    CheckCount,
    Hit,
    ItemEvent,
    MonitorHoster,
    MonitorMark,
    MonitorPlatform,
    Order,
    Organisation,
    Penalty,
    UrlItem,
)

from .periods import next_start, parse_period, period_of, period_of_day
from .vocabulary import PERIODS, Period

__all__ = [
    "HOSTER_FIGURES",
    "OVERLAP",
    "PLATFORM_FIGURES",
    "Sessions",
    "hoster_key",
    "hours_between",
    "quantile",
    "rebuild",
    "refresh",
    "finish_settling",
    "run_monitor",
    "settle_totals",
    "split_key",
]

Sessions = Callable[[], AbstractContextManager[Session]]

#: Rows changed this long before a mark are read again: a transaction that stamped its rows
#: and committed a little later is not missed.
OVERLAP = timedelta(seconds=60)

#: The figures of a hoster row, in the order of the tables.
HOSTER_FIGURES = (
    "reported", "notified", "offline_24h", "offline_48h", "offline_later", "online",
    "median_hours", "p90_hours", "renotices", "escalations", "orders", "penalties_cents",
)  # fmt: skip
PLATFORM_FIGURES = (
    "checks", "items", "hits", "blocked", "removed", "reported", "false_positive", "other",
    "pending", "overdue",
)  # fmt: skip
_OUTCOMES = ("blocked", "removed", "reported", "false_positive", "other")

_MARK_HOSTERS = "hosters"
_MARK_PLATFORMS = "platforms"
_MARK_PENALTIES = "penalties"
_MARK_COUNTS = "check_counts"
#: A period whose total's median and p90 wait for the next full pass (name + kind:label).
_STALE = "totals:"
#: A quarter's or year's hoster group whose counts were summed from its months and whose median
#: and p90 wait for ``settle_totals`` (name + kind:period:digest of the key).
_GROUP = "g:"
#: How often the worker's step computes the totals' quantiles of the periods that changed
#: (a scan of the period's items); their counts follow every refresh.
TOTAL_QUANTILE_SECONDS = 30.0

log = logging.getLogger(__name__)
_COUNTS = tuple(n for n in HOSTER_FIGURES if not n.endswith("_hours"))
_LOCK_ID = 7_310_412  # the PostgreSQL advisory lock that serialises refreshes
_DAY = timedelta(hours=24)
_TWO_DAYS = timedelta(hours=48)
#: Events whose details name the hoster an item moved away from.
_MOVE_EVENTS = ("moved", "reopened")

Group = tuple[str, str]  # (period, key)


def hoster_key(asn: int | None, owner: str | None) -> str:
    """The key of a hoster: ``'<asn>|<network owner>'``, an unknown part empty."""
    return f"{'' if asn is None else asn}|{owner or ''}"


def split_key(key: str) -> tuple[int | None, str | None]:
    asn, _, owner = key.partition("|")
    return (int(asn) if asn else None), (owner or None)


def hours_between(first: datetime, gone: datetime) -> float:
    """Hours from the first notice to gone, never below zero."""
    return max(0.0, (gone - first).total_seconds() / 3600)


def quantile(values: list[float], q: float) -> float | None:
    """The continuous quantile of ``values`` (sorted), interpolating linearly between the
    closest ranks: PostgreSQL's percentile_cont, DuckDB's quantile_cont, numpy's default."""
    if not values:
        return None
    position = q * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    fraction = position - low
    return values[low] + (values[high] - values[low]) * fraction


# --- computing hoster groups ----------------------------------------------------------------------


@dataclass
class _Acc:
    """A hoster group's figures while they are added up (SQLite) or read (PostgreSQL)."""

    values: dict[str, Any] = field(
        default_factory=lambda: {
            **dict.fromkeys(HOSTER_FIGURES, 0),
            "median_hours": None,
            "p90_hours": None,
        }  # fmt: skip
    )
    hours: list[float] = field(default_factory=list)
    country: str | None = None

    def finish(self) -> None:
        if self.hours:
            self.hours.sort()
            self.values["median_hours"] = quantile(self.hours, 0.5)
            self.values["p90_hours"] = quantile(self.hours, 0.9)
            self.hours = []


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _period_expr(session: Session, kind: str, column: Any) -> Any:
    """SQL for the label of the period of ``kind`` that ``column`` falls in (UTC)."""
    if _is_postgres(session):
        pattern = {Period.month: "YYYY-MM", Period.quarter: 'YYYY-"Q"Q', Period.year: "YYYY"}
        # literals, not parameters: GROUP BY must see the same expression as SELECT
        utc = func.timezone(literal_column("'UTC'"), column)
        return func.to_char(utc, literal_column(f"'{pattern[Period(kind)]}'"))
    # SQLite keeps UTC as 'YYYY-MM-DD HH:MM:SS.ffffff'
    return _day_period(kind, column)


def _day_period(kind: str, column: Any) -> Any:
    """SQL for the period label of a text 'YYYY-MM-DD...' column."""
    one, four, six, seven, two = (literal_column(str(n), Integer) for n in (1, 4, 6, 7, 2))
    if kind == Period.month:
        return func.substr(column, one, seven)
    if kind == Period.year:
        return func.substr(column, one, four)
    quarter = (cast(func.substr(column, six, two), Integer) + two) // literal_column("3")
    return (
        func.substr(column, one, four)
        .op("||")(literal_column("'-Q'"))
        .op("||")(cast(quarter, String))
    )


def _in_range(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    where = [column.is_not(None)]
    if start is not None:
        where.append(column >= start)
    if end is not None:
        where.append(column < end)
    return where


def _of_asns(column: Any, asns: set[int | None] | None) -> list[Any]:
    """Rows of these AS numbers (None among them: rows without one); None: every row."""
    if asns is None:
        return []
    known = sorted(a for a in asns if a is not None)
    parts = []
    if known:
        parts.append(column.in_(known))
    if None in asns:
        parts.append(column.is_(None))
    return [or_(*parts) if parts else false()]


def _notified(
    session: Session,
    kind: str,
    start: datetime | None,
    end: datetime | None,
    asns: set[int | None] | None,
    *,
    total: bool,
) -> dict[Group, _Acc]:
    """Figures of notified items per (period, hoster), or per period (``total``)."""
    first = UrlItem.first_notice_at
    where = [*_in_range(first, start, end), *_of_asns(UrlItem.notice_asn, asns)]
    gone = func.coalesce(UrlItem.gone_at, UrlItem.offline_at)
    offline = and_(UrlItem.state == "offline", gone.is_not(None))
    found: dict[Group, _Acc] = {}
    if _is_postgres(session):
        period = _period_expr(session, kind, first)
        late = gone - first
        hours = case(
            (offline, func.greatest(0.0, cast(func.extract("epoch", late), Float) / 3600.0)),
            else_=None,
        )
        keys = [] if total else [UrlItem.notice_asn, UrlItem.notice_owner]
        query = (
            select(
                period,
                *keys,
                func.count(),
                func.count().filter(and_(offline, late <= _DAY)),
                func.count().filter(and_(offline, late > _DAY, late <= _TWO_DAYS)),
                func.count().filter(and_(offline, late > _TWO_DAYS)),
                func.count().filter(~offline),
                func.percentile_cont(0.5).within_group(hours),
                func.percentile_cont(0.9).within_group(hours),
                func.coalesce(func.sum(UrlItem.renotices), 0),
                func.count(UrlItem.escalated_at),
                func.max(UrlItem.notice_country),
            )  # fmt: skip
            .where(*where)
            .group_by(period, *keys)
        )
        for row in session.execute(query):
            label = row[0]
            key = "" if total else hoster_key(row[1], row[2])
            rest = row[1:] if total else row[3:]
            acc = _Acc(country=rest[9])
            names = ("notified", "offline_24h", "offline_48h", "offline_later", "online",
                     "median_hours", "p90_hours", "renotices", "escalations")  # fmt: skip
            for name, value in zip(names, rest[:9], strict=True):
                acc.values[name] = value if name.endswith("_hours") else int(value or 0)
            found[(label, key)] = acc
        return found
    query = select(
        first, UrlItem.notice_asn, UrlItem.notice_owner, UrlItem.state, UrlItem.gone_at,
        UrlItem.offline_at, UrlItem.renotices, UrlItem.escalated_at, UrlItem.notice_country,
    ).where(*where)  # fmt: skip
    for (
        at,
        asn,
        owner,
        state,
        gone_at,
        offline_at,
        renotices,
        escalated,
        country,
    ) in session.execute(query):
        assert at is not None
        group = (period_of(kind, at), "" if total else hoster_key(asn, owner))
        acc = found.setdefault(group, _Acc())
        values = acc.values
        values["notified"] += 1
        values["renotices"] += renotices or 0
        values["escalations"] += escalated is not None
        if country is not None and (acc.country is None or country > acc.country):
            acc.country = country
        went = gone_at or offline_at
        if state != "offline" or went is None:
            values["online"] += 1
            continue
        taken = went - at
        bucket = "offline_24h" if taken <= _DAY else "offline_48h"
        values[bucket if taken <= _TWO_DAYS else "offline_later"] += 1
        acc.hours.append(hours_between(at, went))
    for acc in found.values():
        acc.finish()
    return found


def _counted(
    session: Session,
    kind: str,
    start: datetime | None,
    end: datetime | None,
    asns: set[int | None] | None,
    *,
    total: bool,
    reported: bool = True,
) -> dict[Group, dict[str, int]]:
    """Reported items (unless not ``reported``), orders and penalties per (period, hoster)
    or per period."""
    found: dict[Group, dict[str, int]] = defaultdict(lambda: {"reported": 0, "orders": 0,
                                                               "penalties_cents": 0})  # fmt: skip
    sources: tuple[tuple[str, Any, Any, Any, Any, list[Any]], ...] = (
        ("reported", UrlItem.created_at, UrlItem.asn, UrlItem.network_owner, func.count(),
         [UrlItem.grade == "illegal",
          *([] if total else [or_(UrlItem.asn.is_not(None), UrlItem.network_owner.is_not(None))])]),
        ("orders", Order.issued_at, Order.asn, Order.network_owner, func.count(), []),
        ("penalties_cents", Penalty.forfeited_at, Penalty.asn, Penalty.network_owner,
         func.coalesce(func.sum(Penalty.amount_cents), 0), []),
    )  # fmt: skip
    for name, at, asn, owner, measure, more in sources[0 if reported else 1 :]:
        period = _period_expr(session, kind, at)
        keys = [] if total else [asn, owner]
        query = (
            select(period, *keys, measure)
            .where(*_in_range(at, start, end), *_of_asns(asn, asns), *more)
            .group_by(period, *keys)
        )
        for row in session.execute(query):
            key = "" if total else hoster_key(row[1], row[2])
            found[(row[0], key)][name] = int(row[-1] or 0)
    return found


def _hoster_rows(
    session: Session,
    kind: str,
    start: datetime | None,
    end: datetime | None,
    asns: set[int | None] | None,
    *,
    total: bool,
    now: datetime,
    reported: dict[Group, int] | None = None,
) -> dict[Group, dict[str, Any]]:
    """The rows of the groups found, as column values (groups with nothing to count left
    out); ``reported`` given: those counts of reported items, not counted here."""
    notified = _notified(session, kind, start, end, asns, total=total)
    counted = _counted(session, kind, start, end, asns, total=total, reported=reported is None)
    for group, count in (reported or {}).items():
        counted[group]["reported"] = count
    rows: dict[Group, dict[str, Any]] = {}
    for group in set(notified) | set(counted):
        acc = notified.get(group) or _Acc()
        if acc.values["notified"] == 0:
            acc.values["median_hours"] = acc.values["p90_hours"] = None
        # every row with the same keys: the driver sends them in batches of one statement
        values = {"reported": 0, "orders": 0, "penalties_cents": 0, **acc.values,
                  **counted.get(group, {})}  # fmt: skip
        if not (values["notified"] or values["reported"] or values["orders"]
                or values["penalties_cents"]):  # fmt: skip
            continue
        asn, owner = split_key(group[1])
        rows[group] = {
            "period_kind": str(kind), "period": group[0], "key": group[1], "asn": asn,
            "name": owner, "country": acc.country, "computed_at": now, **values,
        }  # fmt: skip
    return rows


# --- computing platform groups --------------------------------------------------------------------


def _platform_months(
    session: Session, start: datetime | None, end: datetime | None, now: datetime
) -> dict[Group, dict[str, Any]]:
    """Platform figures per (month, org id), and per month (key '')."""
    cutoff = now - timedelta(hours=get_settings().hit_outcome_due_hours)
    platforms = dict(
        session.execute(
            select(Organisation.id, Organisation.name).where(Organisation.kind == "platform")
        ).all()
    )
    found: dict[Group, dict[str, Any]] = {}

    def add(month: str, org: int, name: str, value: int) -> None:
        for key in (str(org), ""):
            row = found.get((month, key))
            if row is None:
                row = found[(month, key)] = dict.fromkeys(PLATFORM_FIGURES, 0)
                row["org_id"] = org if key else None
                row["name"] = platforms[org] if key else None
            row[name] += value

    if not platforms:
        return found
    month = _period_expr(session, Period.month, Hit.at)
    overdue = case((and_(Hit.outcome.is_(None), Hit.at < cutoff), 1), else_=0)
    query = (
        select(month, Hit.org_id, Hit.outcome, overdue, func.count())
        .where(*_in_range(Hit.at, start, end), Hit.org_id.in_(sorted(platforms)))
        .group_by(month, Hit.org_id, Hit.outcome, overdue)
    )
    for label, org, outcome, late, count in session.execute(query):
        add(label, org, "hits", count)
        add(label, org, outcome if outcome in _OUTCOMES else "pending", count)
        if outcome is None and late:
            add(label, org, "overdue", count)
    days: list[Any] = [CheckCount.org_id.in_(sorted(platforms))]
    if start is not None:
        days.append(CheckCount.day >= start.date().isoformat())
    if end is not None:
        days.append(CheckCount.day < end.date().isoformat())
    day_month = _day_period(Period.month, CheckCount.day)
    query_days = (
        select(day_month, CheckCount.org_id, func.sum(CheckCount.checks),
               func.sum(CheckCount.items))
        .where(*days)
        .group_by(day_month, CheckCount.org_id)
    )  # fmt: skip
    for label, org, checks, items in session.execute(query_days):
        add(label, org, "checks", int(checks or 0))
        add(label, org, "items", int(items or 0))
    return found


def _platform_rows(month_rows: dict[Group, dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Rows of every period kind, the quarters and years summed from the months."""
    out: list[dict[str, Any]] = []
    for kind in PERIODS:
        summed: dict[Group, dict[str, Any]] = {}
        for (month, key), values in month_rows.items():
            group = (period_of_day(kind, month + "-01"), key)
            row = summed.get(group)
            if row is None:
                summed[group] = dict(values)
                continue
            for name in PLATFORM_FIGURES:
                row[name] += values[name]
        for (label, key), values in summed.items():
            out.append({"period_kind": str(kind), "period": label, "key": key,
                        "computed_at": now, **values})  # fmt: skip
    return out


# --- marks, locks ---------------------------------------------------------------------------------


def _lock(session: Session) -> None:
    """One refresh or rebuild at a time (several workers may run the step)."""
    if _is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    else:
        begin_write(session)


def _mark(session: Session, name: str) -> MonitorMark | None:
    return session.get(MonitorMark, name)


def _set_mark(session: Session, name: str, at: datetime, last_id: int | None = None) -> None:
    mark = session.get(MonitorMark, name)
    if mark is None:
        session.add(MonitorMark(name=name, at=at, last_id=last_id))
    else:
        mark.at, mark.last_id = at, last_id


# --- rebuild --------------------------------------------------------------------------------------


def rebuild(sessions: Sessions, *, progress: Callable[[str, int, int], None] | None = None) -> int:
    """Recompute every figure from the raw rows (deleting rows no longer backed by any);
    returns the number of groups written. ``progress(step, done, total)`` is told as it goes."""
    with sessions() as session:
        _lock(session)
        count = _rebuild(session, progress)
        session.commit()
        return count


def _rebuild(session: Session, progress: Callable[[str, int, int], None] | None = None) -> int:
    now = clock.now()
    last_hit = session.scalar(select(func.max(Hit.id))) or 0
    steps = len(PERIODS) + 1
    session.execute(delete(MonitorHoster))
    written = 0
    for done, kind in enumerate(PERIODS):
        if progress:
            progress(f"hosters by {kind}", done, steps)
        rows = _hoster_rows(session, kind, None, None, None, total=False, now=now)
        rows.update(_hoster_rows(session, kind, None, None, None, total=True, now=now))
        _insert(session, MonitorHoster, list(rows.values()))
        written += len(rows)
    if progress:
        progress("platforms", len(PERIODS), steps)
    session.execute(delete(MonitorPlatform))
    platform_rows = _platform_rows(_platform_months(session, None, None, now), now)
    _insert(session, MonitorPlatform, platform_rows)
    written += len(platform_rows)
    _set_mark(session, _MARK_HOSTERS, now)
    _set_mark(session, _MARK_PENALTIES, now, session.scalar(select(func.max(Penalty.id))) or 0)
    _set_mark(session, _MARK_PLATFORMS, now, last_hit)
    _set_mark(session, _MARK_COUNTS, now, _counts_signature(session, now - OVERLAP, now))
    session.flush()
    if progress:
        progress("done", steps, steps)
    return written


# --- refresh --------------------------------------------------------------------------------------


def refresh(sessions: Sessions, *, limit: int | None = None, quantiles: bool = True) -> int:
    """Bring the figures up to date with what changed since the marks; returns the number of
    groups recomputed (hoster groups with the periods' totals, and platform groups). With
    ``limit``, at most that many changed items are taken; the rest wait for the next call.
    The first refresh of a database rebuilds.

    A period's total row is the sum of its hosters' rows for every count, so it follows at
    once; its median and p90 need a scan of all the period's items (two million in a busy
    year), so with ``quantiles=False`` they are left as they were and the period is marked;
    the next call with ``quantiles`` (the default) computes them for every marked period."""
    with sessions() as session:
        _lock(session)
        if _mark(session, _MARK_HOSTERS) is None or _mark(session, _MARK_PLATFORMS) is None:
            count = _rebuild(session)
        else:
            count = _refresh_hosters(session, limit, quantiles) + _refresh_platforms(session)
            if quantiles:
                count += _settle_totals(session)
            if not count:
                # Nothing changed: write nothing, not even the marks (every source is followed
                # from its mark, so the next refresh finds the same nothing). A refresh a second
                # that commits would, on SQLite, fail every transaction of another connection
                # that read before it and writes after it ("database is locked").
                session.rollback()
                return 0
        session.commit()
        return count


def _refresh_hosters(session: Session, limit: int | None, quantiles: bool = True) -> int:
    now = clock.now()
    mark = _mark(session, _MARK_HOSTERS)
    assert mark is not None and mark.at is not None
    since = mark.at - OVERLAP
    dirty: set[tuple[str, str, str]] = set()

    def touch(at: datetime | None, key: str) -> None:
        if at is not None:
            for kind in PERIODS:
                dirty.add((kind, period_of(kind, at), key))

    query = (
        select(UrlItem.id, UrlItem.updated_at, UrlItem.first_notice_at, UrlItem.notice_asn,
               UrlItem.notice_owner, UrlItem.created_at, UrlItem.asn, UrlItem.network_owner,
               UrlItem.grade)
        .order_by(UrlItem.updated_at, UrlItem.id)
    )  # fmt: skip
    if mark.last_id is not None:  # going on after a call that stopped at its limit
        query = query.where(
            or_(UrlItem.updated_at > mark.at,
                and_(UrlItem.updated_at == mark.at, UrlItem.id > mark.last_id))
        )  # fmt: skip
    else:
        query = query.where(UrlItem.updated_at >= since)
    if limit is not None:
        query = query.limit(limit)
    changed = session.execute(query).all()
    new_mark, new_last = now, None
    if limit is not None and len(changed) >= limit:
        # more to come: go on from the last row taken next time
        new_mark, new_last = changed[-1].updated_at, changed[-1].id
    for row in changed:
        touch(row.first_notice_at, hoster_key(row.notice_asn, row.notice_owner))
        if row.grade is None:
            continue  # not graded: in no hoster's "reported" yet
        if row.asn is not None or row.network_owner is not None:
            touch(row.created_at, hoster_key(row.asn, row.network_owner))
        touch(row.created_at, "")
    # an item that moved to another hoster leaves its old hoster's "reported" behind
    created = {row.id: row.created_at for row in changed}
    for chunk in _chunks(sorted(created), 1000):
        moves = select(ItemEvent.item_id, ItemEvent.details).where(
            ItemEvent.item_id.in_(chunk), ItemEvent.event.in_(_MOVE_EVENTS), ItemEvent.at >= since
        )
        for item_id, details in session.execute(moves):
            before = (json.loads(details or "{}") or {}).get("from") or {}
            if before.get("asn") is not None or before.get("network_owner"):
                touch(created[item_id], hoster_key(before.get("asn"), before.get("network_owner")))
    for issued, asn, owner in session.execute(
        select(Order.issued_at, Order.asn, Order.network_owner).where(Order.updated_at >= since)
    ):
        touch(issued, hoster_key(asn, owner))
    penalties = _mark(session, _MARK_PENALTIES)
    last_penalty = penalties.last_id if penalties is not None and penalties.last_id else 0
    for penalty_id, forfeited, asn, owner in session.execute(
        select(Penalty.id, Penalty.forfeited_at, Penalty.asn, Penalty.network_owner).where(
            Penalty.id > last_penalty
        )
    ):
        touch(forfeited, hoster_key(asn, owner))
        last_penalty = max(last_penalty, penalty_id)
    _set_mark(session, _MARK_PENALTIES, now, last_penalty)
    by_period: dict[tuple[str, str], set[str]] = defaultdict(set)
    for kind, label, key in dirty:
        by_period[(kind, label)].add(key)
    count = 0
    for (kind, label), keys in sorted(by_period.items()):
        count += _recompute_hosters(session, kind, label, keys - {""}, now, quantiles)
    _set_mark(session, _MARK_HOSTERS, new_mark, new_last)
    return count


def _recompute_hosters(session: Session, kind: str, label: str, keys: set[str],
                       now: datetime, quantiles: bool = True) -> int:  # fmt: skip
    """Recompute the groups ``keys`` of one period, and the period's total (its quantiles
    only with ``quantiles``; else the period is marked for ``_settle_totals``)."""
    start, end = parse_period(kind, label)
    rows: dict[Group, dict[str, Any]] = {}
    of_total = and_(MonitorHoster.period_kind == kind, MonitorHoster.period == label,
                    MonitorHoster.key == "")  # fmt: skip
    before = session.execute(
        select(MonitorHoster.median_hours, MonitorHoster.p90_hours).where(of_total)
    ).first()
    if keys and not quantiles and kind != Period.month:
        rows = _summed_rows(session, kind, label, keys, now)  # its months are up to date
    elif keys:
        asns = {split_key(key)[0] for key in keys}
        found = _hoster_rows(session, kind, start, end, asns, total=False, now=now)
        rows = {group: row for group, row in found.items() if group[1] in keys}
    of_period = and_(MonitorHoster.period_kind == kind, MonitorHoster.period == label)
    for chunk in _chunks(sorted(keys | {""}), 500):
        session.execute(delete(MonitorHoster).where(of_period, MonitorHoster.key.in_(chunk)))
    _insert(session, MonitorHoster, list(rows.values()))
    # The period's reported: its hosters' (just brought up to date) and the items attributed
    # to no hoster (on the index by AS number and time: no scan of every item of the period).
    keyed = session.scalar(
        select(func.coalesce(func.sum(MonitorHoster.reported), 0)).where(
            of_period, MonitorHoster.key != ""
        )
    )
    loose = session.scalar(
        select(func.count()).where(
            UrlItem.asn.is_(None), UrlItem.network_owner.is_(None), UrlItem.grade == "illegal",
            UrlItem.created_at >= start, UrlItem.created_at < end,
        )
    )  # fmt: skip
    reported = {(label, ""): int(keyed or 0) + int(loose or 0)}
    if quantiles:
        total = _hoster_rows(session, kind, start, end, None, total=True, now=now,
                             reported=reported)  # fmt: skip
        _insert(session, MonitorHoster, list(total.values()))
        stale = session.get(MonitorMark, f"{_STALE}{kind}:{label}")
        if stale is not None:
            session.delete(stale)
        return len(keys) + 1
    # the counts: the sum of the period's hoster rows (each item is in exactly one of them)
    sums = session.execute(
        select(*(func.coalesce(func.sum(getattr(MonitorHoster, n)), 0) for n in _COUNTS),
               func.max(MonitorHoster.country))
        .where(of_period, MonitorHoster.key != "")
    ).one()  # fmt: skip
    values: dict[str, Any] = {n: int(v) for n, v in zip(_COUNTS, sums[:-1], strict=True)}
    values["reported"] = reported[(label, "")]
    if any(values.values()):
        values["median_hours"] = before.median_hours if before is not None else None
        values["p90_hours"] = before.p90_hours if before is not None else None
        _insert(session, MonitorHoster, [{
            "period_kind": str(kind), "period": label, "key": "", "asn": None, "name": None,
            "country": sums[-1], "computed_at": now, **values,
        }])  # fmt: skip
    _set_mark(session, f"{_STALE}{kind}:{label}", now)
    return len(keys) + 1


def _group_mark(kind: str, label: str, key: str) -> str:
    return f"{_GROUP}{kind}:{label}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _summed_rows(session: Session, kind: str, label: str, keys: set[str],
                 now: datetime) -> dict[Group, dict[str, Any]]:  # fmt: skip
    """A quarter's or year's rows of ``keys`` with every count summed from the period's month
    rows (each item, order and penalty is in exactly one month), the median and p90 kept from
    before and the group marked for ``settle_totals``: a busy hoster's year is hundreds of
    thousands of items, its months a twelfth of that."""
    start, end = parse_period(kind, label)
    months, moment = [], start
    while moment < end:
        months.append(period_of(Period.month, moment))
        moment = next_start(Period.month, moment)
    rows: dict[Group, dict[str, Any]] = {}
    for chunk in _chunks(sorted(keys), 500):
        before = {
            key: (median, p90)
            for key, median, p90 in session.execute(
                select(MonitorHoster.key, MonitorHoster.median_hours, MonitorHoster.p90_hours)
                .where(MonitorHoster.period_kind == kind, MonitorHoster.period == label,
                       MonitorHoster.key.in_(chunk))
            )
        }  # fmt: skip
        summed = session.execute(
            select(MonitorHoster.key,
                   *(func.coalesce(func.sum(getattr(MonitorHoster, n)), 0) for n in _COUNTS),
                   func.max(MonitorHoster.country))
            .where(MonitorHoster.period_kind == Period.month, MonitorHoster.period.in_(months),
                   MonitorHoster.key.in_(chunk))
            .group_by(MonitorHoster.key)
        )  # fmt: skip
        for key, *figures_, country in summed:
            values: dict[str, Any] = {n: int(v) for n, v in zip(_COUNTS, figures_, strict=True)}
            if not any(values.values()):
                continue
            median, p90 = before.get(key, (None, None))
            if values["notified"] and values["notified"] > values["online"]:
                _set_mark(session, _group_mark(kind, label, key), now)
            else:
                median = p90 = None  # nothing offline: no quantiles to wait for
            asn, owner = split_key(key)
            rows[(label, key)] = {
                "period_kind": str(kind), "period": label, "key": key, "asn": asn,
                "name": owner, "country": country, "computed_at": now, "median_hours": median,
                "p90_hours": p90, **values,
            }  # fmt: skip
    return rows


def _settle_group(sessions: Sessions, name: str, at: datetime | None) -> bool:
    """Settle one hoster group's median and p90 marked by ``_summed_rows``."""
    kind, label, digest = name[len(_GROUP) :].split(":", 2)
    start, end = parse_period(kind, label)
    with sessions() as session:
        keys = session.scalars(
            select(MonitorHoster.key).where(
                MonitorHoster.period_kind == kind, MonitorHoster.period == label
            )
        ).all()
        key = next((k for k in keys if _group_mark(kind, label, k) == name), None)
        found = None
        if key is not None:
            asn = split_key(key)[0]
            found = _notified(session, kind, start, end, {asn}, total=False).get((label, key))
    with sessions() as session:
        _lock(session)
        mark = session.get(MonitorMark, name)
        if mark is None or mark.at != at:
            return False  # settled or marked again meanwhile
        if key is not None:
            values = found.values if found is not None else {}
            session.execute(
                update(MonitorHoster)
                .where(MonitorHoster.period_kind == kind, MonitorHoster.period == label,
                       MonitorHoster.key == key)
                .values(median_hours=values.get("median_hours"),
                        p90_hours=values.get("p90_hours"))
            )  # fmt: skip
        session.delete(mark)
        session.commit()
    return True


def settle_totals(sessions: Sessions) -> int:
    """Compute the median and p90 of the totals that refreshes without quantiles marked, each
    by a read of its period outside the refreshes' lock (seconds for a busy year at national
    scale: the refreshes go on meanwhile), then written under the lock if nobody marked the
    period again since; returns how many were settled (a period marked again waits for the
    next call)."""
    with sessions() as session:
        marked = [
            (m.name, m.at)
            for m in session.scalars(
                select(MonitorMark).where(
                    or_(MonitorMark.name.startswith(_STALE, autoescape=True),
                        MonitorMark.name.startswith(_GROUP, autoescape=True))
                )
            )
        ]  # fmt: skip
    settled = 0
    for name, at in marked:
        if name.startswith(_GROUP):
            settled += _settle_group(sessions, name, at)
            continue
        kind, label = name[len(_STALE) :].split(":", 1)
        start, end = parse_period(kind, label)
        with sessions() as session:
            found = _notified(session, kind, start, end, None, total=True).get((label, ""))
        with sessions() as session:
            _lock(session)
            mark = session.get(MonitorMark, name)
            if mark is None or mark.at != at:
                continue  # settled or marked again meanwhile
            values = found.values if found is not None else {}
            session.execute(
                update(MonitorHoster)
                .where(MonitorHoster.period_kind == kind, MonitorHoster.period == label,
                       MonitorHoster.key == "")
                .values(median_hours=values.get("median_hours"),
                        p90_hours=values.get("p90_hours"))
            )  # fmt: skip
            session.delete(mark)
            session.commit()
            settled += 1
    return settled


def _settle_totals(session: Session) -> int:
    """Compute the totals of the periods marked by a refresh without quantiles."""
    now = clock.now()
    groups = session.scalars(
        select(MonitorMark).where(MonitorMark.name.startswith(_GROUP, autoescape=True))
    ).all()
    for mark in groups:  # hoster groups first: their rows are recomputed whole
        kind, label, _digest = mark.name[len(_GROUP) :].split(":", 2)
        keys = session.scalars(
            select(MonitorHoster.key).where(
                MonitorHoster.period_kind == kind, MonitorHoster.period == label,
                MonitorHoster.key != "",
            )
        ).all()  # fmt: skip
        key = next((k for k in keys if _group_mark(kind, label, k) == mark.name), None)
        if key is not None:
            _recompute_hosters(session, kind, label, {key}, now, quantiles=True)
        session.delete(mark)
    marked = session.scalars(
        select(MonitorMark).where(MonitorMark.name.startswith(_STALE, autoescape=True))
    ).all()
    for mark in marked:
        kind, label = mark.name[len(_STALE) :].split(":", 1)
        _recompute_hosters(session, kind, label, set(), now, quantiles=True)
    return len(groups) + len(marked)


def _refresh_platforms(session: Session) -> int:
    now = clock.now()
    mark = _mark(session, _MARK_PLATFORMS)
    assert mark is not None and mark.at is not None
    since = mark.at - OVERLAP
    last_id = mark.last_id or 0
    months: set[str] = set()

    def cover(first: datetime | None, last: datetime | None) -> None:
        if first is None or last is None:
            return
        start = datetime(first.year, first.month, 1, tzinfo=UTC)
        while start <= last:
            months.add(period_of(Period.month, start))
            start = next_start(Period.month, start)

    newest, first, last = session.execute(
        select(func.max(Hit.id), func.min(Hit.at), func.max(Hit.at)).where(Hit.id > last_id)
    ).one()
    cover(first, last)  # new hits
    first, last = session.execute(
        select(func.min(Hit.at), func.max(Hit.at)).where(Hit.outcome_at >= since)
    ).one()
    cover(first, last)  # outcomes given or changed
    # hits without an outcome that became overdue since the last refresh
    due = timedelta(hours=get_settings().hit_outcome_due_hours)
    platforms = select(Organisation.id).where(Organisation.kind == "platform")
    first, last = session.execute(
        select(func.min(Hit.at), func.max(Hit.at)).where(
            Hit.org_id.in_(platforms), Hit.outcome.is_(None),
            Hit.at >= since - due, Hit.at < now - due,
        )
    ).one()  # fmt: skip
    cover(first, last)
    # the days' check counts the check service keeps adding to
    counted = _counts_signature(session, since, now)
    counts = _mark(session, _MARK_COUNTS)
    if counts is None or counts.last_id != counted:
        cover(since, now)
    _set_mark(session, _MARK_COUNTS, now, counted)
    if not months:
        return 0
    # the quarters and years of these months are summed again from all their months
    years = {month[:4] for month in months}
    everything = sorted(
        set(
            session.scalars(
                select(MonitorPlatform.period).where(
                    MonitorPlatform.period_kind == Period.month,
                    or_(*[MonitorPlatform.period.like(f"{year}-%") for year in years]),
                )
            )
        )
        | months
    )
    month_rows: dict[Group, dict[str, Any]] = {}
    stored = session.scalars(
        select(MonitorPlatform).where(
            MonitorPlatform.period_kind == Period.month,
            MonitorPlatform.period.in_([m for m in everything if m not in months]),
        )
    )
    for row in stored:
        month_rows[(row.period, row.key)] = {
            "org_id": row.org_id, "name": row.name,
            **{name: getattr(row, name) for name in PLATFORM_FIGURES},
        }  # fmt: skip
    for month in sorted(months):
        start, end = parse_period(Period.month, month)
        month_rows.update(_platform_months(session, start, end, now))
    labels = set(everything)
    labels |= {period_of_day(Period.quarter, m + "-01") for m in everything}
    labels |= {m[:4] for m in everything}
    rows = [
        row for row in _platform_rows(month_rows, now)
        if row["period"] in labels and (row["period_kind"] != Period.month
                                        or row["period"] in months)
    ]  # fmt: skip
    session.execute(
        delete(MonitorPlatform).where(
            or_(
                and_(MonitorPlatform.period_kind == Period.month,
                     MonitorPlatform.period.in_(sorted(months))),
                and_(MonitorPlatform.period_kind != Period.month,
                     MonitorPlatform.period.in_(sorted(labels))),
            )
        )
    )  # fmt: skip
    _insert(session, MonitorPlatform, rows)
    _set_mark(session, _MARK_PLATFORMS, now, max(last_id, newest or 0))
    return len(rows)


def _insert(session: Session, model: type[MonitorHoster] | type[MonitorPlatform],
            rows: list[dict[str, Any]]) -> None:  # fmt: skip
    """Insert rows in batches (no objects: a rebuild writes hundreds of thousands). Through
    the table, not the ORM: the ORM's bulk insert asks for each row's id back and sends a row
    whose figures are NULL as a statement of its own (3,137 statements for 29,000 rows)."""
    table: Table = model.__table__  # type: ignore[assignment]
    if rows and _is_postgres(session):  # COPY: a rebuild at national scale writes 250,000
        columns = [c.name for c in table.columns if c.name != "id"]
        driver = session.connection().connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([row.get(name) for name in columns])
        return
    for chunk in _chunks(rows, 5000):
        session.execute(table.insert(), chunk)


def _counts_signature(session: Session, since: datetime, now: datetime) -> int:
    """The check counts of the days from ``since`` to ``now`` added up: it changes whenever the
    check service counts more on those days."""
    days = (since.date().isoformat(), now.date().isoformat())
    counted = session.scalar(
        select(func.coalesce(func.sum(CheckCount.checks + CheckCount.items), 0)).where(
            CheckCount.day >= days[0], CheckCount.day <= days[1]
        )
    )
    return int(counted or 0)


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for index in range(0, len(values), size):
        yield values[index : index + size]


# --- the worker's step ----------------------------------------------------------------------------

_last_run: dict[int, float] = {}
_last_quantiles: dict[int, float] = {}


def run_monitor(context: HotlineContext, limit: int) -> int:
    """The worker's step: ``refresh`` at most every ``monitor_refresh_seconds`` (by the clock's
    monotonic time); returns the number of groups it recomputed. ``limit`` is not a cap on
    groups: a refresh takes every change since its mark, so that a page is never behind by
    more than one refresh.

    Every ``TOTAL_QUANTILE_SECONDS`` the totals' medians are settled (``settle_totals``); on
    PostgreSQL in a thread of its own: at national scale that reads a year of rows for a while,
    and the refreshes must go on meanwhile (an event waits for the next refresh, not for the
    settling). What is left to settle is in the marks, so a thread that stops loses nothing."""
    now = clock.monotonic()
    last = _last_run.get(id(context))
    if last is not None and 0 <= now - last < context.settings.monitor_refresh_seconds:
        return 0
    _last_run[id(context)] = now
    done = refresh(context.sessions, quantiles=False)
    settled = _last_quantiles.get(id(context))
    running = _settling.get(id(context))
    if (running is None or not running.is_alive()) and (
        settled is None or not 0 <= now - settled < TOTAL_QUANTILE_SECONDS
    ):
        _last_quantiles[id(context)] = now
        if _on_sqlite(context):  # one writer at a time there: settle in the worker's own turn
            return done + settle_totals(context.sessions)
        thread = threading.Thread(
            target=_settle_quietly, args=(context.sessions,), name="monitor-settle", daemon=True
        )
        _settling[id(context)] = thread
        thread.start()
    return done


_settling: dict[int, threading.Thread] = {}
_dialects: dict[int, str] = {}


def _on_sqlite(context: HotlineContext) -> bool:
    """SQLite lets one connection write at a time and fails a transaction that reads before it
    writes when another writes meanwhile, so there the settling stays in the worker's turn (the
    embedded database holds small histories, where it is quick)."""
    name = _dialects.get(id(context))
    if name is None:
        with context.sessions() as session:
            name = _dialects[id(context)] = session.get_bind().dialect.name
    return name == "sqlite"


def finish_settling(context: HotlineContext, timeout: float = 30.0) -> None:
    """Wait for ``context``'s settling thread, if one runs (a worker that stops)."""
    thread = _settling.pop(id(context), None)
    if thread is not None and thread.is_alive():
        thread.join(timeout)


def _settle_quietly(sessions: Sessions) -> None:
    try:
        settle_totals(sessions)
    except Exception:  # the marks stay; the next round settles them
        log.exception("settling the monitor's totals failed; they are settled next time")
