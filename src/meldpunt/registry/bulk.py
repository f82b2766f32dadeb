"""Adding many entries a set does not hold yet, set-wise.

``apply_items`` is the registry's general write: it reads what the set holds of every item's
signals, merges, and writes through a state per item; on this machine that is some hundreds of
microseconds an entry. When a large batch is known to be new (a partner's set followed from its
start), ``add_new_entries`` writes the same rows one statement a table (``store.bulk``): the
items, their signals, one change row per signal (``add``, reason ``added``) with consecutive
change numbers, and one audit event vouching for them, as an import's batch event does. The
rows are exactly what ``apply_items`` writes for new entries, so the change log states them, the
audit check (``integrity``) passes and every follower of the change log sees them.

The entries must be new: an entry one of whose signals the set holds already (of any status)
is left out and named (``refused``), for the caller to merge the general way; the set's unique
index finds them while the signals are written, so the usual batch costs no lookup. No signal
may appear twice in a batch.

``normalize_column`` checks a column of one signal type at once, for the same purpose: a page
of 250,000 hashes checked value by value costs more than storing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import cast

import orjson
from sqlalchemy import Table, delete, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from meldpunt.clock import now
from meldpunt.registry import trail
from meldpunt.registry.categories import CODES, Category
from meldpunt.registry.errors import InvalidInput
from meldpunt.registry.locking import lock_registry
from meldpunt.registry.sets import SetRef, load_set_row
from meldpunt.registry.signal_types import (
    EMPTY_CONTENT_DIGESTS,
    MAX_OPAQUE_LENGTH,
    register_registry_signal_types,
)
from meldpunt.signals import types as signal_types
from meldpunt.signals.errors import InvalidSignal
from meldpunt.store.bulk import allocate_ids, insert_rows
from meldpunt.store.models import Item, ItemSignal, RegistryChange

__all__ = ["NewEntries", "NewResult", "add_new_entries", "held_signals", "normalize_column"]

ITEMS = cast(Table, Item.__table__)
ITEM_SIGNALS = cast(Table, ItemSignal.__table__)
CHANGES = cast(Table, RegistryChange.__table__)

_HEX = b"0123456789abcdef"
#: Values per lookup statement: SQLite's JSON text and PostgreSQL's arrays stay a few MB.
_LOOKUP_CHUNK = 100_000


def normalize_column(kind: str, values: Sequence[str]) -> bool:
    """True when ``kind`` is a signal type's own name and every value is already in its
    normal form (and no digest of empty content): then ``normalize_signals`` would give each
    back unchanged. False says only "check one by one" (``normalize_signals`` names the
    problem, if there is one)."""
    register_registry_signal_types()
    try:
        signal_type = signal_types.get(kind)
    except InvalidSignal:
        return False
    if signal_type.name != kind or not values:
        return not values and signal_type.name == kind
    if any((kind, digest) in EMPTY_CONTENT_DIGESTS and digest in values
           for _, digest in EMPTY_CONTENT_DIGESTS):  # fmt: skip
        return False
    if issubclass(signal_type, signal_types.HexSignalType):
        if set(map(len, values)) != {signal_type.hex_length}:
            return False
        joined = "".join(values)
        return joined.isascii() and not joined.encode("ascii").translate(None, _HEX)
    if max(map(len, values)) > MAX_OPAQUE_LENGTH:
        return False
    try:
        return all(signal_type.normalize(value) == value for value in values)
    except InvalidSignal:
        return False


def held_signals(
    session: Session,
    set_id: int,
    kinds: Sequence[str],
    values: Sequence[str],
    *,
    besides: Sequence[int] = (),
) -> set[tuple[str, str]]:
    """Which of the signals ``zip(kinds, values)`` the set holds already, of items of any
    status other than ``besides``: one lookup statement per signal type (and 100,000 values)."""
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    by_kind: dict[str, list[str]] = {}
    for kind, value in zip(kinds, values, strict=True):
        by_kind.setdefault(kind, []).append(value)
    excluded = set(besides)
    held: set[tuple[str, str]] = set()
    for kind, wanted in by_kind.items():
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            if postgresql:
                # an array parameter: the unique index is probed once per value
                query = text(
                    "SELECT value, item_id FROM item_signals WHERE set_id = :set_id "
                    "AND signal_type = :kind AND value = ANY(CAST(:values AS VARCHAR[]))"
                )
                params: dict[str, object] = {"values": chunk}
            else:
                query = text(
                    "SELECT value, item_id FROM item_signals WHERE set_id = :set_id "
                    "AND signal_type = :kind AND value IN (SELECT value FROM json_each(:values))"
                )
                params = {"values": orjson.dumps(chunk).decode()}
            rows = connection.execute(query, {"set_id": set_id, "kind": kind, **params})
            held.update((kind, value) for value, item_id in rows if item_id not in excluded)
    return held


@dataclass(frozen=True)
class NewEntries:
    """Entries to add, as columns. Entry ``i`` has ``references[i]`` and ``categories[i]``;
    signal ``j`` (normalised) belongs to entry ``owners[j]``: owners run 0, 0, 1, 2, 2, ...,
    so that every entry has at least one signal and an entry's signals are together."""

    references: Sequence[str | None]
    categories: Sequence[Category]
    owners: Sequence[int]
    signal_types: Sequence[str]
    values: Sequence[str]

    def __len__(self) -> int:
        return len(self.references)


