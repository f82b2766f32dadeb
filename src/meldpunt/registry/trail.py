"""The audit events of item writes, and how they vouch for the change log.

Single writes (``add_item``) record one event per item. An import records one event per batch
that changed anything: the items it touched, the counts, its change numbers and a SHA-256 over
its change rows. One event per item would make a ten-million-line import write ten million
chained events.

Every event that writes change rows carries ``vouch(...)``: the first and last change number it
wrote and a SHA-256 over those rows, so that the tamper-evident audit chain covers the whole
change log; and since the change log states every entry's status, category and signals
(``integrity``), it covers the entries too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.registry.changes import ChangeRow
from meldpunt.store.models import HashSet

__all__ = [
    "batch_imported",
    "batch_recorded",
    "change_line",
    "changes_digest",
    "columns_digest",
    "item_written",
    "vouch",
]


def item_written(
    session: Session,
    actor: str,
    set_row: HashSet,
    item_id: int,
    *,
    new: bool,
    state: Mapping[str, object],
    changes: Sequence[ChangeRow] = (),
    seqs: Sequence[int] = (),
) -> None:
    audit.record(
        session,
        actor=actor,
        action="registry.item.added" if new else "registry.item.updated",
        subject=("item", item_id),
        details={"set": set_row.name, "set_id": set_row.id, **state, **vouch(changes, seqs)},
    )


def change_line(
    seq: int,
    set_id: int,
    item_id: int | None,
    action: str,
    signal_type: str | None,
    value: str | None,
    category: str | None,
    reason: str,
) -> bytes:
    """One change row as the digests see it: a canonical JSON line."""
    line = [seq, set_id, item_id, action, signal_type, value, category, reason]
    return audit.canonical_json(line).encode("utf-8") + b"\n"


def changes_digest(changes: Sequence[ChangeRow], seqs: Sequence[int]) -> str | None:
    """SHA-256 over change rows and their numbers, one canonical JSON line each."""
    if not seqs:
        return None
    return columns_digest(
        seqs,
        [c.set_id for c in changes],
        [c.item_id for c in changes],
        [c.action for c in changes],
        [c.signal_type for c in changes],
        [c.value for c in changes],
        [c.category for c in changes],
        [c.reason for c in changes],
    )


def _plain(words: Iterable[str | None]) -> bool:
    """True when every word is written in JSON as it is, between quotes (no escapes)."""
    joined = "".join(w for w in words if w is not None)
    return '"' not in joined and "\\" not in joined and joined.isprintable()


_LINE = '[{},{},{},"{}","{}","{}","{}","{}"]\n'


def columns_digest(
    seqs: Sequence[int],
    set_ids: Sequence[int],
    item_ids: Sequence[int | None],
    actions: Sequence[str],
    signal_types: Sequence[str | None],
    values: Sequence[str | None],
    categories: Sequence[str | None],
    reasons: Sequence[str],
) -> str | None:
    """``changes_digest`` of change rows given as columns: the same lines, written with one
    format string when no field needs escaping (hashes, codes and words never do), which costs
    a fraction of ``canonical_json`` a row. A bulk write of millions of rows digests them all."""
    if not seqs:
        return None
    digest = hashlib.sha256()
    columns = (seqs, set_ids, item_ids, actions, signal_types, values, categories, reasons)
    texts = (actions, signal_types, values, categories, reasons)
    fast = (
        all(None not in column for column in (item_ids, *texts))
        and all(_plain(set(column)) for column in (actions, signal_types, categories, reasons))
        and _plain(values)
    )
    if fast:
        for start in range(0, len(seqs), 100_000):
            chunk = (column[start : start + 100_000] for column in columns)
            digest.update("".join(map(_LINE.format, *chunk)).encode("utf-8"))
    else:
        for row in zip(*columns, strict=True):
            digest.update(change_line(*row))
    return digest.hexdigest()


def vouch(changes: Sequence[ChangeRow], seqs: Sequence[int]) -> dict[str, object]:
    """What an audit event records of the change rows it wrote (nothing when it wrote none).

    The rows must have consecutive numbers within the writer's transaction (the registry lock
    makes them so), so that ``first_seq..last_seq`` holds exactly these rows."""
    if not seqs:
        return {}
    return {
        "first_seq": seqs[0],
        "last_seq": seqs[-1],
        "changes_sha256": changes_digest(changes, seqs),
    }


def batch_imported(
    session: Session,
    actor: str,
    set_row: HashSet,
    source: str | None,
    counts: Mapping[str, int],
    item_ids: Sequence[int | None],
    changes: Sequence[ChangeRow],
    seqs: Sequence[int],
) -> None:
    batch_recorded(
        session, actor, set_row, source, counts, item_ids,
        (seqs[0], seqs[-1]) if seqs else None, changes_digest(changes, seqs),
    )  # fmt: skip


def batch_recorded(
    session: Session,
    actor: str,
    set_row: HashSet,
    source: str | None,
    counts: Mapping[str, int],
    item_ids: Sequence[int | None],
    seqs: tuple[int, int] | None,
    digest: str | None,
) -> None:
    """The event of a batch whose change rows' digest is known (``columns_digest``)."""
    audit.record(
        session,
        actor=actor,
        action="registry.items.imported",
        subject=("hash_set", set_row.id),
        details={
            "set": set_row.name,
            "source": source,
            **{name: counts.get(name, 0) for name in ("added", "updated", "unchanged", "rejected")},
            "items": list(item_ids),
            "first_seq": seqs[0] if seqs else None,
            "last_seq": seqs[1] if seqs else None,
            "changes_sha256": digest,
        },
    )
