"""Small database helpers shared by the check service's modules."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["begin_write"]


def begin_write(session: Session) -> None:
    """On SQLite, take the database's write lock now, before the reads a write depends on.

    A SQLite transaction that has read cannot later upgrade to a writer once another writer
    has committed ("database is locked"); taking the lock first makes the writer wait its turn
    instead. PostgreSQL needs nothing here: the writers lock the rows they change.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.execute(text("UPDATE organisations SET id = id WHERE 0"))
