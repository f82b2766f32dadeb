"""The probing detector: keys whose checks look like someone recovering list hashes.

Every answer leaks a little. With distances, one request of 257 items (a near copy of a listed
picture and its 256 one-bit changes) spells out the listed PDQ hash: a bit whose change brings
the distance down is a bit where the entry differs. Without distances the same works from the
edge of the threshold, where "match" turns into "no match", and the same answers let someone
tune a picture until it just escapes. Both need many checks that matched and lie close to one
another, or many matches of one entry at the edge of its threshold; a platform's normal traffic
has neither (unrelated pictures are about 128 bits apart, and a picture checked again gives the
same hash, which is not counted twice).

``ProbeDetector`` watches, per key, in bounded memory, only the PDQ checks that matched (clean
traffic costs nothing):

* ``close_queries``: a matched hash with ``min_close`` or more other distinct matched hashes of
  the key within ``close_bits`` of it, inside ``window``;
* ``near_threshold``: ``min_edge`` distinct hashes matching one entry within ``edge_bits`` of
  its set's threshold, inside ``window``.

Either throttles the key to ``throttled_per_minute`` requests for ``throttle`` (``admit`` says
how long to wait) and gives a ``Suspicion``, which ``record_alert`` writes as a probing alert and
an audit event, attributable to the organisation and key, for the hotline to see
(``list_alerts``). The state is per process; alerts are rows, and ``active_throttles`` lets a
restarted service throttle again whoever was throttled.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.store.models import Organisation, ProbingAlert

__all__ = [
    "AlertInfo",
    "Observation",
    "ProbeDetector",
    "ProbingPolicy",
    "Suspicion",
    "active_throttles",
    "list_alerts",
    "record_alert",
]


@dataclass(frozen=True)
class ProbingPolicy:
    window: timedelta = timedelta(hours=1)
    #: Matched hashes remembered per key (the oldest go first).
    ring: int = 512
    close_bits: int = 8
    min_close: int = 24
    edge_bits: int = 2
    min_edge: int = 16
    throttle: timedelta = timedelta(hours=1)
    throttled_per_minute: float = 6.0
    #: Keys watched at once; the least recently active are forgotten first.
    max_keys: int = 10_000


@dataclass(frozen=True)
class Observation:
    """One PDQ check that matched: the checked hash and the entry it matched."""

    pdq: str
    set_id: int
    entry: int
    distance: int
    threshold: int


@dataclass(frozen=True)
class Suspicion:
    key_id: int
    org_id: int
    reason: str  # 'close_queries' | 'near_threshold'
    at: datetime
    throttled_until: datetime
    #: What was seen (counts and distances: never a listed hash).
    details: dict[str, object]


@dataclass
class _KeyState:
    hashes: deque[tuple[int, float]] = field(default_factory=deque)  # (hash, monotonic time)
    edges: OrderedDict[tuple[int, int], dict[int, float]] = field(default_factory=OrderedDict)


@dataclass
class _Throttle:
    until: float  # monotonic
    tokens: float
    at: float


class ProbeDetector:
    """Thread-safe; ``admit`` is on every check's path and costs a dictionary lookup."""

    def __init__(self, policy: ProbingPolicy | None = None) -> None:
        self.policy = policy or ProbingPolicy()
        self._keys: OrderedDict[int, _KeyState] = OrderedDict()
        self._throttled: dict[int, _Throttle] = {}
        self._lock = threading.Lock()

    # -- throttling -------------------------------------------------------------------------

    def admit(self, key_id: int) -> float | None:
        """None when the key may check now; else the seconds until it may."""
        if key_id not in self._throttled:
            return None
        rate = self.policy.throttled_per_minute / 60
        now = clock.get_clock().monotonic()
        with self._lock:
            throttle = self._throttled.get(key_id)
            if throttle is None:
                return None
            if now >= throttle.until:
                del self._throttled[key_id]
                return None
            throttle.tokens = min(1.0, throttle.tokens + (now - throttle.at) * rate)
            throttle.at = now
            if throttle.tokens >= 1:
                throttle.tokens -= 1
                return None
            return (1 - throttle.tokens) / rate if rate > 0 else throttle.until - now

    def throttle(self, key_id: int, until: datetime) -> None:
        """Throttle the key until then (a restarted service, from ``active_throttles``)."""
        left = (until - clock.now()).total_seconds()
        if left <= 0:
            return
        now = clock.get_clock().monotonic()
        with self._lock:
            self._throttled[key_id] = _Throttle(until=now + left, tokens=0.0, at=now)
            self._keys.pop(key_id, None)  # start afresh when the throttle ends

    def is_throttled(self, key_id: int) -> bool:
        throttle = self._throttled.get(key_id)
        return throttle is not None and clock.get_clock().monotonic() < throttle.until

    # -- watching ---------------------------------------------------------------------------

    def observe(
        self, key_id: int, org_id: int, observations: Sequence[Observation]
    ) -> Suspicion | None:
        """Take note of a check's matched PDQ hashes; a Suspicion when they cross a line (the
        key is throttled from then on), else None. A throttled key is not watched."""
        if not observations or self.is_throttled(key_id):
            return None
        policy = self.policy
        now = clock.get_clock().monotonic()
        oldest = now - policy.window.total_seconds()
        found: tuple[str, dict[str, object]] | None = None
        with self._lock:
            state = self._state(key_id)
            while state.hashes and state.hashes[0][1] < oldest:
                state.hashes.popleft()
            for seen in observations:
                value = int(seen.pdq, 16)
                found = found or self._close(state, value, now, oldest)
                found = found or self._edge(state, seen, value, now, oldest)
        if found is None:
            return None
        reason, details = found
        at = clock.now()
        until = at + policy.throttle
        self.throttle(key_id, until)
        return Suspicion(key_id, org_id, reason, at, until, details)

    def _state(self, key_id: int) -> _KeyState:
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _KeyState()
            while len(self._keys) > self.policy.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key_id)
        return state

    def _close(
        self, state: _KeyState, value: int, now: float, oldest: float
    ) -> tuple[str, dict[str, object]] | None:
        policy = self.policy
        close = 0
        repeat = False
        for other, _ in state.hashes:
            bits = (other ^ value).bit_count()
            if bits == 0:
                repeat = True  # the same picture again: remembered once, never counted
            elif bits <= policy.close_bits:
                close += 1
        if not repeat:
            state.hashes.append((value, now))
            if len(state.hashes) > policy.ring:
                state.hashes.popleft()
        if close < policy.min_close:
            return None
        return "close_queries", {
            "close_matches": close,
            "within_bits": policy.close_bits,
            "window_seconds": policy.window.total_seconds(),
            "remembered": len(state.hashes),
        }

    def _edge(
        self, state: _KeyState, seen: Observation, value: int, now: float, oldest: float
    ) -> tuple[str, dict[str, object]] | None:
        policy = self.policy
        if seen.threshold - seen.distance > policy.edge_bits:
            return None
        entry = (seen.set_id, seen.entry)
        values = state.edges.get(entry)
        if values is None:
            values = state.edges[entry] = {}
            while len(state.edges) > 64:
                state.edges.popitem(last=False)
        values[value] = now
        for old in [v for v, t in values.items() if t < oldest]:
            del values[old]
        if len(values) > 4 * policy.min_edge:  # bounded: keep the newest
            for old in sorted(values, key=values.__getitem__)[: len(values) - 4 * policy.min_edge]:
                del values[old]
        if len(values) < policy.min_edge:
            return None
        return "near_threshold", {
            "set_id": seen.set_id,
            "entry_matches_at_edge": len(values),
            "within_bits_of_threshold": policy.edge_bits,
            "window_seconds": policy.window.total_seconds(),
        }


