"""The change log, and what an index (or a partner) needs to follow the registry.

Every time a signal becomes active in a set, changes category, or stops being active, one row
is appended with the next change number (``seq``). A follower loads a starting state and then
applies the changes after it, in order::

    seq = current_seq(session)                 # first the number ...
    for signal in active_signals(session):     # ... then the state (it may already be newer)
        index.add(signal)
    while True:
        for change in changes_since(session, seq):
            index.apply(change)                # add / update / remove, see Change
            seq = change.seq

Each change states a result, not a difference ("S is active with category C"), so applying a
change twice, or to a state that already contains it, does no harm: reading the number before
the state is enough for the follower to converge. Numbers increase in commit order (see
``locking``); they may have gaps (a rolled-back transaction uses numbers), never late arrivals.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from meldpunt.clock import now
from meldpunt.store.models import Item, ItemSignal, RegistryChange

__all__ = [
    "ActiveSignal",
    "Change",
    "ChangeRow",
    "active_signals",
    "append_changes",
    "changes_since",
    "current_seq",
]


#: Rows per multi-row INSERT. Smaller than SQLAlchemy's 1000: psycopg parses each statement's
#: text on the client, and for statements of thousands of parameters that costs more time and
#: memory than the extra round trips.
BULK = {"insertmanyvalues_page_size": 200}


@dataclass(frozen=True)
class Change:
    """One numbered change.

    - ``add``: this signal of this item is now active in this set, with this category;
    - ``update``: its category is now ``category``;
    - ``remove``: it is no longer active in this set (``reason`` says why: disabled, withdrawn,
      deleted). Removing a signal the follower does not hold is a no-op, as is an update of one.

    A row with ``item_id`` None concerns the whole set (``reason`` ``set_created``,
    ``set_disabled``, ``set_enabled``): re-read the set with ``get_set``. Signals of a disabled
    set stay in the log's view; consumers filter on the set's state.
    """

    seq: int
    at: datetime
    set_id: int
    item_id: int | None
    action: str
    signal_type: str | None
    value: str | None
    category: str | None
    reason: str

    @property
    def is_set_change(self) -> bool:
        return self.item_id is None


@dataclass(frozen=True)
class ActiveSignal:
    """A signal of an active item (in a set of any state: consumers filter on set state)."""

    set_id: int
    item_id: int
    signal_type: str
    value: str
    category: str


@dataclass(frozen=True)
class ChangeRow:
    """A change before it has a number (what the writing code hands to ``append_changes``)."""

    set_id: int
    item_id: int | None
    action: str
    signal_type: str | None
    value: str | None
    category: str | None
    reason: str


def append_changes(session: Session, rows: Iterable[ChangeRow]) -> list[int]:
    """Append ``rows`` in order; returns their change numbers, in the same order.

    The caller holds the registry lock (``lock_registry``) in the same transaction.
    """
    at = now()
    values = [
        {
            "at": at,
            "set_id": row.set_id,
            "item_id": row.item_id,
            "action": row.action,
            "signal_type": row.signal_type,
            "value": row.value,
            "category": row.category,
            "reason": row.reason,
        }
        for row in rows
    ]
    if not values:
        return []
    table = cast(Table, RegistryChange.__table__)
    statement = insert(table).returning(table.c.seq, sort_by_parameter_order=True)
    return list(session.execute(statement, values, execution_options=BULK).scalars())


def _change(row: RegistryChange) -> Change:
    return Change(
        seq=row.seq,
        at=row.at,
        set_id=row.set_id,
        item_id=row.item_id,
        action=row.action,
        signal_type=row.signal_type,
        value=row.value,
        category=row.category,
        reason=row.reason,
    )


def changes_since(session: Session, seq: int, limit: int = 10_000) -> list[Change]:
    """The changes numbered above ``seq``, oldest first, at most ``limit`` of them."""
    rows = session.scalars(
        select(RegistryChange)
        .where(RegistryChange.seq > seq)
        .order_by(RegistryChange.seq)
        .limit(limit)
    )
    return [_change(row) for row in rows]


def current_seq(session: Session) -> int:
    """The newest change number (0 when nothing changed yet)."""
    return int(session.scalar(select(func.coalesce(func.max(RegistryChange.seq), 0))) or 0)


def active_signals(
    session: Session, signal_type: str | None = None, *, batch_size: int = 10_000
) -> Iterator[ActiveSignal]:
    """Every signal of every active item (optionally of one type), streamed in batches.

    Sets of every state are included; filter on ``get_set(...).state`` where it matters. The
    iterator holds a cursor on the session: consume it before using the session for anything
    else.
    """
    query = (
        select(
            ItemSignal.set_id,
            ItemSignal.item_id,
            ItemSignal.signal_type,
            ItemSignal.value,
            Item.category,
        )
        .join(Item, Item.id == ItemSignal.item_id)
        .where(Item.status == "active")
        .order_by(ItemSignal.id)
    )
    if signal_type is not None:
        query = query.where(ItemSignal.signal_type == signal_type)
    result = session.execute(query, execution_options={"yield_per": batch_size})
    try:
        for set_id, item_id, kind, value, category in result:
            yield ActiveSignal(set_id, item_id, kind, value, category)
    finally:
        result.close()
