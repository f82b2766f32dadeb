"""Read-only queries the pages need and the domain does not offer (yet): a page of a set's
entries, entries by reference or by a hash value within one set, and today's figures.

They only read. Should another face need them, they belong in ``registry`` and ``checks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.store.models import CheckCount, Hit, Item, ItemSignal
from meldpunt.text import text_problem

__all__ = ["EntryRow", "Today", "entries_page", "today"]

#: The signal types a pasted value may be, by its length in hex digits.
_BY_LENGTH = {32: ("md5",), 40: ("sha1",), 64: ("sha256", "pdq")}


@dataclass(frozen=True)
class EntryRow:
    id: int
    reference: str | None
    category: str
    status: str
    updated_at: datetime
    signals: tuple[tuple[str, str], ...]


def entries_page(
    session: Session, set_id: int, *, search: str = "", after: int = 0, limit: int = 50
) -> tuple[list[EntryRow], int | None]:
    """Up to ``limit`` entries of the set with ids above ``after``, in id order, and the id to
    continue after (None on the last page). ``search`` keeps the entries whose reference is
    exactly it, or that carry it as a hash value (any case)."""
    query = select(Item).where(Item.set_id == set_id, Item.id > after)
    text = search.strip()
    if text_problem(text) is not None:
        return [], None  # no reference or hash has control characters (PostgreSQL: no NUL)
    if text:
        value = text.lower()
        kinds = _BY_LENGTH.get(len(value), ())
        by_signal = select(ItemSignal.item_id).where(
            ItemSignal.set_id == set_id,
            ItemSignal.signal_type.in_(kinds) if kinds else ItemSignal.signal_type.isnot(None),
            ItemSignal.value == value,
        )
        query = query.where((Item.reference == text) | Item.id.in_(by_signal))
    rows = list(session.scalars(query.order_by(Item.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    signals: dict[int, list[tuple[str, str]]] = {row.id: [] for row in rows}
    if rows:
        found = session.execute(
            select(ItemSignal.item_id, ItemSignal.signal_type, ItemSignal.value)
            .where(ItemSignal.item_id.in_(list(signals)))
            .order_by(ItemSignal.id)
        )
        for item_id, kind, signal in found:
            signals[item_id].append((kind, signal))
    entries = [EntryRow(row.id, row.reference, row.category, row.status, row.updated_at,
                        tuple(signals[row.id])) for row in rows]  # fmt: skip
    return entries, (rows[-1].id if more else None)


@dataclass(frozen=True)
class Today:
    checks: int
    items: int
    hits: int


def today(session: Session, org_id: int | None = None) -> Today:
    """Check requests, items checked and hits since midnight UTC (of one organisation)."""
    now = clock.now()
    midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    counts = select(func.sum(CheckCount.checks), func.sum(CheckCount.items)).where(
        CheckCount.day == now.date().isoformat()
    )
    hits = select(func.count()).select_from(Hit).where(Hit.at >= midnight)
    if org_id is not None:
        counts = counts.where(CheckCount.org_id == org_id)
        hits = hits.where(Hit.org_id == org_id)
    checks, items = session.execute(counts).one()
    return Today(int(checks or 0), int(items or 0), int(session.scalar(hits) or 0))
