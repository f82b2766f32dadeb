"""Adding and updating items, one or thousands at a time, with their change rows.

``apply_items`` is the one place where items enter a set: ``add_item`` calls it with one item,
imports with a few thousand per transaction. It is idempotent: an item whose signals are already
in the set is the same item (new signals are linked to it, a new category replaces the old);
giving it again changes nothing. Its status is left alone unless the input names one (a
re-imported list must not bring back what was withdrawn since).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import BigInteger, String, Table, any_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from meldpunt.clock import now
from meldpunt.registry import trail
from meldpunt.registry.categories import Category, default_category
from meldpunt.registry.changes import BULK, ChangeRow, append_changes
from meldpunt.registry.errors import InvalidInput
from meldpunt.registry.locking import lock_registry
from meldpunt.registry.sets import SetRef, load_set_row
from meldpunt.registry.signal_types import (
    EMPTY_CONTENT_DIGESTS,
    MAX_OPAQUE_LENGTH,
    register_registry_signal_types,
)
from meldpunt.registry.vocabulary import ITEM_STATUSES
from meldpunt.signals import types as signal_types
from meldpunt.signals.errors import InvalidSignal
from meldpunt.store.models import HashSet, Item, ItemSignal
from meldpunt.text import text_problem

__all__ = [
    "BatchResult",
    "ItemInput",
    "ItemOutcome",
    "Outcome",
    "apply_items",
    "normalize_signals",
]

Outcome = Literal["added", "updated", "unchanged", "rejected"]
Signal = tuple[str, str]

_IN_CHUNK = 1000

ITEMS = cast(Table, Item.__table__)
ITEM_SIGNALS = cast(Table, ItemSignal.__table__)


@dataclass(frozen=True)
class ItemInput:
    """One item to add or update, its signals already normalised (``normalize_signals``)."""

    signals: tuple[Signal, ...]
    #: None: a new item gets the set's default; an existing item keeps its category.
    category: Category | None = None
    reference: str | None = None
    note: str | None = None
    #: None: a new item is active; an existing item keeps its status.
    status: str | None = None


@dataclass(frozen=True)
class ItemOutcome:
    outcome: Outcome
    item_id: int | None
    problem: str | None = None


@dataclass(frozen=True)
class BatchResult:
    outcomes: list[ItemOutcome]
    #: First and last change number written, None when nothing changed.
    seqs: tuple[int, int] | None


def normalize_signals(pairs: Iterable[tuple[str, str]]) -> tuple[Signal, ...]:
    """``[(type, value), ...]`` validated and normalised, duplicates dropped, order kept.

    Raises InvalidInput naming the first bad signal (unknown type, bad hex, wrong length, the
    digest of empty content).
    """
    register_registry_signal_types()
    seen: dict[Signal, None] = {}
    for kind, value in pairs:
        try:
            signal_type = signal_types.get(kind)
            normalised = signal_type.normalize(value)
        except InvalidSignal as exc:
            raise InvalidInput(str(exc)) from None
        if len(normalised) > MAX_OPAQUE_LENGTH:
            raise InvalidInput(f"{signal_type.name} value longer than {MAX_OPAQUE_LENGTH}")
        if (signal_type.name, normalised) in EMPTY_CONTENT_DIGESTS:
            raise InvalidInput(
                f"{signal_type.name} {normalised} is the digest of empty content (zero bytes): "
                "it would match every empty file, so it is never listed"
            )
        seen[(signal_type.name, normalised)] = None
    if not seen:
        raise InvalidInput("an item needs at least one signal")
    return tuple(seen)


@dataclass(eq=False)
class _State:
    """An item as it was before the batch (``before_*``) and as the batch leaves it."""

    id: int | None
    status: str
    category: str
    category_raw: str | None
    category_scheme: str | None
    reference: str | None
    note: str | None
    signals: list[Signal]
    new: bool
    before_status: str | None = None
    before_category: str | None = None
    before_signals: tuple[Signal, ...] = ()
    added_signals: list[Signal] = field(default_factory=list)


def _one_of(column: Any, values: Sequence[Any], dialect: str, element: Any) -> Any:
    """``column IN (values)``; on PostgreSQL ``= ANY(array)``: one parameter instead of a
    thousand, which psycopg would otherwise spend far longer preparing than the server takes."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(element)))
    return column.in_(values)


