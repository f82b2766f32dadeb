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
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.registry.changes import ChangeRow
from meldpunt.store.models import HashSet

__all__ = ["batch_imported", "change_line", "changes_digest", "item_written", "vouch"]


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
    digest = hashlib.sha256()
    for seq, c in zip(seqs, changes, strict=True):
        digest.update(
            change_line(
                seq, c.set_id, c.item_id, c.action, c.signal_type, c.value, c.category, c.reason
            )
        )
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
            "last_seq": seqs[-1] if seqs else None,
            "changes_sha256": changes_digest(changes, seqs),
        },
    )
