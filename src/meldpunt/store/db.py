"""Engines and sessions.

``make_engine(url)`` works for SQLite (the embedded default) and PostgreSQL. Code that runs inside
the application uses ``session_scope()``, which talks to the database of the current settings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "begin_write",
    "dispose_engines",
    "get_engine",
    "make_engine",
    "make_sessionmaker",
    "session_scope",
    "sqlite_file",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000


def sqlite_file(url: str | URL) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode"):
        return None
    return Path(database)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url``; ``kwargs`` go to ``sqlalchemy.create_engine``.

    SQLite gets: the file's directory created, WAL, foreign keys enforced, a busy timeout, and
    real transactions (the sqlite3 module would otherwise run SELECTs outside any transaction,
    which lets two writers read the same state and both act on it).
    """
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)

    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level; _begin_sqlite_transaction emits BEGIN when SQLAlchemy
    # starts a transaction (the recipe from SQLAlchemy's SQLite dialect documentation).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit; the CLI and API hand them on after the session ends.
    return sessionmaker(bind=engine, expire_on_commit=False)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str | URL | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: the configured ``database_url``)."""
    if url is None:
        from meldpunt.config import get_settings

        url = get_settings().database_url
    key = make_url(url).render_as_string(hide_password=False)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(key)
        return engine


def dispose_engines() -> None:
    """Close every engine ``get_engine()`` made (tests, and processes that fork)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(bind: Engine | sessionmaker[Session] | None = None) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises.

    ``bind`` is an engine or a sessionmaker; by default the configured database.
    """
    if bind is None:
        bind = get_engine()
    factory = make_sessionmaker(bind) if isinstance(bind, Engine) else bind
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def begin_write(session: Session) -> None:
    """On SQLite, take the database's write lock now, before the reads a write depends on.

    A SQLite transaction that has read cannot later upgrade to a writer once another writer
    has committed ("database is locked"); taking the lock first makes the writer wait its turn
    instead. PostgreSQL needs nothing here: the writers lock the rows they change.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # A write that changes nothing, on a table every migrated database has.
        connection.execute(text("UPDATE alembic_version SET version_num = version_num WHERE 0"))
