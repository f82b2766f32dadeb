"""The audit events of item writes.

Single writes (``add_item``) record one event per item. An import records one event per batch
that changed anything: the items it touched, the counts, its change numbers and a SHA-256 over
its change rows, so that the tamper-evident audit chain also vouches for the change log. One
event per item would make a ten-million-line import write ten million chained events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.registry.changes import ChangeRow
from meldpunt.store.models import HashSet

__all__ = ["batch_imported", "changes_digest", "item_written"]


def item_written(
    session: Session,
    actor: str,
    set_row: HashSet,
    item_id: int,
    *,
    new: bool,
    state: Mapping[str, object],
) -> None:
    audit.record(
        session,
        actor=actor,
        action="registry.item.added" if new else "registry.item.updated",
        subject=("item", item_id),
        details={"set": set_row.name, "set_id": set_row.id, **state},
    )


def changes_digest(changes: Sequence[ChangeRow], seqs: Sequence[int]) -> str | None:
    """SHA-256 over change rows and their numbers, one canonical JSON line each."""
    if not seqs:
        return None
    digest = hashlib.sha256()
    for seq, c in zip(seqs, changes, strict=True):
        line = [seq, c.set_id, c.item_id, c.action, c.signal_type, c.value, c.category, c.reason]
        digest.update(audit.canonical_json(line).encode("utf-8") + b"\n")
    return digest.hexdigest()


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
