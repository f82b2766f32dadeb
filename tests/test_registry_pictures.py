"""Entries from pictures (``registry.pictures.add_pictures``) beside other writers: the pictures
are decoded before anything is written, their entries written under the registry's lock taken
before any read, so that a writer committing meanwhile never fails them (SQLite's "database is
locked"), writers adding the same pictures at once never deadlock (PostgreSQL), and an error
while decoding leaves nothing written."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from imaging import jpeg, photo
from meldpunt import registry
from meldpunt.errors import Unavailable
from meldpunt.registry.pictures import add_pictures
from meldpunt.signals import HashOptions, pdq_signal
from meldpunt.store import make_sessionmaker
from meldpunt.store.db import sqlite_file
from meldpunt.store.models import Item, ItemFeatures

PICTURES = [("rocket.jpg", jpeg(photo("rocket"))), ("chelsea.jpg", jpeg(photo("chelsea"))),
            ("astronaut.jpg", jpeg(photo("astronaut")))]  # fmt: skip


def entries(engine: Any) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Item)) or 0)


def a_set(engine: Any, name: str = "pixels") -> None:
    with Session(engine) as session:
        registry.create_set(session, name)
        session.commit()


def test_a_writer_committing_between_its_statements_never_fails_adding_pictures(tmp_path):
    """The path that answered 500 on SQLite: the features' row was read before the registry's
    lock was taken, so a commit by another writer in between made the write that followed fail
    at once ("database is locked"; SQLite's busy timeout does not wait for that)."""
    from meldpunt.store import init_db, make_engine

    url = f"sqlite:///{tmp_path / 'meldpunt.db'}"
    init_db(url)
    engine = make_engine(url)
    a_set(engine)
    path = sqlite_file(url)
    assert path is not None
    other = sqlite3.connect(path, timeout=0, isolation_level=None)  # a writer that never waits
    other.execute("CREATE TABLE elsewhere (n INTEGER)")
    committed: list[str] = []

    def meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        try:
            other.execute("INSERT INTO elsewhere VALUES (1)")  # a commit of its own
            committed.append(statement.split()[0])
        except sqlite3.OperationalError:  # locked: the adder holds the write lock, as it should
            pass

    event.listen(engine, "after_cursor_execute", meanwhile)
    try:
        with make_sessionmaker(engine)() as session:
            out = add_pictures(session, "pixels", PICTURES, HashOptions())
            session.commit()
    finally:
        event.remove(engine, "after_cursor_execute", meanwhile)
        other.close()
    assert [o.outcome for o in out] == ["added"] * 3
    assert committed  # the other writer did get in, before the lock
    assert entries(engine) == 3
    engine.dispose()


def test_writers_adding_the_same_pictures_at_once_each_finish(engine):
    """Four writers add the same pictures in different orders at once: none fails (on
    PostgreSQL a features row written before the lock could deadlock), each picture is one
    entry, its features stored once."""
    a_set(engine)
    factory = make_sessionmaker(engine)
    failures: list[str] = []
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def writer(order: list[tuple[str, bytes]]) -> None:
        try:
            start.wait(timeout=30)
            with factory() as session:
                out = add_pictures(session, "pixels", order, HashOptions())
                session.commit()
            outcomes.extend(o.outcome for o in out)
        except Exception as exc:  # a failed writer counts, not just a wrong answer
            failures.append(repr(exc))

    orders = [PICTURES, PICTURES[::-1], PICTURES[1:] + PICTURES[:1], PICTURES[2:] + PICTURES[:2]]
    threads = [threading.Thread(target=writer, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == []
    assert sorted(outcomes).count("added") == 3 and len(outcomes) == 12
    assert set(outcomes) <= {"added", "unchanged"}
    assert entries(engine) == 3
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(ItemFeatures)) == 3


def test_an_error_while_decoding_leaves_nothing_written(engine):
    """The service's decoding memory lent out (503) at the second picture: the first, already
    decoded, is not written either; the retry adds both."""
    a_set(engine)
    calls: list[int] = []

    def busy_second(data: bytes, options: HashOptions) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise Unavailable("decoding memory lent out", retry_after=1)
        return pdq_signal(data, options)

    factory = make_sessionmaker(engine)
    with pytest.raises(Unavailable), factory() as session:
        add_pictures(session, "pixels", PICTURES[:2], HashOptions(), decode=busy_second)
        session.commit()
    assert entries(engine) == 0
    with factory() as session:
        out = add_pictures(session, "pixels", PICTURES[:2], HashOptions())
        session.commit()
    assert [o.outcome for o in out] == ["added", "added"] and entries(engine) == 2


def test_what_is_refused_is_refused_before_any_picture_is_decoded(engine):
    a_set(engine)
    decoded: list[bytes] = []

    def decode(data: bytes, options: HashOptions) -> Any:
        decoded.append(data)
        return pdq_signal(data, options)

    factory = make_sessionmaker(engine)
    for name, category, error in (
        ("nope", None, registry.NotFound),
        ("po\x00lice", None, registry.NotFound),
        ("pixels", "A1\x00", registry.InvalidInput),
        ("pixels", "x" * 101, registry.InvalidInput),
        ("pixels", "line\nbreak", registry.InvalidInput),
    ):
        with pytest.raises(error), factory() as session:
            add_pictures(session, name, PICTURES, HashOptions(), category=category, decode=decode)
    assert decoded == [] and entries(engine) == 0


def test_a_pictures_name_is_a_label_its_odd_characters_replaced(engine):
    a_set(engine)
    names = ["a\x00b.jpg", "\x1b[31mred.jpg", "x\u202egpj.exe", "lone\udcff.jpg", "", "n" * 300]
    photos = ["rocket", "chelsea", "astronaut", "camera", "coffee", "immunohistochemistry"]
    pictures = [(name, jpeg(photo(p))) for name, p in zip(names, photos, strict=True)]
    with make_sessionmaker(engine)() as session:
        out = add_pictures(session, "pixels", pictures, HashOptions())
        session.commit()
    assert [o.outcome for o in out] == ["added"] * 6
    labels = ["a\ufffdb.jpg", "\ufffd[31mred.jpg", "x\ufffdgpj.exe", "lone\ufffd.jpg", "picture",
              "n" * 200]  # fmt: skip
    assert [o.name for o in out] == labels
    with Session(engine) as session:
        assert set(session.scalars(select(Item.reference))) == set(labels)


def test_with_a_batch_size_entries_are_committed_a_batch_at_a_time(engine):
    a_set(engine)
    seen: list[int] = []

    def decode(data: bytes, options: HashOptions) -> Any:
        seen.append(entries(engine))  # what another session sees while this picture decodes
        return pdq_signal(data, options)

    with make_sessionmaker(engine)() as session:
        out = add_pictures(session, "pixels", PICTURES, HashOptions(), decode=decode, batch_size=2)
        session.commit()
    assert [o.outcome for o in out] == ["added"] * 3
    assert seen == [0, 0, 2]


def test_pictures_are_taken_one_at_a_time(engine):
    """The next picture's bytes are asked for only once the previous one is decoded: a request
    with many files holds one of them in memory, besides the entries made so far."""
    a_set(engine)
    events: list[str] = []

    def pictures() -> Any:
        for name, data in PICTURES:
            events.append(f"read {name}")
            yield name, data

    def decode(data: bytes, options: HashOptions) -> Any:
        events.append("decode")
        return pdq_signal(data, options)

    with make_sessionmaker(engine)() as session:
        add_pictures(session, "pixels", pictures(), HashOptions(), decode=decode)
        session.commit()
    assert events == [e for name, _ in PICTURES for e in (f"read {name}", "decode")]
