"""Hits and their follow-up: what a platform's checks found, and what it did about it.

Every blocklist match of a check is a hit. The platform then records an outcome (the vocabulary
is ``OUTCOMES``); a hit without one after ``hit_outcome_due_hours`` is overdue. Where the platform
gave a public URL, the hit gets a re-check due ``hit_recheck_after_hours`` later (a worker
re-fetches the URL and records whether it is gone).

``record_check`` counts requests and items per organisation and day: one upsert, safe under
concurrent requests, and not audited (it is a counter, written on every request). Hits and
outcomes are audited in the caller's transaction.

A hit has two ids: its row id (``row_id``, a sequence, kept inside meldpunt: audit events,
reviews, paging) and its public id (``id``), a random number below 2**53 that platforms see in
answers, ``GET /v1/hits/{id}``, outcomes and HMA's ``bank_content_id``. A sequence handed to a
platform would tell it how many hits every other platform had between two of its own checks.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.checks._db import begin_write
from meldpunt.checks.errors import InvalidInput, NotFound
from meldpunt.checks.integrity import hit_fields
from meldpunt.checks.reviews import ReviewInfo, open_review, resolve_review, review_queue
from meldpunt.checks.stats import OrgStats, org_stats
from meldpunt.checks.timing import outcome_due, recheck_after
from meldpunt.checks.vocabulary import OUTCOMES, RECHECK_STATUSES
from meldpunt.store.models import CheckCount, Hit
from meldpunt.text import TextError, check_text

if TYPE_CHECKING:  # the matcher pulls in numpy and the C index; recording hits needs neither
    from meldpunt.registry.matching import Match

__all__ = [
    "OUTCOMES",
    "RECHECK_STATUSES",
    "HitInfo",
    "NewHit",
    "OrgStats",
    "ReviewInfo",
    "check_public_url",
    "get_hit",
    "list_hits",
    "org_stats",
    "overdue_hits",
    "record_check",
    "record_hits",
    "record_outcome",
    "resolve_review",
    "review_queue",
]

MAX_PLATFORM_REF = 500
MAX_URL = 2048
MAX_REPORT_ID = 200
MAX_REASON = 2000
MAX_LIST = 1000


@dataclass(frozen=True)
class NewHit:
    """One match to record: the signal that matched and the entry it matched."""

    signal_type: str
    signal_value: str
    distance: int
    set_id: int
    item_id: int
    category: str
    platform_ref: str | None = None
    public_url: str | None = None

    @classmethod
    def from_match(
        cls,
        match: Match,
        signal_value: str,
        *,
        platform_ref: str | None = None,
        public_url: str | None = None,
    ) -> NewHit:
        """From a matcher's ``Match`` and the checked value of its signal type."""
        return cls(
            signal_type=match.signal_type,
            signal_value=signal_value,
            distance=match.distance,
            set_id=match.set_id,
            item_id=match.entry,
            category=match.category,
            platform_ref=platform_ref,
            public_url=public_url,
        )


@dataclass(frozen=True)
class HitInfo:
    #: The public id: what the platform is told and names the hit by.
    id: int
    #: The row id, for meldpunt's own use (paging, audit events); never shown to platforms.
    row_id: int
    org_id: int
    at: datetime
    signal_type: str
    signal_value: str
    distance: int
    set_id: int
    item_id: int
    category: str
    platform_ref: str | None
    public_url: str | None
    outcome: str | None
    outcome_at: datetime | None
    outcome_reason: str | None
    report_id: str | None
    recheck_due_at: datetime | None
    recheck_status: str | None  # 'pending' | 'gone' | 'online' | 'error'
    rechecked_at: datetime | None
    #: No outcome yet, and older than ``hit_outcome_due_hours``.
    overdue: bool


