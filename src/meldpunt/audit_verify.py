"""``meldpunt audit verify``: the audit chain, and the disputable rows against it.

``verify_all(session)`` checks, in this order:

1. the hash chain of the audit log (``audit.verify``): the first event that does not fit;
2. the change log against the events that vouch for it (``registry.integrity``);
3. the entries (status, category, signals) against the change log;
4. the hits' outcomes and the keys' roles against the newest digest an event recorded
   (``checks.integrity``).

What the check can and cannot find is in docs/audit.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.audit import ROW_DIGEST, AuditEvent, RowProblem, VerifyResult
from meldpunt.checks.integrity import hit_problems, key_problems
from meldpunt.registry.integrity import Voucher, change_log_problems, entry_problems

__all__ = ["Report", "verify_all"]

#: Actions whose events carry a row digest or vouch for change rows.
_VOUCHING = ("checks.hit.outcome", "checks.key.created", "checks.key.revoked")


@dataclass(frozen=True)
class Report:
    chain: VerifyResult
    rows: tuple[RowProblem, ...]

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.rows


def verify_all(session: Session, *, batch_size: int = 1000) -> Report:
    """The chain's state and every row that differs from what the audit log vouches for."""
    chain = audit.verify(session, batch_size=batch_size)
    vouchers: list[Voucher] = []
    digests: dict[str, dict[int, str]] = {"hit": {}, "api_key": {}}
    columns = AuditEvent.__table__.c
    events = session.execute(
        select(columns.id, columns.subject_type, columns.subject_id, columns.details)
        .where(or_(columns.action.in_(_VOUCHING), columns.action.like("registry.%")))
        .order_by(columns.id),
        execution_options={"yield_per": batch_size},
    )
    try:
        for event_id, subject_type, subject_id, text in events:
            details: dict[str, Any] = json.loads(text)
            digest = details.get(ROW_DIGEST)
            if digest is not None and subject_type in digests and subject_id is not None:
                digests[subject_type][int(subject_id)] = digest  # newest last
            if details.get("changes_sha256") is not None:
                vouchers.append(Voucher(event_id, int(details["first_seq"]),
                                        int(details["last_seq"]),
                                        str(details["changes_sha256"])))  # fmt: skip
    finally:
        events.close()
    problems = [
        *change_log_problems(session, vouchers),
        *entry_problems(session),
        *hit_problems(session, digests["hit"]),
        *key_problems(session, digests["api_key"]),
    ]
    return Report(chain, tuple(problems))
