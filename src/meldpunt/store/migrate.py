"""Alembic migrations, run from Python: no alembic.ini is needed.

    upgrade("sqlite:///./var/meldpunt.db")          # to head
    downgrade(engine, "base")
    init_db()                                       # the configured database, to head

Developers write a new migration with ``python -m meldpunt.store revision "message"``, which
autogenerates it from the models in ``meldpunt.store.models`` (review it before committing).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL

from meldpunt.store.db import make_engine

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "init_db",
    "new_revision",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

Target = Engine | str | URL


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _migration_connection(target: Target) -> Iterator[Connection]:
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Batch migrations rebuild tables (create, copy, drop, rename); with foreign keys
                # enforced the drop would cascade into referencing tables. The pragma only takes
                # effect outside a transaction, hence the raw connection before BEGIN.
                connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA foreign_keys = OFF"
                )
            try:
                with connection.begin():
                    yield connection
                    if sqlite:
                        _check_foreign_keys(connection)
            finally:
                if sqlite:
                    connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                        "PRAGMA foreign_keys = ON"
                    )
    finally:
        if engine is not target:
            engine.dispose()


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
    if broken:
        raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:10]}")


def upgrade(target: Target, revision: str = "head") -> None:
    """Migrate the database at ``target`` (an engine or URL) up to ``revision``."""
    with _migration_connection(target) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(target: Target, revision: str) -> None:
    """Migrate down to ``revision`` ("base" removes every table the migrations made)."""
    with _migration_connection(target) as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(target: Target) -> str | None:
    """The revision the database is at, None when it was never migrated."""
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if engine is not target:
            engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def init_db(url: str | URL | None = None) -> None:
    """Create or update the schema of ``url`` (default: the configured database) to head."""
    if url is None:
        from meldpunt.config import get_settings

        url = get_settings().database_url
    upgrade(url, "head")


def new_revision(message: str) -> Path:
    """Autogenerate the next migration by comparing the models with a scratch database at head."""
    head = head_revision()
    rev_id = f"{int(head) + 1:04d}" if head else "0001"
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/scratch.db"
        upgrade(url)
        with _migration_connection(url) as connection:
            script = command.revision(
                alembic_config(connection), message=message, autogenerate=True, rev_id=rev_id
            )
    if script is None or isinstance(script, list):
        raise RuntimeError("alembic wrote no single revision")
    path = Path(script.path)
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.is_file():
        subprocess.run([ruff, "check", "--fix", "--quiet", path], check=False)
        subprocess.run([ruff, "format", "--quiet", path], check=False)
    return path
