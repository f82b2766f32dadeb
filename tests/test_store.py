from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from meldpunt.store import get_engine, make_engine, session_scope
from meldpunt.store.db import sqlite_file
from meldpunt.store.models import AuditEvent


def test_sqlite_engine_creates_the_directory_and_sets_pragmas(tmp_path):
    url = f"sqlite:///{tmp_path}/deep/er/meldpunt.db"
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert (tmp_path / "deep" / "er" / "meldpunt.db").is_file()
    finally:
        engine.dispose()


def test_sqlite_file_knows_which_urls_are_files():
    assert sqlite_file("sqlite:///./var/meldpunt.db") is not None
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql+psycopg://localhost/x") is None


def event(at: datetime, action: str = "test.event") -> AuditEvent:
    return AuditEvent(
        at=at, actor="test", action=action, details="{}", prev_hash="0" * 64, hash=action
    )


def test_datetimes_come_back_as_the_same_aware_utc_moment(session):
    plus_two = timezone(timedelta(hours=2))
    stored = datetime(2025, 6, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    session.add(event(stored))
    session.commit()
    session.expunge_all()
    loaded = session.query(AuditEvent).one()
    assert loaded.at == stored
    assert loaded.at.tzinfo is not None and loaded.at.utcoffset() == timedelta(0)
    assert loaded.at.hour == 12


def test_naive_datetimes_are_refused(session):
    session.add(event(datetime(2025, 6, 1, 12)))
    with pytest.raises(Exception, match="naive datetime"):
        session.flush()


def test_session_scope_commits_or_rolls_back(engine):
    with session_scope(engine) as session:
        session.add(event(datetime(2025, 1, 1, tzinfo=UTC), "kept"))
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(event(datetime(2025, 1, 1, tzinfo=UTC), "dropped"))
        session.flush()
        raise RuntimeError("undo")
    with session_scope(engine) as session:
        actions = session.execute(text("SELECT action FROM audit_events")).scalars().all()
    assert actions == ["kept"]


def test_session_scope_defaults_to_the_configured_database(settings):
    from meldpunt.store import init_db

    init_db()
    with session_scope() as session:
        assert session.get_bind() is get_engine()
        assert session.execute(text("SELECT count(*) FROM audit_events")).scalar() == 0