@dataclass(frozen=True)
class NewResult:
    #: The entries added (their positions in the batch), and their ids, in order.
    added: Sequence[int]
    item_ids: Sequence[int]
    #: First and last change number written, None when nothing was.
    seqs: tuple[int, int] | None
    #: The entries left out because the set holds one of their signals already.
    refused: list[int]


def _subset(entries: NewEntries, kept: list[int]) -> NewEntries:
    position = {entry: i for i, entry in enumerate(kept)}
    signals = [j for j, owner in enumerate(entries.owners) if owner in position]
    return NewEntries(
        references=[entries.references[i] for i in kept],
        categories=[entries.categories[i] for i in kept],
        owners=[position[entries.owners[j]] for j in signals],
        signal_types=[entries.signal_types[j] for j in signals],
        values=[entries.values[j] for j in signals],
    )


def _check(entries: NewEntries) -> None:
    count = len(entries)
    owners = entries.owners
    if len(entries.categories) != count:
        raise InvalidInput("one category per entry")
    if not len(owners) == len(entries.signal_types) == len(entries.values):
        raise InvalidInput("one owner, type and value per signal")
    if owners[0] != 0 or owners[-1] != count - 1:
        raise InvalidInput("every entry needs at least one signal, in order")
    if owners != range(count) and any(b - a not in (0, 1) for a, b in pairwise(owners)):
        raise InvalidInput("every entry needs at least one signal, in order")
    kinds, values = entries.signal_types, entries.values
    if len(set(values)) != len(values) and len(set(zip(kinds, values, strict=True))) != len(values):
        raise InvalidInput("a signal appears twice among the new entries")
    if not {c.code for c in entries.categories} <= set(CODES):
        raise InvalidInput("an entry's category is not a known code")
    references = [r for r in entries.references if r is not None]
    if references and (max(map(len, references)) > 200 or not "".join(references).isprintable()):
        raise InvalidInput("a reference is longer than 200 characters or not printable")