def _load_existing(
    session: Session, set_id: int, inputs: Sequence[ItemInput]
) -> dict[Signal, _State]:
    dialect = session.get_bind().dialect.name
    by_type: dict[str, set[str]] = {}
    for item in inputs:
        for kind, value in item.signals:
            by_type.setdefault(kind, set()).add(value)
    owner_ids: dict[Signal, int] = {}
    for kind, values in by_type.items():
        ordered = sorted(values)
        for start in range(0, len(ordered), _IN_CHUNK):
            rows = session.execute(
                select(ItemSignal.value, ItemSignal.item_id).where(
                    ItemSignal.set_id == set_id,
                    ItemSignal.signal_type == kind,
                    _one_of(ItemSignal.value, ordered[start : start + _IN_CHUNK], dialect, String),
                )
            )
            owner_ids.update({(kind, value): item_id for value, item_id in rows})
    states: dict[int, _State] = {}
    ids = sorted(set(owner_ids.values()))
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        # Plain columns, not ORM objects: the bulk UPDATE below would leave those stale.
        item_rows = session.execute(
            select(
                Item.id,
                Item.status,
                Item.category,
                Item.category_raw,
                Item.category_scheme,
                Item.reference,
                Item.note,
            ).where(_one_of(Item.id, chunk, dialect, BigInteger))
        )
        for item_id, status, category, raw, scheme, reference, note in item_rows:
            states[item_id] = _State(
                id=item_id,
                status=status,
                category=category,
                category_raw=raw,
                category_scheme=scheme,
                reference=reference,
                note=note,
                signals=[],
                new=False,
                before_status=status,
                before_category=category,
            )
        signal_rows = session.execute(
            select(ItemSignal.item_id, ItemSignal.signal_type, ItemSignal.value)
            .where(_one_of(ItemSignal.item_id, chunk, dialect, BigInteger))
            .order_by(ItemSignal.id)
        )
        for item_id, kind, value in signal_rows:
            states[item_id].signals.append((kind, value))
    for state in states.values():
        state.before_signals = tuple(state.signals)
    return {signal: states[item_id] for signal, item_id in owner_ids.items()}


def _merge(state: _State, item: ItemInput) -> bool:
    """Apply ``item`` to ``state``; True when anything changed."""
    changed = False
    category = item.category
    if category is not None and (category.code, category.raw, category.scheme) != (
        state.category,
        state.category_raw,
        state.category_scheme,
    ):
        state.category, state.category_raw = category.code, category.raw
        state.category_scheme = category.scheme
        changed = True
    for attribute in ("reference", "note", "status"):
        value = getattr(item, attribute)
        if value is not None and value != getattr(state, attribute):
            setattr(state, attribute, value)
            changed = True
    return changed


#: The longest reference, raw category and scheme an entry keeps (the columns' sizes: longer
#: text would fail the whole transaction on PostgreSQL).
MAX_TEXT = {"reference": 200, "category": 200, "scheme": 40}


def item_text_problem(item: ItemInput) -> str | None:
    """Why an item's text cannot be stored (a control character in its note, reference or
    category, or one longer than its column), or None."""
    texts = [("reference", item.reference, False), ("note", item.note, True)]
    if item.category is not None:
        texts += [("category", item.category.raw, False), ("scheme", item.category.scheme, False)]
    for what, value, multiline in texts:
        if value is None:
            continue
        longest = MAX_TEXT.get(what)
        if longest is not None and len(value) > longest:
            return f"its {what} is longer than {longest} characters"
        problem = text_problem(value, multiline=multiline)
        if problem is not None:
            return f"its {what} {problem}"
    return None


