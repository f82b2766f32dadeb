"""Re-checks of hits' public URLs: is the content still online?

A hit with a ``public_url`` gets ``recheck_status = 'pending'`` and a ``recheck_due_at``
(``hit_recheck_after_hours`` after the hit). The worker claims due hits (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so several workers never take the same hit), fetches each URL through
the safe fetcher and records what it found:

========================================  ===========  =====================================
answer                                    status       next re-check
========================================  ===========  =====================================
404 or 410, or the name no longer resolves  ``gone``     none: done
2xx                                       ``online``   ``hit_recheck_after_hours`` later
other status, network failure             ``error``    ``hit_recheck_after_hours`` later
refused (inside the network, bad scheme)  ``error``    none: trying again will not help
========================================  ===========  =====================================

Claiming moves the hit's ``recheck_due_at`` on by ``CLAIM_LEASE`` and commits at once; the
fetches run outside any transaction (a slow host never holds a lock, which on SQLite would stop
every writer), and each result is recorded in a short transaction of its own. A worker that dies
mid-way leaves its hits due again when the lease ends, so a restart loses nothing.

A hit is checked at most ``MAX_RECHECKS`` times (counted from its own time: after
``MAX_RECHECKS`` intervals it is no longer scheduled), so a URL that stays online does not keep
the worker busy for ever; its last status stays. Only the hit's own URL is ever fetched.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, sessionmaker

from meldpunt import audit, clock
from meldpunt.checks._db import begin_write
from meldpunt.checks.errors import InvalidInput
from meldpunt.checks.hits import HitInfo, _info, _load_own_hit, _overdue_cutoff
from meldpunt.checks.timing import recheck_after
from meldpunt.checks.vocabulary import RECHECK_STATUSES
from meldpunt.reports.fetcher import (
    FetchError,
    FetchPolicy,
    FetchRefused,
    FetchUnresolvable,
    fetch,
)
from meldpunt.store.models import Hit

__all__ = ["MAX_RECHECKS", "due_rechecks", "record_recheck", "run_rechecks"]

log = logging.getLogger(__name__)

#: A hit is re-checked at most this many intervals after it was made.
MAX_RECHECKS = 30
#: How long a claimed hit is left to its worker before another may claim it.
CLAIM_LEASE = timedelta(minutes=15)
_SCHEDULED = ("pending", "online", "error")


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Hit.recheck_status.in_(_SCHEDULED),
        Hit.recheck_due_at.is_not(None),
        Hit.recheck_due_at <= now,
        Hit.public_url.is_not(None),
    )


def due_rechecks(session: Session, now: datetime | None = None, limit: int = 50) -> list[HitInfo]:
    """Claim up to ``limit`` hits whose re-check is due at ``now`` (default: the clock's time),
    oldest due first, by moving their due time ``CLAIM_LEASE`` on (flushed; commit to hand
    them to this worker). PostgreSQL: rows another claimer holds are skipped; SQLite: the write
    lock is taken first, so claimers take turns."""
    if limit < 1:
        raise InvalidInput(f"limit must be 1 or more, not {limit}")
    now = now or clock.now()
    begin_write(session)
    query = select(Hit).where(*_due(now)).order_by(Hit.recheck_due_at, Hit.id).limit(limit)
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    cutoff = _overdue_cutoff(now)
    rows = session.scalars(query.execution_options(populate_existing=True)).all()
    claimed = [_info(row, cutoff) for row in rows]  # as they were: due, before the lease
    for row in rows:
        row.recheck_due_at = now + CLAIM_LEASE
    session.flush()
    return claimed


def record_recheck(
    session: Session,
    hit_id: int,
    status: str,
    *,
    detail: str | None = None,
    actor: str,
    retry: bool = True,
) -> HitInfo:
    """Record a re-check's result (flushed, not committed) and schedule the next one: none for
    ``gone`` or when ``retry`` is false, else ``hit_recheck_after_hours`` later while the hit
    is younger than ``MAX_RECHECKS`` intervals. Audited."""
    if status not in RECHECK_STATUSES or status == "pending":
        known = ", ".join(s for s in RECHECK_STATUSES if s != "pending")
        raise InvalidInput(f"a re-check's status must be one of {known}, not {status!r}")
    begin_write(session)
    row = _load_own_hit(session, None, hit_id, lock=True, public=True)
    now = clock.now()
    interval = recheck_after()
    scheduled = now + interval
    last = row.at + interval * MAX_RECHECKS
    next_due = None if status == "gone" or not retry or scheduled > last else scheduled
    previous = row.recheck_status
    row.recheck_status = status
    row.rechecked_at = now
    row.recheck_due_at = next_due
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="checks.hit.rechecked",
        subject=("hit", row.id),
        details={
            "public_id": row.public_id,
            "org_id": row.org_id,
            "status": status,
            "previous": previous,
            "detail": None if detail is None else detail[:500],
            "next_due_at": None if next_due is None else next_due.isoformat(),
        },
    )
    return _info(row, _overdue_cutoff(now))


def _judge(url: str, policy: FetchPolicy) -> tuple[str, str, bool]:
    """(status, detail, retry) for one URL."""
    try:
        result = fetch(url, policy)
    except FetchRefused as exc:
        return "error", str(exc), False
    except FetchUnresolvable as exc:
        return "gone", str(exc), False
    except FetchError as exc:
        return "error", str(exc), True
    detail = f"HTTP {result.status} from {result.final_url}"
    if result.status in (404, 410):
        return "gone", detail, False
    if 200 <= result.status < 300:
        return "online", f"{detail}, sha256 {result.sha256} of {result.size} bytes", True
    return "error", detail, True


def run_rechecks(sessions: sessionmaker[Session], policy: FetchPolicy, *, limit: int = 50) -> int:
    """Claim the due re-checks, fetch each hit's public URL (and nothing else) and record the
    result; returns how many were recorded."""
    now = clock.now()
    with sessions() as session:
        # Most polls find nothing: a plain read first, so that an idle worker never takes
        # SQLite's write lock (the check service's hit writer would have to wait for it).
        if session.scalar(select(Hit.id).where(*_due(now)).limit(1)) is None:
            return 0
    with sessions() as session, session.begin():
        due = due_rechecks(session, now, limit)
    done = 0
    for hit in due:
        assert hit.public_url is not None  # claimed only with one
        status, detail, retry = _judge(hit.public_url, policy)
        with sessions() as session, session.begin():
            record_recheck(session, hit.id, status, detail=detail, actor="worker", retry=retry)
        done += 1
    if done:
        log.info("re-checked %d hit(s)", done)
    return done
