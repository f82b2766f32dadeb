"""Checking the registry's tables against the audit log, for ``meldpunt audit verify``.

Two steps, each a stream through one table in order (memory stays small however large the
registry is):

1. The change log against the audit events that vouch for it (``trail.vouch``): every change
   row lies in the range of exactly one event, and the SHA-256 of each range's rows is the one
   its event recorded. An edited, removed or inserted change row is named here.
2. The entries against the change log. Every write of an entry's status, category or signals
   appends change rows, also for inactive entries, so replaying an entry's rows gives its status,
   category and signals; an entry whose table row says otherwise was changed outside meldpunt.
   Both streams are read in entry order and merged, one entry at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt.audit import RowProblem
from meldpunt.registry.trail import change_line
from meldpunt.store.models import Item, ItemSignal, RegistryChange

__all__ = ["ENTRY_FIELDS", "Voucher", "change_log_problems", "entry_problems"]

#: What the check compares for each entry.
ENTRY_FIELDS = ("status", "category", "signals")

_BATCH = 10_000


@dataclass(frozen=True)
class Voucher:
    """An audit event's claim about the change rows it wrote."""

    event_id: int
    first_seq: int
    last_seq: int
    changes_sha256: str


def change_log_problems(session: Session, vouchers: Iterable[Voucher]) -> list[RowProblem]:
    """Change rows that no event vouches for, and ranges whose rows differ from their event's."""
    ordered = sorted(vouchers, key=lambda v: v.first_seq)
    problems: list[RowProblem] = []
    columns = RegistryChange.__table__.c
    rows = session.execute(
        select(
            columns.seq,
            columns.set_id,
            columns.item_id,
            columns.action,
            columns.signal_type,
            columns.value,
            columns.category,
            columns.reason,
        ).order_by(columns.seq),
        execution_options={"yield_per": _BATCH},
    )
    fields = ("seq", "set_id", "item_id", "action", "signal_type", "value", "category", "reason")
    index = 0
    current: tuple[Voucher, Any] | None = None  # the open range and its running digest
    stray: list[int] = []  # consecutive change numbers outside every range

    def close_range() -> None:
        nonlocal current
        if current is not None:
            voucher, digest = current
            if digest.hexdigest() != voucher.changes_sha256:
                problems.append(_range_problem(voucher, fields))
            current = None

    def close_stray() -> None:
        if stray:
            problems.append(RowProblem("registry_changes", _span(stray[0], stray[-1]), fields,
                                       "no audit event vouches for these change rows "
                                       "(written outside meldpunt)"))  # fmt: skip
            stray.clear()

    try:
        for row in rows:
            seq = row.seq
            if current is not None and seq > current[0].last_seq:
                close_range()
            while current is None and index < len(ordered) and ordered[index].last_seq < seq:
                # A range none of whose rows is left: all of them were removed.
                problems.append(_range_problem(ordered[index], fields))
                index += 1
            if current is None and index < len(ordered) and ordered[index].first_seq <= seq:
                current = (ordered[index], hashlib.sha256())
                index += 1
            if current is None:
                stray.append(seq)
                continue
            close_stray()
            current[1].update(change_line(*row))
    finally:
        rows.close()
    close_range()
    close_stray()
    problems.extend(_range_problem(voucher, fields) for voucher in ordered[index:])
    return problems


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}..{last}"


def _range_problem(voucher: Voucher, fields: tuple[str, ...]) -> RowProblem:
    return RowProblem(
        "registry_changes",
        _span(voucher.first_seq, voucher.last_seq),
        fields,
        f"the rows differ from what audit event {voucher.event_id} recorded "
        "(edited, removed or inserted outside meldpunt)",
    )


@dataclass
class _Entry:
    status: str | None = None
    category: str | None = None
    signals: set[tuple[str, str]] = field(default_factory=set)
    deleted: bool = False


def _grouped(rows: Iterable[Any]) -> Iterator[tuple[int, list[Any]]]:
    """Rows ordered by their first column, grouped by it."""
    key: int | None = None
    group: list[Any] = []
    for row in rows:
        if row[0] != key:
            if group:
                assert key is not None
                yield key, group
            key, group = row[0], []
        group.append(row)
    if group:
        assert key is not None
        yield key, group


def _replayed(changes: Sequence[Any]) -> _Entry:
    entry = _Entry()
    for _, action, kind, value, category, reason in changes:
        if action == "remove" and reason == "deleted":
            entry.deleted = True
            continue
        entry.category = category
        if action == "add":
            entry.status = "active"
        elif action == "remove":
            entry.status = reason
        entry.signals.add((kind, value))
    return entry


def entry_problems(session: Session) -> list[RowProblem]:
    """Entries whose status, category or signals differ from what the change log says."""
    changes = session.execute(
        select(
            RegistryChange.item_id,
            RegistryChange.action,
            RegistryChange.signal_type,
            RegistryChange.value,
            RegistryChange.category,
            RegistryChange.reason,
        )
        .where(RegistryChange.item_id.is_not(None))
        .order_by(RegistryChange.item_id, RegistryChange.seq),
        execution_options={"yield_per": _BATCH},
    )
    tables = session.execute(
        select(Item.id, Item.status, Item.category, ItemSignal.signal_type, ItemSignal.value)
        .outerjoin(ItemSignal, ItemSignal.item_id == Item.id)
        .order_by(Item.id, ItemSignal.id),
        execution_options={"yield_per": _BATCH},
    )
    try:
        return list(_merge(_grouped(changes), _grouped(tables)))
    finally:
        changes.close()
        tables.close()


def _merge(
    logged: Iterator[tuple[int, list[Any]]], stored: Iterator[tuple[int, list[Any]]]
) -> Iterator[RowProblem]:
    log = next(logged, None)
    table = next(stored, None)
    while log is not None or table is not None:
        if table is None or (log is not None and log[0] < table[0]):
            assert log is not None
            expected = _replayed(log[1])
            if not expected.deleted:
                yield RowProblem("items", f"id {log[0]}", ENTRY_FIELDS,
                                 "in the change log but not in the table "
                                 "(deleted outside meldpunt)")  # fmt: skip
            log = next(logged, None)
            continue
        if log is None or table[0] < log[0]:
            yield RowProblem("items", f"id {table[0]}", ENTRY_FIELDS,
                             "not in the change log (written outside meldpunt)")  # fmt: skip
            table = next(stored, None)
            continue
        problem = _compare(table[0], _replayed(log[1]), table[1])
        if problem is not None:
            yield problem
        log, table = next(logged, None), next(stored, None)


def _compare(item_id: int, expected: _Entry, rows: list[Any]) -> RowProblem | None:
    _, status, category, _, _ = rows[0]
    signals = {(kind, value) for _, _, _, kind, value in rows if kind is not None}
    found: list[str] = []
    if expected.deleted:
        found.append("deleted by the change log, still in the table")
    if status != expected.status:
        found.append(f"status {status!r}, the change log says {expected.status!r}")
    if category != expected.category:
        found.append(f"category {category!r}, the change log says {expected.category!r}")
    if signals != expected.signals:
        extra = sorted(signals - expected.signals)
        missing = sorted(expected.signals - signals)
        words = []
        if extra:
            words.append("not in the change log: " + ", ".join(f"{k} {v}" for k, v in extra))
        if missing:
            words.append("missing: " + ", ".join(f"{k} {v}" for k, v in missing))
        found.append("signals " + "; ".join(words))
    if not found:
        return None
    return RowProblem("items", f"id {item_id}", ENTRY_FIELDS,
                      "; ".join(found) + " (changed outside meldpunt)")  # fmt: skip