def apply_items(
    session: Session,
    hash_set: SetRef,
    items: Sequence[ItemInput],
    *,
    actor: str = "system",
    audit_each: bool = True,
    source: str | None = None,
) -> BatchResult:
    """Add or update ``items`` in one transaction (flushed, not committed).

    Items whose signals belong to two different existing items are rejected, not merged.
    ``audit_each``: one audit event per added or updated item; otherwise one event for the whole
    batch (what imports use, see ``trail``).
    """
    for item in items:
        if item.status is not None and item.status not in ITEM_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(ITEM_STATUSES)}")
    lock_registry(session)
    set_row = load_set_row(session, hash_set)
    owners = _load_existing(session, set_row.id, items)
    touched: dict[int, _State] = {}  # by id(state), in the order first touched
    outcomes: list[tuple[Outcome, _State | None, str | None]] = []
    for item in items:
        problem = item_text_problem(item)
        if problem is not None:
            outcomes.append(("rejected", None, problem))
            continue
        matched = {id(s): s for s in (owners.get(signal) for signal in item.signals) if s}
        if len(matched) > 1:
            names = sorted(str(s.id) if s.id else "a new item" for s in matched.values())
            problem = f"its signals belong to different items ({', '.join(names)})"
            outcomes.append(("rejected", None, problem))
            continue
        if matched:
            state = next(iter(matched.values()))
            changed = _merge(state, item)
            outcome: Outcome = "updated" if changed else "unchanged"
        else:
            category = item.category or default_category(set_row.default_category)
            state = _State(
                id=None,
                status=item.status or "active",
                category=category.code,
                category_raw=category.raw,
                category_scheme=category.scheme,
                reference=item.reference,
                note=item.note,
                signals=[],
                new=True,
            )
            changed, outcome = True, "added"
        for signal in item.signals:
            if signal not in owners:
                owners[signal] = state
                state.signals.append(signal)
                state.added_signals.append(signal)
                changed = True
                outcome = outcome if outcome != "unchanged" else "updated"
        if changed:
            touched.setdefault(id(state), state)
        outcomes.append((outcome, state, None))
    states = list(touched.values())
    changes, seqs = _write(session, set_row, states)
    results = [ItemOutcome(o, s.id if s else None, p) for o, s, p in outcomes]
    seq_range = (seqs[0], seqs[-1]) if seqs else None
    if audit_each:
        # Each item's event vouches for its own change rows (consecutive: see _change_rows).
        own: dict[int | None, tuple[list[ChangeRow], list[int]]] = {}
        for change, seq in zip(changes, seqs, strict=True):
            rows, numbers = own.setdefault(change.item_id, ([], []))
            rows.append(change)
            numbers.append(seq)
        for s in states:
            assert s.id is not None
            mine, numbers = own.get(s.id, ([], []))
            trail.item_written(session, actor, set_row, s.id, new=s.new, state=_snapshot(s),
                               changes=mine, seqs=numbers)  # fmt: skip
    elif states:
        counts: Counter[str] = Counter(r.outcome for r in results)
        trail.batch_imported(
            session, actor, set_row, source, counts, [s.id for s in states], changes, seqs
        )
    return BatchResult(results, seq_range)


def _snapshot(state: _State) -> dict[str, object]:
    return {
        "signals": [list(signal) for signal in state.signals],
        "category": state.category,
        "category_raw": state.category_raw,
        "category_scheme": state.category_scheme,
        "status": state.status,
        "reference": state.reference,
    }


def _write(
    session: Session, set_row: HashSet, states: list[_State]
) -> tuple[list[ChangeRow], list[int]]:
    # Core statements on the tables: the ORM's bulk path costs more than the database here.
    at = now()
    fields = ("reference", "category", "category_raw", "category_scheme", "status", "note")
    new = [s for s in states if s.new]
    if new:
        rows = [{"set_id": set_row.id, "created_at": at, "updated_at": at} for _ in new]
        for row, state in zip(rows, new, strict=True):
            row.update({name: getattr(state, name) for name in fields})
        insert_items = insert(ITEMS).returning(ITEMS.c.id, sort_by_parameter_order=True)
        ids = session.execute(insert_items, rows, execution_options=BULK).scalars().all()
        for state, item_id in zip(new, ids, strict=True):
            state.id = item_id
    updated = [s for s in states if not s.new]
    if updated:
        update_items = (
            update(ITEMS)
            .where(ITEMS.c.id == bindparam("item_id"))
            .values({name: bindparam(name) for name in (*fields, "updated_at")})
        )
        rows = [
            {"item_id": s.id, "updated_at": at, **{n: getattr(s, n) for n in fields}}
            for s in updated
        ]
        session.execute(update_items, rows)
    signal_rows = [
        {"item_id": s.id, "set_id": set_row.id, "signal_type": kind, "value": value}
        for s in states
        for kind, value in s.added_signals
    ]
    if signal_rows:
        session.execute(insert(ITEM_SIGNALS), signal_rows, execution_options=BULK)
    changes = _change_rows(set_row.id, states)
    return changes, append_changes(session, changes)


def _change_rows(set_id: int, states: Iterable[_State]) -> list[ChangeRow]:
    rows: list[ChangeRow] = []
    for s in states:
        assert s.id is not None
        was_active = s.before_status == "active"
        is_active = s.status == "active"

        def row(action: str, signal: Signal, reason: str, item: _State = s) -> ChangeRow:
            assert item.id is not None
            return ChangeRow(set_id, item.id, action, signal[0], signal[1], item.category, reason)

        if is_active and not was_active:
            reason = "added" if s.new else "enabled"
            rows.extend(row("add", signal, reason) for signal in s.signals)
        elif was_active and is_active:
            if s.category != s.before_category:
                rows.extend(row("update", signal, "category") for signal in s.before_signals)
            rows.extend(row("add", signal, "added") for signal in s.added_signals)
        elif (
            was_active
            or s.status != s.before_status
            or s.category != s.before_category
            or s.added_signals
        ):
            # Inactive after the batch: a "remove" per signal, also when it was not active
            # before (a follower ignores those), so that the log states every entry's status,
            # category and signals, which is what the audit check compares the tables with.
            rows.extend(row("remove", signal, s.status) for signal in s.signals)
    return rows
