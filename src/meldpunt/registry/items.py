"""Items one at a time: add, look up, disable, enable, withdraw, delete.

Each call is one registry write: it takes the registry lock, writes its change rows and its audit
event in the caller's transaction, and leaves committing to the caller.

- ``disabled``: switched off here (by an operator, say while a complaint is looked into);
- ``withdrawn``: the source took it back (wrongly classified, a known false positive);
- deleted: gone from the registry; the change log and the audit log keep that it was there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.clock import now
from meldpunt.registry import trail
from meldpunt.registry.batch import (
    ItemInput,
    Outcome,
    apply_items,
    item_text_problem,
    normalize_signals,
)
from meldpunt.registry.categories import CODES, Category, classify
from meldpunt.registry.changes import ChangeRow, append_changes
from meldpunt.registry.errors import ConflictingItems, InvalidInput, NotFound
from meldpunt.registry.locking import lock_registry
from meldpunt.registry.sets import SetRef, load_set_row
from meldpunt.store.models import Item, ItemSignal
from meldpunt.text import TextError, check_text

__all__ = [
    "MAX_REASON",
    "ItemInfo",
    "ItemResult",
    "add_item",
    "delete_item",
    "disable_item",
    "enable_item",
    "find_items",
    "get_item",
    "withdraw_item",
]


@dataclass(frozen=True)
class ItemInfo:
    id: int
    set_id: int
    reference: str | None
    category: str
    category_raw: str | None
    category_scheme: str | None
    status: str
    note: str | None
    created_at: datetime
    updated_at: datetime
    #: (signal_type, value) pairs, in the order they were added.
    signals: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ItemResult:
    item: ItemInfo
    outcome: Outcome  # 'added' | 'updated' | 'unchanged'


def _signals_of(session: Session, item_id: int) -> tuple[tuple[str, str], ...]:
    rows = session.execute(
        select(ItemSignal.signal_type, ItemSignal.value)
        .where(ItemSignal.item_id == item_id)
        .order_by(ItemSignal.id)
    )
    return tuple((kind, value) for kind, value in rows)


def _load(session: Session, item_id: int) -> Item:
    row = session.get(Item, item_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no item {item_id}")
    return row


def _info(session: Session, row: Item) -> ItemInfo:
    return ItemInfo(
        id=row.id,
        set_id=row.set_id,
        reference=row.reference,
        category=row.category,
        category_raw=row.category_raw,
        category_scheme=row.category_scheme,
        status=row.status,
        note=row.note,
        created_at=row.created_at,
        updated_at=row.updated_at,
        signals=_signals_of(session, row.id),
    )


def get_item(session: Session, item_id: int) -> ItemInfo:
    """The item with this id, with its signals; raises NotFound."""
    return _info(session, _load(session, item_id))


def find_items(session: Session, signal_type: str, value: str) -> list[ItemInfo]:
    """The items, in any set and of any status, that carry this signal."""
    ((kind, normalised),) = normalize_signals([(signal_type, value)])
    ids = session.scalars(
        select(ItemSignal.item_id)
        .where(ItemSignal.signal_type == kind, ItemSignal.value == normalised)
        .order_by(ItemSignal.item_id)
    ).all()
    return [get_item(session, item_id) for item_id in ids]


def add_item(
    session: Session,
    hash_set: SetRef,
    signals: Iterable[tuple[str, str]],
    *,
    category: str | Category | None = None,
    category_scheme: str | None = None,
    reference: str | None = None,
    note: str | None = None,
    actor: str = "system",
) -> ItemResult:
    """Add an item with its signals, or update the item that already has them.

    ``category`` is a raw value of ``category_scheme`` (None: recognised by its value, e.g.
    ``"A1"``, ``"baseline"``, ``"csam_baseline"``), or a ready ``Category``; left out, a new
    item gets the set's default category and an existing one keeps its own. Raises InvalidInput
    for a bad signal and ConflictingItems when the signals belong to different items already.
    """
    pairs = normalize_signals(signals)
    lock_registry(session)  # before the first read (see locking)
    set_row = load_set_row(session, hash_set)
    if isinstance(category, Category):
        if category.code not in CODES:
            raise InvalidInput(f"unknown category code {category.code!r}")
        chosen: Category | None = category
    elif category is not None:
        chosen = classify(category, category_scheme, default=set_row.default_category)
    else:
        chosen = None
    item = ItemInput(signals=pairs, category=chosen, reference=reference, note=note)
    problem = item_text_problem(item)
    if problem is not None:
        raise InvalidInput(f"cannot add the item: {problem}")
    result = apply_items(session, set_row.id, [item], actor=actor, audit_each=True)
    (outcome,) = result.outcomes
    if outcome.outcome == "rejected" or outcome.item_id is None:
        raise ConflictingItems(f"cannot add the item: {outcome.problem}")
    return ItemResult(get_item(session, outcome.item_id), outcome.outcome)


#: The longest reason a withdrawal may give.
MAX_REASON = 2000


def _clean_reason(reason: str | None) -> str:
    """A withdrawal's reason: required, at most ``MAX_REASON`` characters, printable text."""
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("a withdrawal needs a reason (why the entry is taken back)")
    try:
        return check_text(text, "the reason", max_length=MAX_REASON, multiline=True)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None


