"""The disputable fields of hits and keys, and checking the tables against the audit log.

A platform could dispute what it said it did with a hit; an organisation could dispute what a
key was allowed to do. The events that change these fields (``checks.hit.outcome``,
``checks.key.created``, ``checks.key.revoked``) carry the digest of the fields as they left them
(``audit.record(..., row=...)``); ``meldpunt audit verify`` recomputes each row's digest and
compares it with the newest audited one.

Hits are written in group commits on the check path, by the hundred, with no outcome; they get
no digest there, which keeps that path as fast as it was: a hit without an outcome is the
baseline, and a hit that has an outcome without an audited digest got it outside meldpunt.
Keys get their digest when they are made.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt.audit import RowProblem, row_digest
from meldpunt.clock import as_utc
from meldpunt.store.models import ApiKey, Hit

__all__ = [
    "HIT_FIELDS",
    "KEY_FIELDS",
    "hit_fields",
    "hit_problems",
    "key_fields",
    "key_problems",
]

HIT_FIELDS = ("outcome", "report_id", "outcome_reason")
KEY_FIELDS = ("role", "org_id", "expires_at", "revoked_at")

_BATCH = 10_000
_IN_CHUNK = 1000


def hit_fields(outcome: str | None, report_id: str | None, reason: str | None) -> dict[str, Any]:
    """A hit's disputable fields, as its outcome event records their digest."""
    return {"outcome": outcome, "report_id": report_id, "outcome_reason": reason}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat(timespec="microseconds")


def key_fields(
    role: str, org_id: int, expires_at: datetime | None, revoked_at: datetime | None
) -> dict[str, Any]:
    """A key's disputable fields, as its events record their digest."""
    return {
        "role": role,
        "org_id": org_id,
        "expires_at": _iso(expires_at),
        "revoked_at": _iso(revoked_at),
    }


def _mismatch(table: str, row_id: int, fields: tuple[str, ...], why: str) -> RowProblem:
    return RowProblem(table, f"id {row_id}", fields, f"{why} (changed outside meldpunt)")


def hit_problems(session: Session, audited: Mapping[int, str]) -> list[RowProblem]:
    """Hits whose outcome differs from the newest audited digest (``audited``: hit id ->
    digest), or that have an outcome no event vouches for."""
    problems: list[RowProblem] = []
    seen: set[int] = set()
    columns = (Hit.id, Hit.outcome, Hit.report_id, Hit.outcome_reason)
    rows = session.execute(
        select(*columns).where(Hit.outcome.is_not(None)).order_by(Hit.id),
        execution_options={"yield_per": _BATCH},
    )
    try:
        for hit_id, outcome, report_id, reason in rows:
            seen.add(hit_id)
            expected = audited.get(hit_id)
            if expected is None:
                problems.append(
                    _mismatch(
                        "hits",
                        hit_id,
                        HIT_FIELDS,
                        f"outcome {outcome!r} that no audit event records",
                    )
                )
            elif row_digest(hit_fields(outcome, report_id, reason)) != expected:
                problems.append(
                    _mismatch(
                        "hits",
                        hit_id,
                        HIT_FIELDS,
                        f"outcome {outcome!r} differs from the audited one",
                    )
                )
    finally:
        rows.close()
    # Audited hits without an outcome now: the outcome was taken away, or the hit deleted.
    rest = sorted(set(audited) - seen)
    for start in range(0, len(rest), _IN_CHUNK):
        chunk = rest[start : start + _IN_CHUNK]
        found = {row.id: row for row in session.execute(select(*columns).where(Hit.id.in_(chunk)))}
        for hit_id in chunk:
            row = found.get(hit_id)
            if row is None:
                problems.append(_mismatch("hits", hit_id, HIT_FIELDS, "the hit is gone"))
            elif row_digest(hit_fields(None, row.report_id, row.outcome_reason)) != audited[hit_id]:
                problems.append(
                    _mismatch("hits", hit_id, HIT_FIELDS, "no outcome, unlike the audited one")
                )
    problems.sort(key=lambda p: int(p.row.split()[-1]))
    return problems


def key_problems(session: Session, audited: Mapping[int, str]) -> list[RowProblem]:
    """Keys whose role, organisation, expiry or revocation differs from the newest audited
    digest (``audited``: key id -> digest), and keys no event vouches for."""
    problems: list[RowProblem] = []
    seen: set[int] = set()
    rows = session.execute(
        select(
            ApiKey.id, ApiKey.role, ApiKey.org_id, ApiKey.expires_at, ApiKey.revoked_at
        ).order_by(ApiKey.id)
    )
    for key_id, role, org_id, expires_at, revoked_at in rows:
        seen.add(key_id)
        expected = audited.get(key_id)
        if expected is None:
            problems.append(
                _mismatch(
                    "api_keys", key_id, KEY_FIELDS, f"a {role} key that no audit event records"
                )
            )
        elif row_digest(key_fields(role, org_id, expires_at, revoked_at)) != expected:
            problems.append(
                _mismatch(
                    "api_keys",
                    key_id,
                    KEY_FIELDS,
                    f"role {role!r}: role, organisation, expiry or "
                    "revocation differ from the audited ones",
                )
            )
    for key_id in sorted(set(audited) - seen):
        problems.append(_mismatch("api_keys", key_id, KEY_FIELDS, "the key is gone"))
    return problems
