import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from meldpunt import clock
from meldpunt.clock import Clock, ControllableClock, FrozenClock, SystemClock, as_utc, use_clock

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_system_clock_gives_aware_utc_and_a_monotonic_counter():
    system = SystemClock()
    moment = system.now()
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
    first = system.monotonic()
    assert system.monotonic() >= first


def test_the_default_clock_is_the_system_clock():
    assert isinstance(clock.get_clock(), SystemClock)
    assert isinstance(clock.get_clock(), Clock)


def test_frozen_clock_stands_still_until_moved():
    frozen = FrozenClock(START)
    assert frozen.now() == START
    assert frozen.now() == START
    assert frozen.advance(timedelta(hours=25)) == START + timedelta(hours=25)
    frozen.sleep(30)
    assert frozen.now() == START + timedelta(hours=25, seconds=30)
    assert frozen.monotonic() == pytest.approx(25 * 3600 + 30)


def test_frozen_clock_set_moves_wall_time_but_monotonic_never_goes_back():
    frozen = FrozenClock(START)
    frozen.set(START + timedelta(minutes=10))
    assert frozen.monotonic() == pytest.approx(600)
    frozen.set(START - timedelta(days=1))
    assert frozen.now() == START - timedelta(days=1)
    assert frozen.monotonic() == pytest.approx(600)


def test_frozen_clock_converts_other_zones_to_utc():
    amsterdam_summer = timezone(timedelta(hours=2))
    frozen = FrozenClock(datetime(2025, 7, 1, 14, 0, tzinfo=amsterdam_summer))
    assert frozen.now() == datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
    assert frozen.now().utcoffset() == timedelta(0)


def test_frozen_clock_refuses_naive_times_and_going_back_by_advance():
    with pytest.raises(ValueError, match="naive"):
        FrozenClock(datetime(2025, 1, 1))
    frozen = FrozenClock(START)
    with pytest.raises(ValueError, match="naive"):
        frozen.set(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        frozen.advance(timedelta(seconds=-1))


def test_use_clock_replaces_the_clock_for_every_thread_and_restores_it():
    frozen = ControllableClock(START)
    seen: list[datetime] = []
    with use_clock(frozen):
        assert clock.now() == START
        worker = threading.Thread(target=lambda: seen.append(clock.now()))
        worker.start()
        worker.join()
    assert seen == [START]
    assert isinstance(clock.get_clock(), SystemClock)


def test_use_clock_restores_the_previous_clock_after_an_error():
    with pytest.raises(RuntimeError), use_clock(FrozenClock(START)):
        raise RuntimeError("boom")
    assert isinstance(clock.get_clock(), SystemClock)


def test_as_utc_treats_naive_as_utc():
    assert as_utc(datetime(2025, 1, 1, 8)) == datetime(2025, 1, 1, 8, tzinfo=UTC)
    plus_one = timezone(timedelta(hours=1))
    assert as_utc(datetime(2025, 1, 1, 8, tzinfo=plus_one)).hour == 7


def test_monotonic_follows_the_current_clock_and_perf_does_not():
    frozen = FrozenClock(START)
    with use_clock(frozen):
        before, perf_before = clock.monotonic(), clock.perf()
        frozen.advance(timedelta(hours=1))
        assert clock.monotonic() - before == 3600.0
        # perf() is the machine's counter, for latency figures: an hour of test time is not in it
        assert clock.perf() - perf_before < 3600.0


def test_scaled_clock_runs_faster_than_real_time_from_its_start():
    from meldpunt.clock import ScaledClock

    scaled = ScaledClock(3600.0, START)  # an hour a second
    first, mono = scaled.now(), scaled.monotonic()
    assert first >= START and first - START < timedelta(hours=3)  # a busy machine's pause
    scaled.sleep(1800)  # half an hour of its time: half a second of ours
    later = scaled.now()
    assert timedelta(minutes=29) < later - first < timedelta(hours=6)
    assert 29 * 60 < scaled.monotonic() - mono < 6 * 3600
    assert later.tzinfo is not None and later.utcoffset() == timedelta(0)
    assert isinstance(scaled, Clock)


def test_scaled_clock_starts_now_by_default_and_can_keep_monotonic_real():
    from meldpunt.clock import ScaledClock

    before = SystemClock().now()
    scaled = ScaledClock(1000.0, scale_monotonic=False)
    assert scaled.now() - before < timedelta(seconds=30)
    mono = scaled.monotonic()
    real = SystemClock().monotonic()
    assert abs(mono - real) < 1.0  # the machine's counter, not a scaled one
    with use_clock(scaled):
        assert clock.now() >= before


@pytest.mark.parametrize("speed", [0, -1, float("inf"), float("nan")])
def test_scaled_clock_refuses_a_speed_that_is_no_positive_number(speed):
    from meldpunt.clock import ScaledClock

    with pytest.raises(ValueError, match="speed"):
        ScaledClock(speed)
