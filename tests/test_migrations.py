from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import meldpunt.store.models  # noqa: F401  (registers the tables)
from meldpunt.store import Base, current_revision, downgrade, init_db, make_engine, upgrade
from meldpunt.store.migrate import head_revision


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_and_upgrade_again(db_url):
    assert table_names(db_url) == set()
    assert current_revision(db_url) is None

    upgrade(db_url, "head")
    assert {
        "audit_events",
        "hash_sets",
        "items",
        "organisations",
        "api_keys",
        "subscriptions",
        "hits",
        "check_counts",
        "false_positive_reviews",
        "alembic_version",
    } <= table_names(db_url)
    assert current_revision(db_url) == head_revision() is not None

    downgrade(db_url, "base")
    assert table_names(db_url) <= {"alembic_version"}
    assert current_revision(db_url) is None

    upgrade(db_url, "head")
    assert "audit_events" in table_names(db_url)


def test_init_db_is_upgrade_to_head_and_can_run_twice(db_url):
    init_db(db_url)
    init_db(db_url)
    assert current_revision(db_url) == head_revision()


def test_init_db_uses_the_configured_database(settings):
    init_db()
    assert current_revision(settings.database_url) == head_revision()
    assert (settings.data_dir / "meldpunt.db").is_file()


def test_the_migrations_build_exactly_what_the_models_describe(db_url):
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