# --- alerts in the database ------------------------------------------------------------------


@dataclass(frozen=True)
class AlertInfo:
    id: int
    at: datetime
    org_id: int
    org_name: str
    key_id: int
    reason: str
    details: dict[str, object]
    throttled_until: datetime


def record_alert(session: Session, suspicion: Suspicion) -> int:
    """Write the alert and its audit event (flushed, not committed); returns the alert's id."""
    row = ProbingAlert(
        at=suspicion.at,
        org_id=suspicion.org_id,
        key_id=suspicion.key_id,
        reason=suspicion.reason,
        details=json.dumps(suspicion.details, sort_keys=True),
        throttled_until=suspicion.throttled_until,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor="probing-detector",
        action="checks.probing.detected",
        subject=("api_key", suspicion.key_id),
        details={
            "alert_id": row.id,
            "org_id": suspicion.org_id,
            "reason": suspicion.reason,
            "throttled_until": suspicion.throttled_until.isoformat(),
            **suspicion.details,
        },
    )
    return row.id


def list_alerts(
    session: Session, org_id: int | None = None, *, limit: int = 100
) -> list[AlertInfo]:
    """Probing alerts, newest first (``org_id``: of one organisation)."""
    query = (
        select(ProbingAlert, Organisation.name)
        .join(Organisation, Organisation.id == ProbingAlert.org_id)
        .order_by(ProbingAlert.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    if org_id is not None:
        query = query.where(ProbingAlert.org_id == org_id)
    return [
        AlertInfo(
            id=row.id,
            at=row.at,
            org_id=row.org_id,
            org_name=name,
            key_id=row.key_id,
            reason=row.reason,
            details=json.loads(row.details),
            throttled_until=row.throttled_until,
        )
        for row, name in session.execute(query)
    ]


def active_throttles(session: Session) -> Iterable[tuple[int, datetime]]:
    """(key id, until) of every key still throttled now."""
    query = select(ProbingAlert.key_id, ProbingAlert.throttled_until).where(
        ProbingAlert.throttled_until > clock.now()
    )
    return [(int(key_id), until) for key_id, until in session.execute(query)]
