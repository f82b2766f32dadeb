"""Persistence: SQLAlchemy models, engines and sessions, and the Alembic migrations."""

from meldpunt.store.base import Base
from meldpunt.store.db import (
    begin_write,
    dispose_engines,
    get_engine,
    make_engine,
    make_sessionmaker,
    session_scope,
)
from meldpunt.store.migrate import current_revision, downgrade, init_db, upgrade

__all__ = [
    "Base",
    "begin_write",
    "current_revision",
    "dispose_engines",
    "downgrade",
    "get_engine",
    "init_db",
    "make_engine",
    "make_sessionmaker",
    "session_scope",
    "upgrade",
]
