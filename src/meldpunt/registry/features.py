"""Local features kept beside the entries whose ``features`` signal names them by SHA-256."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from meldpunt.clock import now
from meldpunt.registry.locking import lock_registry
from meldpunt.signals.features import LocalFeatures
from meldpunt.store.models import ItemFeatures

__all__ = ["keep_features"]


def keep_features(session: Session, blob: bytes) -> str:
    """Store features under their SHA-256 (once; the same picture in two sets shares them).

    Takes the registry's write lock before it reads (``locking``): on SQLite, a transaction
    that read first could not write once another writer had committed meanwhile ("database is
    locked"); on PostgreSQL, a row written before the lock could deadlock with a writer that
    holds the lock and stores the same features."""
    LocalFeatures.from_bytes(blob)  # refuse anything that is not features
    digest = hashlib.sha256(blob).hexdigest()
    lock_registry(session)
    if session.scalar(select(ItemFeatures.digest).where(ItemFeatures.digest == digest)):
        return digest
    try:
        with session.begin_nested():
            session.add(ItemFeatures(digest=digest, data=blob, created_at=now()))
    except IntegrityError:  # stored by another writer meanwhile: the same bytes
        pass
    return digest