def _info(row: Hit, cutoff: datetime) -> HitInfo:
    return HitInfo(
        id=row.public_id,
        row_id=row.id,
        org_id=row.org_id,
        at=row.at,
        signal_type=row.signal_type,
        signal_value=row.signal_value,
        distance=row.distance,
        set_id=row.set_id,
        item_id=row.item_id,
        category=row.category,
        platform_ref=row.platform_ref,
        public_url=row.public_url,
        outcome=row.outcome,
        outcome_at=row.outcome_at,
        outcome_reason=row.outcome_reason,
        report_id=row.report_id,
        recheck_due_at=row.recheck_due_at,
        recheck_status=row.recheck_status,
        rechecked_at=row.rechecked_at,
        overdue=row.outcome is None and row.at < cutoff,
    )


def _overdue_cutoff(at: datetime | None = None) -> datetime:
    return (at or clock.now()) - outcome_due()


# --- recording ---------------------------------------------------------------------------------


def record_check(session: Session, org_id: int, items: int, *, checks: int = 1) -> None:
    """Count ``checks`` checks of ``items`` items in all for today (UTC): one atomic upsert, so
    concurrent requests never lose a count. Call it first in its transaction on SQLite (see
    docs). The service adds its counts up in memory and calls this once a second."""
    if items < 0 or checks < 0:
        raise InvalidInput(f"checks and items must be 0 or more, not {checks} and {items}")
    day = clock.now().date().isoformat()
    dialect = session.connection().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        _record_check_portably(session, org_id, day, items, checks)
        return
    make_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = make_insert(CheckCount).values(org_id=org_id, day=day, checks=checks, items=items)
    # Columns by key: ``.items`` of a column collection is its dict-like method.
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["org_id", "day"],
        set_={
            "checks": CheckCount.checks + excluded["checks"],
            "items": CheckCount.items + excluded["items"],
        },
    )
    session.execute(statement)


def _record_check_portably(
    session: Session, org_id: int, day: str, items: int, checks: int = 1
) -> None:
    changed = session.execute(
        update(CheckCount)
        .where(CheckCount.org_id == org_id, CheckCount.day == day)
        .values(checks=CheckCount.checks + checks, items=CheckCount.items + items)
        .execution_options(synchronize_session=False)
    )
    if not getattr(changed, "rowcount", 0):
        row = {"org_id": org_id, "day": day, "checks": checks, "items": items}
        session.execute(insert(CheckCount).values(**row))


