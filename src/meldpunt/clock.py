"""The only source of time.

Nothing else in meldpunt calls ``datetime.now()``, ``time.time()``, ``time.monotonic()`` or
``time.sleep()``. Everything asks the current clock instead, so that a test can freeze time or run a
whole day of deadlines and re-checks in milliseconds::

    clock = FrozenClock(datetime(2025, 1, 1, tzinfo=UTC))
    with use_clock(clock):
        ...
        clock.advance(timedelta(hours=24))

Wall time (``now()``) is always timezone-aware UTC. ``monotonic()`` is for measuring durations and
never goes backwards. Both follow the current clock, so a test moves them.

``perf()`` is the one exception: the machine's own counter, which no test clock moves. It is for
what only real time can answer: how long a request really took (latency figures), and how long a
thread waits on a queue, which a test clock could not shorten anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = [
    "Clock",
    "ControllableClock",
    "FrozenClock",
    "ScaledClock",
    "SystemClock",
    "as_utc",
    "get_clock",
    "monotonic",
    "now",
    "perf",
    "set_clock",
    "use_clock",
]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current wall time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences mean anything."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; a test clock just moves forward instead."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already (as SQLite returns it)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class FrozenClock:
    """A clock that only moves when told to: ``set()``, ``advance()`` or ``sleep()``.

    ``monotonic()`` moves forward with every forward step of the wall time and stays put when
    ``set()`` moves the wall time backwards, as a real monotonic clock would. Thread-safe, so a
    worker thread and the test driving it can share one.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2025, 1, 1, tzinfo=UTC)
        self._now = _require_aware(start)
        self._monotonic = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def set(self, moment: datetime) -> None:
        moment = _require_aware(moment)
        with self._lock:
            step = (moment - self._now).total_seconds()
            self._now = moment
            self._monotonic += max(step, 0.0)

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds) and return the new time."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError(f"a clock cannot advance by a negative amount ({seconds} s)")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._monotonic += seconds
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def __repr__(self) -> str:
        return f"FrozenClock({self._now.isoformat()})"


#: The same class under the name that says what tests do with it.
ControllableClock = FrozenClock


class ScaledClock:
    """Real time, faster: ``speed`` simulated seconds pass for every real second, from ``start``
    (default: the real time now). ``meldpunt demo`` runs the service and the simulation on one,
    so that a day of notices, re-checks and re-notices passes in minutes.

    ``monotonic()`` runs at the same speed, so durations measured by it are simulated durations
    too; ``scale_monotonic=False`` keeps it real (what people wait on, such as a signed-in page's
    idle time, then lasts as long as it says). ``sleep(s)`` waits ``s / speed`` real seconds.
    Real elapsed time is read from the machine's monotonic counter, so changing the system's
    wall clock does not make it jump.
    """

    def __init__(
        self, speed: float, start: datetime | None = None, *, scale_monotonic: bool = True
    ) -> None:
        if not speed > 0 or speed == float("inf"):
            raise ValueError(f"a clock's speed must be a positive number, got {speed!r}")
        self.speed = float(speed)
        self.scale_monotonic = scale_monotonic
        self._base = time.monotonic()
        self._start = datetime.now(UTC) if start is None else _require_aware(start)

    @classmethod
    def from_origin(
        cls, speed: float, origin: datetime, *, scale_monotonic: bool = True
    ) -> ScaledClock:
        """The clock that read ``origin`` at the real moment ``origin`` and has run ``speed``
        times faster since: every process made with the same two values shows the same time
        (within the machines' wall clocks), so that several workers share one fast clock."""
        origin = _require_aware(origin)
        behind = datetime.now(UTC) - origin
        return cls(speed, origin + behind * speed, scale_monotonic=scale_monotonic)

    @property
    def start(self) -> datetime:
        return self._start

    def _elapsed(self) -> float:
        return time.monotonic() - self._base

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed() * self.speed)

    def monotonic(self) -> float:
        if self.scale_monotonic:
            return self._elapsed() * self.speed
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self.speed:g}, start={self._start.isoformat()})"


def _require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a clock needs a timezone-aware datetime, got naive {moment!r}")
    return moment.astimezone(UTC)


_current: Clock = SystemClock()


def get_clock() -> Clock:
    return _current


def set_clock(clock: Clock) -> Clock:
    """Make ``clock`` the current clock for every thread; returns the one it replaces."""
    global _current
    previous, _current = _current, clock
    return previous


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Use ``clock`` inside the ``with`` block, then put the previous clock back."""
    previous = set_clock(clock)
    try:
        yield clock
    finally:
        set_clock(previous)


def now() -> datetime:
    """Shorthand for ``get_clock().now()``."""
    return _current.now()


def monotonic() -> float:
    """Shorthand for ``get_clock().monotonic()``: only differences of it mean anything."""
    return _current.monotonic()


def perf() -> float:
    """Seconds on the machine's high-resolution counter, which no test clock controls.

    For latency figures and for the deadlines of real thread waits only; everything a test should
    be able to move (expiry, rate limits, due times) uses ``now()`` or ``monotonic()``.
    """
    return time.perf_counter()
