"""Fixtures shared by the whole suite: databases and settings.

``db_url`` runs a test once on SQLite and once on PostgreSQL, each time on an empty database of its
own: a fresh SQLite file, or a fresh PostgreSQL schema that the URL selects through
``options=-csearch_path=...`` (so the URL alone isolates the test, also in code that makes its own
engine, and tests can run in parallel under pytest-xdist). The schema is dropped afterwards.

PostgreSQL comes from ``MELDPUNT_TEST_DATABASE_URL``. When no server answers, its runs are skipped,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from meldpunt.config import Settings, get_settings, reset_settings
from meldpunt.store import dispose_engines, init_db, make_engine

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

_postgres_server: Engine | None = None
_postgres_problem: str | None = None


def postgres_test_url() -> str:
    return os.environ.get("MELDPUNT_TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL


def _postgres_admin() -> Engine:
    """An engine on the test server for creating and dropping schemas; skips or fails if none."""
    global _postgres_server, _postgres_problem
    if _postgres_server is None and _postgres_problem is None:
        url = postgres_test_url()
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
        try:
            with engine.connect():
                pass
            _postgres_server = engine
        except OperationalError as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            first_line = str(exc.orig or exc).strip().splitlines()[0]
            _postgres_problem = f"no PostgreSQL at {shown} ({first_line})"
    if _postgres_server is not None:
        return _postgres_server
    message = f"{_postgres_problem}; set MELDPUNT_TEST_DATABASE_URL or start the server"
    if _CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database that belongs to this test alone."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return

    admin = _postgres_admin()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(postgres_test_url()).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            # A session the test left open would make DROP wait forever; give up loudly instead.
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on this test's database, migrated to head."""
    engine = make_engine(db_url)
    init_db(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the migrated test database; whatever it did not commit is rolled back."""
    with Session(engine, expire_on_commit=False) as session:
        yield session
        session.rollback()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings from defaults only (no meldpunt.toml, no MELDPUNT_* from the shell), with data_dir
    and the SQLite database under tmp_path. Change them with monkeypatch.setenv, then call
    reset_settings() and get_settings() again."""
    for name in list(os.environ):
        if name.startswith("MELDPUNT_") and name != "MELDPUNT_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    empty_config = tmp_path / "meldpunt.toml"
    empty_config.write_text("")
    monkeypatch.setenv("MELDPUNT_CONFIG", str(empty_config))
    monkeypatch.setenv("MELDPUNT_DATA_DIR", str(tmp_path / "var"))
    reset_settings()
    try:
        yield get_settings()
    finally:
        reset_settings()
        dispose_engines()


@pytest.fixture
def cli_db(settings, db_url, monkeypatch):
    """Point the configured database (what the commands use) at this test's database."""
    monkeypatch.setenv("MELDPUNT_DATABASE_URL", db_url)
    reset_settings()
    yield db_url
    dispose_engines()