def check_public_url(url: str) -> str:
    """A public URL as a hit keeps it: http(s) with a host, at most 2,048 characters.
    Raises InvalidInput otherwise (the API can call it to answer 422 before matching)."""
    url = url.strip()
    try:
        check_text(url, "public_url", max_length=MAX_URL)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidInput(f"public_url {url[:100]!r} is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"public_url {url[:100]!r} must be an http(s) URL with a host")
    return url


def _hit_values(hit: NewHit, org_id: int, at: datetime, recheck_at: datetime) -> dict[str, Any]:
    platform_ref = _clean(hit.platform_ref, "platform_ref", MAX_PLATFORM_REF)
    url = None if hit.public_url is None or not hit.public_url.strip() else hit.public_url
    url = None if url is None else check_public_url(url)
    return {
        "org_id": org_id,
        "at": at,
        "signal_type": hit.signal_type,
        "signal_value": hit.signal_value,
        "distance": hit.distance,
        "set_id": hit.set_id,
        "item_id": hit.item_id,
        "category": hit.category,
        "platform_ref": platform_ref,
        "public_url": url,
        "recheck_due_at": None if url is None else recheck_at,
        "recheck_status": None if url is None else "pending",
    }


def record_hits(session: Session, org_id: int, hits: Sequence[NewHit]) -> list[int]:
    """Insert the hits of one check (one multi-row INSERT) and audit them as one event.
    Returns their public ids in the order given."""
    if not hits:
        return []
    at = clock.now()
    recheck_at = at + recheck_after()
    rows = [_hit_values(hit, org_id, at, recheck_at) for hit in hits]
    public_ids, ids = _insert_with_public_ids(session, rows)
    audit.record(
        session,
        actor=f"org:{org_id}",
        action="checks.hits.recorded",
        subject=("organisation", org_id),
        details={
            "hit_ids": public_ids,
            "row_ids": ids,
            "entries": sorted({(h.set_id, h.item_id) for h in hits}),
        },
    )
    return public_ids


#: Public hit ids are below 2**53: every JSON reader (JavaScript's numbers too) keeps them exact.
PUBLIC_ID_LIMIT = 2**53


#: Attempts at drawing a batch's public ids before an insert that keeps failing is given up.
_PUBLIC_ID_DRAWS = 4


def _insert_with_public_ids(
    session: Session, rows: list[dict[str, Any]]
) -> tuple[list[int], list[int]]:
    """Insert the rows with fresh random public ids; returns (public ids, row ids).

    The unique index on ``public_id`` is the check: among millions of hits a drawn id is taken
    about once in a billion batches, and then the batch is drawn again inside a savepoint.
    Asking the index first would cost a read before the write, which on SQLite means taking
    the write lock early and holding it longer, with two `meldpunt serve` workers waiting on
    each other (measured: single checks 1,370 -> 770/s)."""
    dbapi_integrity = session.connection().dialect.dbapi.IntegrityError  # type: ignore[union-attr]
    for attempt in range(_PUBLIC_ID_DRAWS):
        public_ids = _draw_public_ids(len(rows))
        for row, public_id in zip(rows, public_ids, strict=True):
            row["public_id"] = public_id
        try:
            with session.begin_nested():
                return public_ids, _insert_hits(session, rows)
        except (IntegrityError, dbapi_integrity):
            if attempt == _PUBLIC_ID_DRAWS - 1:
                raise  # not a taken id but another broken constraint: the caller's to handle
    raise AssertionError("unreachable")


def _draw_public_ids(count: int) -> list[int]:
    ids: set[int] = set()
    while len(ids) < count:
        ids.add(secrets.randbelow(PUBLIC_ID_LIMIT - 1) + 1)
    return list(ids)


def _insert_hits(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        # Ids from the table's sequence, rows by COPY: a multi-row INSERT ... RETURNING of a few
        # hundred hits spends most of its time building and parsing one enormous statement.
        raw: Any = connection.connection.dbapi_connection
        with raw.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                (Hit.__tablename__, len(rows)),
            )
            ids = sorted(int(row[0]) for row in cursor.fetchall())
            columns = ", ".join(["id", *rows[0]])
            with cursor.copy(f"COPY {Hit.__tablename__} ({columns}) FROM STDIN") as copy:
                for hit_id, row in zip(ids, rows, strict=True):
                    copy.write_row((hit_id, *row.values()))
        return ids
    statement = insert(Hit).returning(Hit.id, sort_by_parameter_order=True)
    return [int(i) for i in session.execute(statement, rows).scalars().all()]


# --- outcomes ----------------------------------------------------------------------------------


def _clean(value: str | None, name: str, limit: int, *, multiline: bool = False) -> str | None:
    value = (value or "").strip() or None
    if value is not None:
        try:
            check_text(value, name, max_length=limit, multiline=multiline)
        except TextError as exc:
            raise InvalidInput(str(exc)) from None
    return value


def _load_own_hit(
    session: Session, org_id: int | None, hit_id: int, *, lock: bool, public: bool = False
) -> Hit:
    """The hit by row id, or by public id when ``public``."""
    query = select(Hit).where((Hit.public_id if public else Hit.id) == hit_id)
    if org_id is not None:
        query = query.where(Hit.org_id == org_id)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query.execution_options(populate_existing=True))
    if row is None:
        # The same answer for another organisation's hit: never reveal that it exists.
        raise NotFound(f"no hit {hit_id}")
    return row


