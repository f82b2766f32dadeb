import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.store.models import AuditEvent

START = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)


def record_five(session: Session) -> list[int]:
    clock = FrozenClock(START)
    ids = []
    with use_clock(clock):
        for number in range(1, 6):
            event = audit.record(
                session,
                actor="analyst:1",
                action="report.graded",
                subject=("report", number),
                details={"grade": "A1", "note": f"nummer {number} ✓"},
            )
            ids.append(event.id)
            clock.advance(timedelta(minutes=1))
    session.commit()
    return ids


def test_events_form_a_chain(session):
    ids = record_five(session)
    events = session.query(audit.AuditEvent).order_by(audit.AuditEvent.id).all()
    assert [event.id for event in events] == ids
    assert events[0].prev_hash == audit.GENESIS_HASH
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    assert events[2].at == START + timedelta(minutes=2)
    assert (events[2].subject_type, events[2].subject_id) == ("report", "3")
    assert events[2].details == '{"grade":"A1","note":"nummer 3 ✓"}'


def test_an_intact_chain_verifies(session):
    assert audit.verify(session) == audit.VerifyResult(ok=True, count=0)
    ids = record_five(session)
    result = audit.verify(session)
    assert result.ok and result.count == 5 and result.first_broken_id is None
    last = session.get(audit.AuditEvent, ids[-1])
    assert last is not None and result.head == last.hash


def test_verify_walks_the_chain_in_batches(session):
    record_five(session)
    assert audit.verify(session, batch_size=2).count == 5


def test_an_edited_event_is_found(session):
    ids = record_five(session)
    session.execute(
        text("UPDATE audit_events SET details = :details WHERE id = :id"),
        {"details": '{"grade":"B2"}', "id": ids[2]},
    )
    session.commit()
    result = audit.verify(session)
    assert not result.ok
    assert result.first_broken_id == ids[2]
    assert result.count == 3
    assert "altered" in (result.reason or "")


@pytest.mark.parametrize("column", ["actor", "action", "subject_id", "at"])
def test_any_edited_field_breaks_the_chain(session, column):
    ids = record_five(session)
    new_value = datetime(2020, 1, 1, tzinfo=UTC) if column == "at" else "forged"
    event = session.get(audit.AuditEvent, ids[1])
    setattr(event, column, new_value)
    session.commit()
    assert audit.verify(session).first_broken_id == ids[1]


def test_a_deleted_event_is_found_at_the_next_one(session):
    ids = record_five(session)
    session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[2]})
    session.commit()
    result = audit.verify(session)
    assert not result.ok
    assert result.first_broken_id == ids[3]
    assert "removed" in (result.reason or "")


def test_appending_after_a_deleted_newest_event_continues_from_the_new_end(session):
    ids = record_five(session)
    session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[-1]})
    session.commit()
    audit.record(session, actor="system", action="after.truncation")
    session.commit()
    result = audit.verify(session)
    # Truncation itself leaves no gap in the chain; that is what publishing the head is for.
    assert result.ok and result.count == 5


def test_details_must_be_plain_json(session):
    with pytest.raises(TypeError):
        audit.record(session, actor="a", action="b", details={"when": START})


def test_an_event_rolled_back_with_its_change_leaves_no_trace(session):
    record_five(session)
    audit.record(session, actor="a", action="never.happened")
    session.rollback()
    assert audit.verify(session).count == 5


def test_concurrent_writers_keep_one_valid_chain(engine):
    writers, events_each = 8, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(writer: int) -> None:
        try:
            start.wait()
            for number in range(events_each):
                with Session(engine) as session:
                    audit.record(
                        session,
                        actor=f"writer:{writer}",
                        action="test.append",
                        details={"n": number},
                    )
                    session.commit()
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with Session(engine) as session:
        result = audit.verify(session)
    assert result.ok, result
    assert result.count == writers * events_each


def test_record_many_makes_the_chain_that_one_by_one_would(db_url):
    from meldpunt.store import init_db, make_engine, make_sessionmaker

    init_db(db_url)
    sessions = make_sessionmaker(make_engine(db_url))
    with sessions() as session, session.begin():
        audit.record(session, actor="a", action="first")
        written = audit.record_many(
            session,
            [audit.Entry("b", "many", ("url_item", n), {"n": n}) for n in range(50)],
        )
        audit.record(session, actor="c", action="last")
    assert written == 50
    with sessions() as session:
        result = audit.verify(session)
        assert result.ok, result
        actions = session.scalars(
            select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(52)
        ).all()
    assert actions[0] == "last" and actions[-1] == "first" and set(actions[1:-1]) == {"many"}
