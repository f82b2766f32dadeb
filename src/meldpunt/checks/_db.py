"""Small database helpers shared by the check service's modules."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["begin_write", "row_id"]


def begin_write(session: Session) -> None:
    """On SQLite, take the database's write lock now, before the reads a write depends on.

    A SQLite transaction that has read cannot later upgrade to a writer once another writer
    has committed ("database is locked"); taking the lock first makes the writer wait its turn
    instead. PostgreSQL needs nothing here: the writers lock the rows they change.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.execute(text("UPDATE organisations SET id = id WHERE 0"))


def row_id(text: str) -> int | None:
    """``text`` as a row id when it reads as one: ASCII digits within 64 bits. ``str.isdigit()``
    also says yes to ``'²'``, which ``int()`` refuses, and a longer number fits no database."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value < 2**63 else None
