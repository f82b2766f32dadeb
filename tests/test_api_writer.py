"""The hit writer's group commits: one request's hits that cannot be written fail that request
only, never the others that shared its transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import func, select

import meldpunt.api.writer as writer_module
from meldpunt import checks, registry
from meldpunt.api.writer import Writer
from meldpunt.store import make_sessionmaker
from meldpunt.store.models import Hit


def new_hit(set_id: int, item_id: int) -> checks.NewHit:
    return checks.NewHit("md5", os.urandom(16).hex(), 0, set_id, item_id, "csam_baseline")


def test_a_member_that_cannot_be_written_fails_alone(engine, session, settings):
    a = checks.create_org(session, "platform-a", "platform")
    b = checks.create_org(session, "platform-b", "platform")
    police = registry.create_set(session, "police-nl", default_category="baseline")
    item = registry.add_item(session, police, [("md5", os.urandom(16).hex())]).item.id
    session.commit()
    writer = Writer(make_sessionmaker(engine))
    # Queued before the writer starts, so that all three share the first group commit.
    good = writer.submit(a.id, [new_hit(police.id, item), new_hit(police.id, item)])
    # An entry that does not exist: the database refuses the row (a foreign key), as it would
    # any row it cannot store.
    bad = writer.submit(b.id, [new_hit(police.id + 1000, item)])
    other = writer.submit(b.id, [new_hit(police.id, item)])
    writer.start()
    try:
        good_ids, other_ids = good.result(timeout=30), other.result(timeout=30)
        with pytest.raises(Exception, match="(?i)foreign key"):
            bad.result(timeout=30)
    finally:
        writer.stop()
    assert len(good_ids) == 2 and len(other_ids) == 1
    session.expire_all()
    stored = session.scalars(select(Hit).where(Hit.public_id.in_(good_ids + other_ids))).all()
    assert {(h.org_id, h.item_id) for h in stored} == {(a.id, item), (b.id, item)}
    assert session.scalar(select(func.count()).select_from(Hit)) == 3


def test_a_single_failing_request_gets_its_error(engine, session, settings):
    a = checks.create_org(session, "platform-a", "platform")
    police = registry.create_set(session, "police-nl", default_category="baseline")
    session.commit()
    writer = Writer(make_sessionmaker(engine))
    writer.start()
    try:
        with pytest.raises(Exception, match="(?i)foreign key"):
            writer.submit(a.id, [new_hit(police.id + 1000, 1)]).result(timeout=30)
        item = registry.add_item(session, police, [("md5", os.urandom(16).hex())]).item.id
        session.commit()
        assert len(writer.submit(a.id, [new_hit(police.id, item)]).result(timeout=30)) == 1
    finally:
        writer.stop()


def test_a_flush_before_reading_waits_for_one_in_progress(engine, session, settings, monkeypatch):
    # The writer's own flush took the counts and is committing them when a reader (GET
    # /v1/stats) flushes too: the reader's flush must wait, not find nothing and read too early.
    org = checks.create_org(session, "platform-a", "platform")
    session.commit()
    writer = Writer(make_sessionmaker(engine))
    inside, release = threading.Event(), threading.Event()
    real_record_check = writer_module.record_check

    def slow_record_check(*args, **kwargs):
        inside.set()
        release.wait(timeout=30)
        return real_record_check(*args, **kwargs)

    monkeypatch.setattr(writer_module, "record_check", slow_record_check)
    writer.count(org.id, 5)
    first = threading.Thread(target=writer.flush_counts)
    first.start()
    assert inside.wait(timeout=30)
    second = threading.Thread(target=writer.flush_counts)
    second.start()
    second.join(timeout=0.2)
    assert second.is_alive()  # waits for the flush in progress instead of returning at once
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    (stats,) = checks.org_stats(session, org.id)
    assert stats.checks == 1 and stats.items == 5
