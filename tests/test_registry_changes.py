"""The change log under concurrency, and a follower that converges on the registry's state.

The contract: a follower that asks for "the changes after N" again and again never misses a
change, because change numbers become visible in the order they were handed out.
"""

from __future__ import annotations

import random
import secrets
import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import registry
from meldpunt.registry.changes import ChangeRow, append_changes
from meldpunt.store.models import RegistryChange

WRITERS = 4
TRANSACTIONS = 12


def _writers(engine, set_id: int, write) -> list[threading.Thread]:
    def run(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(TRANSACTIONS):
            with Session(engine) as session:
                write(session, set_id)
                # Hold the transaction open a little after the change numbers were handed out,
                # so that without serialisation a later number would often commit first.
                time.sleep(rnd.uniform(0, 0.02))
                session.commit()

    return [threading.Thread(target=run, args=(seed,)) for seed in range(WRITERS)]


def _follow(engine, threads: list[threading.Thread]) -> tuple[list[int], list[int]]:
    """Poll changes_since while the writers run; returns (seen in order, all at the end)."""
    seen: list[int] = []
    last = 0
    with Session(engine) as reader:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            for change in registry.changes_since(reader, last):
                seen.append(change.seq)
                last = change.seq
            reader.rollback()  # a fresh snapshot for the next poll
            time.sleep(0.001)
        for thread in threads:
            thread.join()
        for change in registry.changes_since(reader, last):
            seen.append(change.seq)
            last = change.seq
        every = list(reader.scalars(select(RegistryChange.seq).order_by(RegistryChange.seq)))
    return seen, every


def _add_item(session: Session, set_id: int) -> None:
    registry.add_item(
        session, set_id, [("md5", secrets.token_hex(16)), ("pdq", secrets.token_hex(32))]
    )


def test_a_polling_reader_never_sees_a_gap_filled_later(engine):
    with Session(engine) as session:
        police = registry.create_set(session, "police")
        session.commit()
    seen, every = _follow(engine, _writers(engine, police.id, _add_item))
    assert len(every) == 1 + WRITERS * TRANSACTIONS * 2
    # Every change was seen, in increasing order: none arrived behind the reader's back.
    assert seen == every


def _unlocked_append(session: Session, set_id: int) -> None:
    row = ChangeRow(set_id, 1, "add", "md5", secrets.token_hex(16), "csam", "added")
    append_changes(session, [row])


@pytest.mark.postgres
def test_the_reader_test_does_catch_unserialised_writers(engine):
    """The control: the same writers without the registry lock lose changes for the reader."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers by itself")
    with Session(engine) as session:
        police = registry.create_set(session, "police")
        session.commit()
    seen, every = _follow(engine, _writers(engine, police.id, _unlocked_append))
    assert set(seen) < set(every)  # some committed behind a higher number the reader had seen


class Follower:
    """What an index in another process keeps: active (set, type, value) -> (item, category)."""

    def __init__(self, session: Session) -> None:
        self.seq = registry.current_seq(session)  # the number first, then the state
        self.state = {
            (s.set_id, s.signal_type, s.value): (s.item_id, s.category)
            for s in registry.active_signals(session)
        }

    def catch_up(self, session: Session) -> None:
        while changes := registry.changes_since(session, self.seq, limit=7):
            for change in changes:
                self.seq = change.seq
                if change.is_set_change:
                    continue
                key = (change.set_id, change.signal_type, change.value)
                # An update of a signal the follower does not hold is a no-op.
                if change.action == "add" or (change.action == "update" and key in self.state):
                    self.state[key] = (change.item_id, change.category)
                elif change.action == "remove":
                    self.state.pop(key, None)


def test_a_follower_converges_on_the_registry(session):
    police = registry.create_set(session, "police", default_category="A1")
    allow = registry.create_set(session, "stock", kind="allowlist")
    items = [
        registry.add_item(session, police, [("md5", secrets.token_hex(16))]).item for _ in range(6)
    ]
    session.commit()
    follower = Follower(session)
    rnd = random.Random(7)
    for step in range(60):
        item = rnd.choice(items)
        action = rnd.choice(["add", "category", "disable", "enable", "withdraw", "new"])
        try:
            if action == "category":
                registry.add_item(session, police, [item.signals[0]], category=rnd.choice("ABC"))
            elif action == "disable":
                registry.disable_item(session, item.id)
            elif action == "enable":
                registry.enable_item(session, item.id)
            elif action == "withdraw":
                registry.withdraw_item(session, item.id, reason="taken back by the source")
            elif action == "add":
                registry.add_item(
                    session, police, [item.signals[0], ("pdq", secrets.token_hex(32))]
                )
            else:
                fresh = registry.add_item(session, allow, [("md5", secrets.token_hex(16))]).item
                items.append(fresh)
        except registry.NotFound:
            pass
        if step % 9 == 0 and len(items) > 3:
            registry.delete_item(session, items.pop(0).id)
        session.commit()
        if step % 5 == 0:
            follower.catch_up(session)
    follower.catch_up(session)
    truth = {
        (s.set_id, s.signal_type, s.value): (s.item_id, s.category)
        for s in registry.active_signals(session)
    }
    assert follower.state == truth
    assert follower.seq == registry.current_seq(session)