def _set_status(
    session: Session,
    item_id: int,
    status: str,
    *,
    actor: str,
    details: dict[str, str | None],
    hash_set: SetRef | None = None,
) -> ItemInfo:
    for what, text in details.items():
        if text is not None:
            try:
                check_text(text, f"a {what}", max_length=MAX_REASON, multiline=True)
            except TextError as exc:
                raise InvalidInput(str(exc)) from None
    lock_registry(session)
    row = _load(session, item_id)
    if hash_set is not None and load_set_row(session, hash_set).id != row.set_id:
        raise NotFound(f"no item {item_id} in set {hash_set!r}")
    before = row.status
    if before == status:
        return _info(session, row)
    signals = _signals_of(session, row.id)
    row.status = status
    row.updated_at = now()
    session.flush()
    if status == "active":
        action, reason = "add", "enabled"
    else:
        # Also between two inactive states: followers ignore the removal of a signal they do
        # not hold, and the log then states every entry's status (see ``integrity``).
        action, reason = "remove", status
    changes = [
        ChangeRow(row.set_id, row.id, action, kind, value, row.category, reason)
        for kind, value in signals
    ]
    seqs = append_changes(session, changes)
    word = {"active": "enabled", "disabled": "disabled", "withdrawn": "withdrawn"}[status]
    audit.record(
        session,
        actor=actor,
        action=f"registry.item.{word}",
        subject=("item", row.id),
        details={
            "set_id": row.set_id,
            "from": before,
            "to": status,
            **details,
            **trail.vouch(changes, seqs),
        },
    )
    return _info(session, row)


def disable_item(
    session: Session, item_id: int, *, actor: str = "system", note: str | None = None
) -> ItemInfo:
    """Switch the item off here; ``enable_item`` switches it on again."""
    return _set_status(session, item_id, "disabled", actor=actor, details={"note": note})


def enable_item(
    session: Session, item_id: int, *, actor: str = "system", note: str | None = None
) -> ItemInfo:
    return _set_status(session, item_id, "active", actor=actor, details={"note": note})


def withdraw_item(
    session: Session,
    item_id: int,
    *,
    reason: str,
    actor: str = "system",
    hash_set: SetRef | None = None,
) -> ItemInfo:
    """Withdraw one entry: its source took it back (wrongly classified, a known false positive).

    It stops matching everywhere (a numbered "remove" change per signal, reason ``withdrawn``,
    which every follower applies), stays on record with its status, and the audit log keeps who
    withdrew it and ``reason`` (required: InvalidInput without one). ``hash_set``: the set the
    entry must belong to (NotFound otherwise). Withdrawing it again changes nothing.
    """
    text = _clean_reason(reason)
    return _set_status(session, item_id, "withdrawn", actor=actor, details={"reason": text},
                       hash_set=hash_set)  # fmt: skip


def delete_item(session: Session, item_id: int, *, actor: str = "system") -> None:
    """Remove the item and its signals. A 'remove' change is written for each signal, whatever
    the item's status, so that every follower (also one that keeps inactive items) learns of it."""
    lock_registry(session)
    row = _load(session, item_id)
    signals = _signals_of(session, row.id)
    set_id, category, status = row.set_id, row.category, row.status
    session.execute(delete(ItemSignal).where(ItemSignal.item_id == item_id))
    session.execute(delete(Item).where(Item.id == item_id))
    session.expunge(row)
    changes = [
        ChangeRow(set_id, item_id, "remove", kind, value, category, "deleted")
        for kind, value in signals
    ]
    seqs = append_changes(session, changes)
    audit.record(
        session,
        actor=actor,
        action="registry.item.deleted",
        subject=("item", item_id),
        details={
            "set_id": set_id,
            "status": status,
            "category": category,
            "signals": [list(signal) for signal in signals],
            **trail.vouch(changes, seqs),
        },
    )
