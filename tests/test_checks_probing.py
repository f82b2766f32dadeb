"""The probing detector on its own: what it flags, what it forgets, how long it throttles, and its
alerts in the database (SQLite and PostgreSQL). Time is a frozen clock."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from meldpunt import audit, checks
from meldpunt.checks.probing import (
    Observation,
    ProbeDetector,
    ProbingPolicy,
    active_throttles,
    list_alerts,
    record_alert,
)
from meldpunt.clock import FrozenClock, use_clock

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LISTED = secrets.token_hex(32)


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


def flip(value: str, bits: list[int]) -> str:
    number = int(value, 16)
    for bit in bits:
        number ^= 1 << bit
    return f"{number:064x}"


def seen(pdq: str, distance: int = 10, entry: int = 1, threshold: int = 31) -> Observation:
    return Observation(pdq, set_id=1, entry=entry, distance=distance, threshold=threshold)


def test_one_bit_changes_of_a_matching_hash_are_flagged(clock):
    detector = ProbeDetector(ProbingPolicy(min_close=24))
    near = flip(LISTED, [1, 2, 3])
    found = [detector.observe(7, 3, [seen(flip(near, [bit]))]) for bit in range(30)]
    suspicion = next(s for s in found if s is not None)
    assert found.index(suspicion) == 24  # the 25th has 24 close neighbours
    assert suspicion.reason == "close_queries" and suspicion.key_id == 7 and suspicion.org_id == 3
    assert suspicion.throttled_until == T0 + timedelta(hours=1)
    assert detector.is_throttled(7) and not detector.is_throttled(8)


def test_many_matches_of_one_entry_at_the_edge_of_its_threshold_are_flagged(clock):
    detector = ProbeDetector(ProbingPolicy(min_edge=16, min_close=1000))
    # far apart from one another (a walk around the threshold's sphere), all at 30 or 31 of 31
    walk = [seen(secrets.token_hex(32), distance=30 + i % 2) for i in range(16)]
    assert all(detector.observe(1, 1, [w]) is None for w in walk[:15])
    suspicion = detector.observe(1, 1, [walk[15]])
    assert suspicion is not None and suspicion.reason == "near_threshold"
    assert suspicion.details["entry_matches_at_edge"] == 16


def test_repeats_unrelated_matches_and_slow_probing_are_not_flagged(clock):
    detector = ProbeDetector(ProbingPolicy(min_close=24, min_edge=16, window=timedelta(hours=1)))
    for _ in range(100):  # the same picture, again and again
        assert detector.observe(1, 1, [seen(LISTED, distance=31)]) is None
    for entry in range(200):  # many different listed pictures, some at the edge
        assert detector.observe(1, 1, [seen(secrets.token_hex(32), 31, entry)]) is None
    near = flip(LISTED, [9])
    for bit in range(40):  # one close variant every five minutes: each window holds twelve
        assert detector.observe(2, 1, [seen(flip(near, [bit]))]) is None
        clock.advance(timedelta(minutes=5))


def test_memory_is_bounded_per_key_and_in_keys(clock):
    detector = ProbeDetector(ProbingPolicy(ring=64, max_keys=10, min_close=10**6))
    for key in range(50):
        for _ in range(100):
            detector.observe(key, 1, [seen(secrets.token_hex(32))])
    assert len(detector._keys) == 10
    assert all(len(state.hashes) <= 64 for state in detector._keys.values())


def test_a_throttled_key_gets_a_slow_rate_until_the_throttle_ends(clock):
    detector = ProbeDetector(ProbingPolicy(throttled_per_minute=6, throttle=timedelta(minutes=30)))
    detector.throttle(5, T0 + timedelta(minutes=30))
    wait = detector.admit(5)
    assert wait is not None and 9 <= wait <= 10  # one request every ten seconds
    assert detector.admit(6) is None  # others are not concerned
    clock.advance(10)
    assert detector.admit(5) is None and detector.admit(5) is not None
    clock.advance(timedelta(minutes=30))
    assert all(detector.admit(5) is None for _ in range(100))
    detector.throttle(5, T0)  # a throttle that has ended already changes nothing
    assert detector.admit(5) is None


def test_alerts_are_recorded_audited_and_throttles_survive_a_restart(session, clock):
    org = checks.create_org(session, "platform-a", "platform")
    key, _ = checks.create_key(session, org.id, "platform")
    detector = ProbeDetector(ProbingPolicy(min_close=3))
    near = flip(LISTED, [0])
    suspicion = None
    for bit in range(1, 10):
        suspicion = suspicion or detector.observe(key.id, org.id, [seen(flip(near, [bit]))])
    assert suspicion is not None
    alert_id = record_alert(session, suspicion)
    session.commit()
    (alert,) = list_alerts(session)
    assert (alert.id, alert.org_name, alert.key_id) == (alert_id, "platform-a", key.id)
    assert alert.details["close_matches"] == 3 and LISTED not in str(alert.details)
    assert audit.verify(session).ok

    restarted = ProbeDetector()
    for key_id, until in active_throttles(session):
        restarted.throttle(key_id, until)
    assert restarted.is_throttled(key.id)
    clock.advance(timedelta(hours=1, seconds=1))
    assert list(active_throttles(session)) == []
