"""The tamper-evident audit log.

Every state change that someone could later dispute is recorded here, in the same transaction as
the change itself::

    audit.record(session, actor="analyst:7", action="report.graded",
                 subject=("report", report.id), details={"grade": "A1"})

The events form a hash chain: each event's ``hash`` is the SHA-256 of a canonical JSON of its
fields and the previous event's hash. Editing any stored field, or deleting or reordering events,
breaks the chain at that point and ``verify()`` names the first event that no longer fits.
What a chain cannot show by itself is the loss of its newest events; publish or hand over
``VerifyResult.head`` from time to time so that a later head can be checked against it.

Rows that people could dispute (a hit's outcome, an entry's status and signals, a key's role)
are vouched for by the events that change them: such an event carries ``row_sha256``, the digest
(``row_digest``) of the row's disputable fields as the change left them, so the chain covers the
row. ``meldpunt.audit_verify`` recomputes those digests from the tables and names every row that
was changed outside meldpunt (docs/audit.md).

Appending is serialised: on PostgreSQL ``record()`` takes an EXCLUSIVE lock on the table (readers
are not blocked), on SQLite it takes the database's write lock before reading the last hash. The
lock is held until the caller's transaction ends, so keep audited transactions short, and run
them at READ COMMITTED (PostgreSQL's default).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session

from meldpunt.clock import as_utc, get_clock
from meldpunt.store.models import AuditEvent

__all__ = [
    "GENESIS_HASH",
    "ROW_DIGEST",
    "AuditEvent",
    "Entry",
    "RowProblem",
    "Subject",
    "VerifyResult",
    "canonical_json",
    "event_hash",
    "record",
    "record_many",
    "row_digest",
    "verify",
]

#: The ``prev_hash`` of the first event.
GENESIS_HASH = "0" * 64

#: What an event is about: a type name and an id, e.g. ``("report", 42)``.
Subject = tuple[str, str | int]

#: The key, in an event's details, of the digest of its subject's disputable fields.
ROW_DIGEST = "row_sha256"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    #: Events checked: all of them when ``ok``, else up to and including the broken one.
    count: int
    first_broken_id: int | None = None
    reason: str | None = None
    #: The hash of the last intact event (``GENESIS_HASH`` for an empty log).
    head: str = GENESIS_HASH
    #: The id of the last intact event (None for an empty log).
    head_id: int | None = None


@dataclass(frozen=True)
class RowProblem:
    """A row whose disputable fields differ from what the audit log vouches for."""

    table: str
    row: str  # e.g. "id 42"
    fields: tuple[str, ...]  # the field set that was checked
    detail: str


def row_digest(fields: Mapping[str, Any]) -> str:
    """The SHA-256 of a row's disputable fields (plain JSON values), as events record it."""
    return hashlib.sha256(canonical_json(dict(fields)).encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    """One fixed text for a JSON value: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def event_hash(
    *,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str | None,
    subject_id: str | None,
    details: str,
    prev_hash: str,
) -> str:
    """The hash of one event; ``details`` is the stored canonical JSON text."""
    fields = {
        "at": as_utc(at).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: Subject | None = None,
    details: Mapping[str, Any] | None = None,
    row: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the session's transaction and return it (flushed, with its id).

    ``details`` must be JSON-serialisable as it is (no datetimes or sets): what is hashed must be
    exactly what is stored. ``row``: the subject's disputable fields as this change leaves them;
    their ``row_digest`` is stored in the details under ``ROW_DIGEST``.
    """
    values_of_details = dict(details or {})
    if row is not None:
        values_of_details[ROW_DIGEST] = row_digest(row)
    details_json = canonical_json(values_of_details)
    subject_type, subject_id = (None, None) if subject is None else (subject[0], str(subject[1]))
    prev_hash = _lock_chain_head(session)
    at = get_clock().now()
    values: dict[str, Any] = {
        "at": at,
        "actor": actor,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "details": details_json,
        "prev_hash": prev_hash or GENESIS_HASH,
    }
    values["hash"] = event_hash(**values)
    # A plain INSERT ... RETURNING, not the ORM's unit of work: hits are audited in every group
    # commit of the check service, where the ORM cost more than the insert itself.
    table: Table = AuditEvent.__table__  # type: ignore[assignment]
    statement = insert(table).values(values).returning(table.c.id)
    event_id = session.connection().execute(statement).scalar_one()
    return AuditEvent(id=event_id, **values)


@dataclass(frozen=True)
class Entry:
    """One event for ``record_many``: what ``record`` takes, without the session."""

    actor: str
    action: str
    subject: Subject | None = None
    details: Mapping[str, Any] | None = None


def record_many(session: Session, entries: Sequence[Entry]) -> int:
    """Append ``entries`` in order in the session's transaction, taking the chain's lock once
    and inserting them in one statement; the chain is the same as ``record`` one by one would
    make. Returns how many were appended. For work that changes many rows at once (a report
    of a thousand URLs, a worker's batch)."""
    if not entries:
        return 0
    prev_hash = _lock_chain_head(session) or GENESIS_HASH
    at = get_clock().now()
    rows: list[dict[str, Any]] = []
    for entry in entries:
        subject = entry.subject
        values: dict[str, Any] = {
            "at": at,
            "actor": entry.actor,
            "action": entry.action,
            "subject_type": None if subject is None else subject[0],
            "subject_id": None if subject is None else str(subject[1]),
            "details": canonical_json(dict(entry.details or {})),
            "prev_hash": prev_hash,
        }
        values["hash"] = prev_hash = event_hash(**values)
        rows.append(values)
    table: Table = AuditEvent.__table__  # type: ignore[assignment]
    session.connection().execute(insert(table), rows)
    return len(rows)


def _lock_chain_head(session: Session) -> str | None:
    """Take the chain's lock (held until the transaction ends) and read the newest hash."""
    session.flush()  # pending changes first, as any statement of the session would
    connection = session.connection()
    dialect = connection.dialect
    table = dialect.identifier_preparer.format_table(AuditEvent.__table__)
    head = f"SELECT hash FROM {table} ORDER BY id DESC LIMIT 1"
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        # Both statements in one round trip: the lock is held until commit, and every round
        # trip under it makes other writers (every group commit of hits) wait longer.
        raw: Any = connection.connection.dbapi_connection
        with raw.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE; {head}")
            cursor.nextset()
            row = cursor.fetchone()
        return None if row is None else str(row[0])
    if dialect.name == "postgresql":
        connection.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
    elif dialect.name == "sqlite":
        # A write statement takes SQLite's write lock even when it changes nothing; from then on
        # this transaction sees the newest committed state and no other writer can append.
        connection.execute(text(f"UPDATE {table} SET id = id WHERE 0"))
    return connection.execute(text(head)).scalar_one_or_none()


def verify(session: Session, *, batch_size: int = 1000) -> VerifyResult:
    """Walk the whole chain in id order and report the first event that does not fit."""
    columns = AuditEvent.__table__.c
    rows = session.execute(
        select(
            columns.id,
            columns.at,
            columns.actor,
            columns.action,
            columns.subject_type,
            columns.subject_id,
            columns.details,
            columns.prev_hash,
            columns.hash,
        ).order_by(columns.id),
        execution_options={"yield_per": batch_size},
    )
    try:
        return _walk(rows)
    finally:
        rows.close()


def _walk(rows: Iterable[Any]) -> VerifyResult:
    head = GENESIS_HASH
    head_id: int | None = None
    count = 0
    for row in rows:
        count += 1
        if row.prev_hash != head:
            return VerifyResult(
                ok=False,
                count=count,
                first_broken_id=row.id,
                reason="prev_hash does not match the event before it (events removed or moved)",
                head=head,
                head_id=head_id,
            )
        expected = event_hash(
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            details=row.details,
            prev_hash=row.prev_hash,
        )
        if row.hash != expected:
            return VerifyResult(
                ok=False,
                count=count,
                first_broken_id=row.id,
                reason="hash does not match the event's content (the event was altered)",
                head=head,
                head_id=head_id,
            )
        head, head_id = row.hash, row.id
    return VerifyResult(ok=True, count=count, head=head, head_id=head_id)