def add_new_entries(
    session: Session,
    hash_set: SetRef,
    entries: NewEntries,
    *,
    actor: str = "system",
    source: str | None = None,
) -> NewResult:
    """Add ``entries`` as active items, set-wise, in the session's transaction (not committed);
    returns which were added, their ids and the change numbers written.

    The signals must be normalised (``normalize_signals`` or ``normalize_column``) and appear
    once in the batch. An entry one of whose signals the set holds already is left out
    (``refused``): the set's unique index says so as the signals are written, so the usual
    case, where none is held, costs no lookup; the caller merges the refused ones the general
    way (``apply_items``)."""
    if len(entries) == 0:
        return NewResult([], [], None, [])
    _check(entries)
    lock_registry(session)
    set_row = load_set_row(session, hash_set)
    session.flush()
    connection = session.connection()
    at = now()
    count = len(entries)
    item_ids: Sequence[int] = allocate_ids(connection, ITEMS, "id", count)
    categories = entries.categories
    insert_rows(
        connection,
        ITEMS,
        constants={"set_id": set_row.id, "status": "active", "created_at": at, "updated_at": at},
        columns={
            "id": item_ids,
            "reference": entries.references,
            "category": [c.code for c in categories],
            "category_raw": [c.raw for c in categories],
            "category_scheme": [c.scheme for c in categories],
        },
    )
    owner_ids = _owner_ids(entries, item_ids)
    written = insert_rows(
        connection,
        ITEM_SIGNALS,
        constants={"set_id": set_row.id},
        columns={
            "item_id": owner_ids,
            "signal_type": entries.signal_types,
            "value": entries.values,
        },
        order_by=("signal_type", "value"),  # into the unique index in its own order
        skip_conflicts=True,
    )
    added: Sequence[int] = range(count)
    refused: list[int] = []
    if written != len(entries.values):
        held = held_signals(
            session, set_row.id, entries.signal_types, entries.values, besides=item_ids
        )
        refused = sorted({entries.owners[j] for j, signal in enumerate(
            zip(entries.signal_types, entries.values, strict=True)) if signal in held})  # fmt: skip
        _forget(connection, [item_ids[i] for i in refused])
        gone = set(refused)
        added = [i for i in range(count) if i not in gone]
        entries = _subset(entries, added)
        item_ids = [item_ids[i] for i in added]
        owner_ids = _owner_ids(entries, item_ids)
        if not added:
            return NewResult([], [], None, refused)
    signal_count = len(entries.values)
    seqs = allocate_ids(connection, CHANGES, "seq", signal_count)
    if seqs[-1] - seqs[0] != signal_count - 1:  # pragma: no cover - the registry lock's promise
        raise RuntimeError("change numbers are not consecutive: is the registry lock held?")
    codes = [c.code for c in entries.categories]
    if len(entries.values) != len(entries):
        codes = [codes[o] for o in entries.owners]
    insert_rows(
        connection,
        CHANGES,
        constants={"at": at, "set_id": set_row.id, "action": "add", "reason": "added"},
        columns={
            "seq": seqs,
            "item_id": owner_ids,
            "signal_type": entries.signal_types,
            "value": entries.values,
            "category": codes,
        },
    )
    digest = trail.columns_digest(
        seqs, [set_row.id] * signal_count, owner_ids, ["add"] * signal_count,
        entries.signal_types, entries.values, codes, ["added"] * signal_count,
    )  # fmt: skip
    span = (seqs[0], seqs[-1])
    counts = {"added": len(item_ids)}
    trail.batch_recorded(session, actor, set_row, source, counts, item_ids, span, digest)
    return NewResult(added, item_ids, span, refused)


def _owner_ids(entries: NewEntries, item_ids: Sequence[int]) -> Sequence[int]:
    """Each signal's item id; with one signal an entry (the usual case) the items themselves."""
    if len(entries.values) == len(entries):
        return item_ids
    return [item_ids[o] for o in entries.owners]


def _forget(connection: Connection, item_ids: list[int]) -> None:
    """Delete items written a moment ago in this transaction, before anything refers to them."""
    for start in range(0, len(item_ids), 1000):
        chunk = item_ids[start : start + 1000]
        connection.execute(delete(ITEM_SIGNALS).where(ITEM_SIGNALS.c.item_id.in_(chunk)))
        connection.execute(delete(ITEMS).where(ITEMS.c.id.in_(chunk)))
