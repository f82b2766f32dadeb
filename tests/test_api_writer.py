"""The hit writer's group commits: one request's hits that cannot be written fail that request
only, never the others that shared its transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

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