def record_outcome(
    session: Session,
    org_id: int,
    hit_id: int,
    outcome: str,
    *,
    report_id: str | None = None,
    reason: str | None = None,
    actor: str,
) -> HitInfo:
    """Record what the organisation did with its hit (flushed, not committed).

    ``reported`` needs the ``report_id`` it filed; ``other`` needs a ``reason``;
    ``false_positive`` also queues the entry for review. A later outcome replaces the earlier
    one (both are in the audit log); the same outcome again changes nothing. Another
    organisation's hit raises NotFound, exactly as a hit that does not exist."""
    if outcome not in OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    report_id = _clean(report_id, "report_id", MAX_REPORT_ID)
    reason = _clean(reason, "reason", MAX_REASON, multiline=True)
    if outcome == "reported" and report_id is None:
        raise InvalidInput("outcome 'reported' needs the report_id of the report that was filed")
    if outcome == "other" and reason is None:
        raise InvalidInput("outcome 'other' needs a reason")
    begin_write(session)
    row = _load_own_hit(session, org_id, hit_id, lock=True, public=True)
    before = (row.outcome, row.report_id, row.outcome_reason)
    if before == (outcome, report_id, reason):
        return _info(row, _overdue_cutoff())
    row.outcome = outcome
    row.report_id = report_id
    row.outcome_reason = reason
    row.outcome_at = clock.now()
    session.flush()
    review = open_review(session, row, reason) if outcome == "false_positive" else None
    audit.record(
        session,
        actor=actor,
        action="checks.hit.outcome",
        subject=("hit", row.id),
        details={
            "public_id": row.public_id,
            "org_id": org_id,
            "outcome": outcome,
            "report_id": report_id,
            "reason": reason,
            "previous": None
            if before[0] is None
            else {"outcome": before[0], "report_id": before[1], "reason": before[2]},
            "review_id": None if review is None else review.id,
        },
        row=hit_fields(outcome, report_id, reason),
    )
    return _info(row, _overdue_cutoff())


# --- reading -----------------------------------------------------------------------------------


def get_hit(session: Session, org_id: int | None, hit_id: int) -> HitInfo:
    """One hit of the organisation by its public id (``org_id`` None: of any organisation, for
    analysts); raises NotFound."""
    return _info(_load_own_hit(session, org_id, hit_id, lock=False, public=True), _overdue_cutoff())


def list_hits(
    session: Session,
    org_id: int | None = None,
    *,
    outcome: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[HitInfo]:
    """Hits, newest first, ``limit`` (1..1000) at a time; page on with ``before_id`` = the last
    ``row_id`` seen. ``outcome`` filters by outcome, ``"none"`` for hits without one."""
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be 1..{MAX_LIST}, not {limit}")
    query = select(Hit)
    if org_id is not None:
        query = query.where(Hit.org_id == org_id)
    if outcome == "none":
        query = query.where(Hit.outcome.is_(None))
    elif outcome is not None:
        if outcome not in OUTCOMES:
            known = ", ".join((*OUTCOMES, "none"))
            raise InvalidInput(f"outcome must be one of {known}, not {outcome!r}")
        query = query.where(Hit.outcome == outcome)
    if before_id is not None:
        query = query.where(Hit.id < before_id)
    query = query.order_by(Hit.id.desc()).limit(limit)
    cutoff = _overdue_cutoff()
    return [_info(row, cutoff) for row in session.scalars(query)]


def overdue_hits(
    session: Session, org_id: int | None = None, *, now: datetime | None = None
) -> list[HitInfo]:
    """Hits without an outcome that are older than ``hit_outcome_due_hours`` (at ``now``,
    default the clock's time), oldest first."""
    cutoff = _overdue_cutoff(now)
    query = select(Hit).where(Hit.outcome.is_(None), Hit.at < cutoff)
    if org_id is not None:
        query = query.where(Hit.org_id == org_id)
    query = query.order_by(Hit.at, Hit.id)
    return [_info(row, cutoff) for row in session.scalars(query)]
