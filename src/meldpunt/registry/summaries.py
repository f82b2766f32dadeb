"""Counts per set: items by status, active items by category, active signals by type."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt.registry.sets import HashSetInfo, SetRef, get_set, list_sets
from meldpunt.store.models import Item, ItemSignal

__all__ = ["SetSummary", "set_summaries", "set_summary"]


@dataclass(frozen=True)
class SetSummary:
    set: HashSetInfo
    #: Every item, by status ('active', 'disabled', 'withdrawn').
    items_by_status: dict[str, int] = field(default_factory=dict)
    #: Active items by normalised category code.
    active_by_category: dict[str, int] = field(default_factory=dict)
    #: Signals of active items, by signal type.
    active_signals_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def items(self) -> int:
        return sum(self.items_by_status.values())

    @property
    def active_items(self) -> int:
        return self.items_by_status.get("active", 0)


def set_summaries(session: Session, sets: list[HashSetInfo] | None = None) -> list[SetSummary]:
    """One summary per set (every set by default), in name order."""
    sets = list_sets(session) if sets is None else sets
    ids = [s.id for s in sets]
    by_status: dict[int, dict[str, int]] = {i: {} for i in ids}
    by_category: dict[int, dict[str, int]] = {i: {} for i in ids}
    by_type: dict[int, dict[str, int]] = {i: {} for i in ids}
    rows = session.execute(
        select(Item.set_id, Item.status, func.count())
        .where(Item.set_id.in_(ids))
        .group_by(Item.set_id, Item.status)
    )
    for set_id, status, count in rows:
        by_status[set_id][status] = count
    rows = session.execute(
        select(Item.set_id, Item.category, func.count())
        .where(Item.set_id.in_(ids), Item.status == "active")
        .group_by(Item.set_id, Item.category)
    )
    for set_id, category, count in rows:
        by_category[set_id][category] = count
    rows = session.execute(
        select(ItemSignal.set_id, ItemSignal.signal_type, func.count())
        .join(Item, Item.id == ItemSignal.item_id)
        .where(ItemSignal.set_id.in_(ids), Item.status == "active")
        .group_by(ItemSignal.set_id, ItemSignal.signal_type)
    )
    for set_id, kind, count in rows:
        by_type[set_id][kind] = count
    return [SetSummary(s, by_status[s.id], by_category[s.id], by_type[s.id]) for s in sets]


def set_summary(session: Session, hash_set: SetRef) -> SetSummary:
    (summary,) = set_summaries(session, [get_set(session, hash_set)])
    return summary
