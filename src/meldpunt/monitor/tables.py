"""The monitor's tables as the pages, the API and ``meldpunt monitor export`` show them: read
from ``monitor_hosters`` and ``monitor_platforms`` only (with ``hoster_facts`` for the figures
per unit of size and ``orders`` for the naming rule), one page of rows at a time, ranked by
URLs notified (hosters) or hits (platforms) on the ranking index; the shares are worked out
as the rows are read.

Naming (``docs/monitor.md``): on public tables a hoster is named when
``monitor_name_min_notified`` is 0, or it had at least that many URLs notified in the period,
or (``monitor_name_after_order``) it received an order issued before the period's end; any
other hoster is "hoster #rank", its AS number, name and size figures left out. Platforms are
never named in public: each is "platform #rank" (by hits); operators see the names.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from meldpunt.config import Settings
from meldpunt.store.models import HosterFacts, MonitorHoster, MonitorPlatform, Order

from .errors import InvalidInput, NotFound
from .figures import HOSTER_FIGURES, PLATFORM_FIGURES, split_key
from .periods import check_kind, parse_period
from .vocabulary import By

__all__ = [
    "FORMATS",
    "MAX_ROWS",
    "HosterRow",
    "PlatformRow",
    "Table",
    "hoster_table",
    "latest_period",
    "periods",
    "platform_table",
    "table_csv",
    "table_json",
    "totals",
]

FORMATS = ("json", "csv")
#: The most rows one request may ask for.
MAX_ROWS = 1000

_SHARES = ("share_of_notified", "share_24h", "share_48h", "share_later", "share_online")


@dataclass(frozen=True)
class HosterRow:
    rank: int | None  # None: the total
    named: bool
    name: str  # the hoster's name, "hoster #rank" when not named, "all hosters" for the total
    asn: int | None
    country: str | None
    reported: int
    notified: int
    offline_24h: int
    offline_48h: int
    offline_later: int
    online: int
    median_hours: float | None
    p90_hours: float | None
    renotices: int
    escalations: int
    orders: int
    penalties_cents: int
    #: Of the period's total notified (concentration).
    share_of_notified: float | None
    #: Of this hoster's notified: offline within 24 hours, 24 to 48, later, still online.
    share_24h: float | None
    share_48h: float | None
    share_later: float | None
    share_online: float | None
    #: URLs notified per 1,000 addresses announced / customers (hoster_facts), named only.
    per_1000_addresses: float | None
    per_1000_customers: float | None

    def plain(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlatformRow:
    rank: int | None
    named: bool
    name: str  # the organisation's name for operators, else "platform #rank"; "all platforms"
    org_id: int | None
    checks: int
    items: int
    hits: int
    blocked: int
    removed: int
    reported: int
    false_positive: int
    other: int
    pending: int
    overdue: int
    #: Of the hits: with an outcome, and overdue.
    share_answered: float | None
    share_overdue: float | None

    def plain(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Table:
    by: str
    period_kind: str
    period: str
    rows: list[Any]
    total: Any | None
    #: How many rows the whole table has (the page is ``offset`` .. ``offset + len(rows)``).
    count: int
    offset: int
    computed_at: datetime | None
    public: bool
    columns: tuple[str, ...] = field(default=())

    def plain(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "period_kind": self.period_kind,
            "period": self.period,
            "computed_at": self.computed_at.isoformat() if self.computed_at else None,
            "public": self.public,
            "count": self.count,
            "offset": self.offset,
            "rows": [row.plain() for row in self.rows],
            "total": self.total.plain() if self.total is not None else None,
        }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _page(offset: int, limit: int | None) -> tuple[int, int | None]:
    if offset < 0 or offset > 10**9:
        raise InvalidInput("offset must be between 0 and 1000000000")
    if limit is not None and not 1 <= limit <= 10**9:
        raise InvalidInput("limit must be at least 1")
    return offset, limit


def periods(session: Session, period_kind: str, by: str = By.hoster) -> list[str]:
    """The periods of ``period_kind`` that have figures, newest first: one index lookup per
    period (a loose index scan), however many hosters each has."""
    kind = check_kind(period_kind)
    table = "monitor_platforms" if by == By.platform else "monitor_hosters"
    query = text(
        f"WITH RECURSIVE p(period) AS ("
        f" SELECT (SELECT max(period) FROM {table} WHERE period_kind = :kind)"
        f" UNION ALL"
        f" SELECT (SELECT max(period) FROM {table} WHERE period_kind = :kind"
        f" AND period < p.period) FROM p WHERE p.period IS NOT NULL"
        f") SELECT period FROM p WHERE period IS NOT NULL"
    )
    return [row[0] for row in session.execute(query, {"kind": str(kind)})]


def latest_period(session: Session, period_kind: str, by: str = By.hoster) -> str | None:
    kind = check_kind(period_kind)
    model = MonitorPlatform if by == By.platform else MonitorHoster
    return session.scalar(select(func.max(model.period)).where(model.period_kind == kind))


def _resolve(session: Session, period_kind: str, period: str | None, by: str) -> tuple[str, str]:
    kind = check_kind(period_kind)
    if period in (None, "", "latest"):
        found = latest_period(session, kind, by)
        if found is None:
            raise NotFound(f"no {by} figures by {kind} yet")
        return kind, found
    parse_period(kind, period)  # a clear error for a malformed label
    return kind, period


def hoster_table(
    session: Session,
    period_kind: str,
    period: str | None,
    *,
    settings: Settings,
    public: bool = True,
    offset: int = 0,
    limit: int | None = None,
) -> Table:
    """The hosters of one period, most URLs notified first (ties by key), with the period's
    total; ``public`` applies the naming rule, else every hoster is named (operators)."""
    kind, label = _resolve(session, period_kind, period, By.hoster)
    offset, limit = _page(offset, limit)
    _, end = parse_period(kind, label)
    of_period = and_(MonitorHoster.period_kind == kind, MonitorHoster.period == label)
    total = session.scalar(select(MonitorHoster).where(of_period, MonitorHoster.key == ""))
    count = session.scalar(
        select(func.count()).select_from(MonitorHoster).where(of_period, MonitorHoster.key != "")
    )
    query = (
        select(MonitorHoster)
        .where(of_period, MonitorHoster.key != "")
        .order_by(MonitorHoster.notified.desc(), MonitorHoster.key)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    found = list(session.scalars(query))
    asns = sorted({row.asn for row in found if row.asn is not None})
    facts = (
        {f.asn: f for f in session.scalars(select(HosterFacts).where(HosterFacts.asn.in_(asns)))}
        if asns
        else {}
    )
    ordered: set[tuple[int | None, str | None]] = set()
    if public and settings.monitor_name_after_order and found:
        wanted = [split_key(row.key) for row in found]
        known = sorted({asn for asn, _ in wanted if asn is not None})
        conditions = [Order.asn.in_(known)] if known else []
        if any(asn is None for asn, _ in wanted):
            conditions.append(Order.asn.is_(None))
        query_orders = (
            select(Order.asn, Order.network_owner)
            .where(Order.issued_at < end, or_(*conditions))
            .distinct()
        )
        ordered = {(asn, owner or None) for asn, owner in session.execute(query_orders)}
    minimum = settings.monitor_name_min_notified
    whole = total.notified if total is not None else 0
    rows = []
    for index, row in enumerate(found):
        rank = offset + index + 1
        named = (
            not public or minimum == 0 or row.notified >= minimum or split_key(row.key) in ordered
        )
        fact = facts.get(row.asn) if named and row.asn is not None else None
        rows.append(_hoster_row(row, rank, named, whole, fact))
    total_row = _hoster_row(total, None, True, whole, None) if total is not None else None
    computed = total.computed_at if total is not None else None
    return Table(str(By.hoster), str(kind), label, rows, total_row, count or 0, offset,
                 computed, public, _columns(HosterRow))  # fmt: skip


def _hoster_row(
    row: MonitorHoster, rank: int | None, named: bool, whole: int, fact: HosterFacts | None
) -> HosterRow:
    figures = {name: getattr(row, name) for name in HOSTER_FIGURES}
    notified = row.notified
    if rank is None:
        name = "all hosters"
    elif named:
        name = row.name or (f"AS{row.asn}" if row.asn is not None else "unknown hoster")
    else:
        name = f"hoster #{rank}"
    addresses = fact.addresses if fact is not None else None
    customers = fact.customers if fact is not None else None
    return HosterRow(
        rank=rank, named=named, name=name, asn=row.asn if named else None,
        country=row.country, **figures,
        share_of_notified=_share(notified, whole),
        share_24h=_share(row.offline_24h, notified), share_48h=_share(row.offline_48h, notified),
        share_later=_share(row.offline_later, notified), share_online=_share(row.online, notified),
        per_1000_addresses=1000 * notified / addresses if addresses else None,
        per_1000_customers=1000 * notified / customers if customers else None,
    )  # fmt: skip


def platform_table(
    session: Session,
    period_kind: str,
    period: str | None,
    *,
    settings: Settings,
    public: bool = True,
    offset: int = 0,
    limit: int | None = None,
) -> Table:
    """The platforms of one period, most hits first (ties by key), with the total; in public
    every platform is "platform #rank"."""
    kind, label = _resolve(session, period_kind, period, By.platform)
    offset, limit = _page(offset, limit)
    of_period = and_(MonitorPlatform.period_kind == kind, MonitorPlatform.period == label)
    total = session.scalar(select(MonitorPlatform).where(of_period, MonitorPlatform.key == ""))
    count = session.scalar(
        select(func.count())
        .select_from(MonitorPlatform)
        .where(of_period, MonitorPlatform.key != "")
    )
    query = (
        select(MonitorPlatform)
        .where(of_period, MonitorPlatform.key != "")
        .order_by(MonitorPlatform.hits.desc(), MonitorPlatform.key)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = [
        _platform_row(row, offset + index + 1, not public)
        for index, row in enumerate(session.scalars(query))
    ]
    total_row = _platform_row(total, None, True) if total is not None else None
    computed = total.computed_at if total is not None else None
    return Table(str(By.platform), str(kind), label, rows, total_row, count or 0, offset,
                 computed, public, _columns(PlatformRow))  # fmt: skip


def _platform_row(row: MonitorPlatform, rank: int | None, named: bool) -> PlatformRow:
    figures = {name: getattr(row, name) for name in PLATFORM_FIGURES}
    if rank is None:
        name = "all platforms"
    elif named:
        name = row.name or f"organisation {row.org_id}"
    else:
        name = f"platform #{rank}"
    return PlatformRow(
        rank=rank, named=named, name=name, org_id=row.org_id if named and rank else None,
        **figures, share_answered=_share(row.hits - row.pending, row.hits),
        share_overdue=_share(row.overdue, row.hits),
    )  # fmt: skip


def _columns(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def table_json(table: Table) -> dict[str, Any]:
    """The table as JSON (the API's and the export's)."""
    return table.plain()


def table_csv(table: Table) -> str:
    """The table as CSV: a header, one line per row, the total last (rank empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period_kind", "period", *table.columns])
    lines = [*table.rows, *([table.total] if table.total is not None else [])]
    for row in lines:
        values = row.plain()
        writer.writerow([table.period_kind, table.period,
                         *(_cell(values[name]) for name in table.columns)])  # fmt: skip
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    # a name a spreadsheet would take for a formula is quoted
    return "'" + text if isinstance(value, str) and text[:1] in ("=", "+", "-", "@") else text


def totals(
    session: Session, period_kind: str, *, within: str | None = None, last: int = 24
) -> list[MonitorHoster]:
    """The totals (key '') of the ``last`` periods of ``period_kind``, oldest first; with
    ``within`` (a year, '2026'), only that year's."""
    kind = check_kind(period_kind)
    labels = [p for p in periods(session, kind) if within is None or p.startswith(within)][:last]
    if not labels:
        return []
    found = session.scalars(
        select(MonitorHoster).where(
            MonitorHoster.period_kind == kind,
            MonitorHoster.period.in_(labels),
            MonitorHoster.key == "",
        )
    )
    return sorted(found, key=lambda row: row.period)
