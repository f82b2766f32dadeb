"""The registry's write lock.

Change numbers (``registry_changes.seq``) must become visible in the order they were handed out,
so that a follower asking for "everything after N" never misses a row that commits later with a
lower number. Writers therefore run one at a time: every writing transaction calls
``lock_registry()`` before it reads anything it will act on, and holds the lock until it ends.

- PostgreSQL: ``pg_advisory_xact_lock`` on a fixed key; readers are never blocked.
- SQLite: the database's write lock, taken at once (a write statement that changes nothing), so
  that the reads that follow see the newest committed state.

Take this lock before any other lock (the audit log's, for one), so that two transactions never
wait on each other in opposite orders. Call the registry's writers at the start of a transaction
(or after reads only of things the write does not depend on): on SQLite, a transaction that has
already read cannot wait for the write lock and fails with "database is locked" when another
writer committed in the meantime.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["REGISTRY_LOCK_KEY", "lock_registry"]

#: The advisory lock key: "meldpunt" spelled as ASCII bytes, read as a 64-bit number.
REGISTRY_LOCK_KEY = int.from_bytes(b"meldpunt", "big") & 0x7FFF_FFFF_FFFF_FFFF


def lock_registry(session: Session) -> None:
    """Hold the registry's write lock until the session's transaction ends (re-entrant)."""
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REGISTRY_LOCK_KEY})
    elif dialect == "sqlite":
        connection.execute(text("UPDATE hash_sets SET id = id WHERE 0"))
