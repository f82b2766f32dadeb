"""Reviewers' decisions on groups of new material, and their export into the registry, so that
the material is known (or, decided not illegal, ignorable) the next time it is seen.

A decision names the group, not the pictures: the reviewer looks at the group's representative
in their own forensic viewer; meldpunt never shows media. Every decision and export is audited;
the export writes through the registry's own ``apply_items`` (its change rows and audit event).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.clock import now
from meldpunt.registry import (
    CODES,
    Category,
    InvalidInput,
    ItemInput,
    apply_items,
    classify,
    get_set,
    normalize_signals,
)
from meldpunt.store.models import TriageFile, TriageGroup
from meldpunt.text import TextError, check_text
from meldpunt.triage import cases
from meldpunt.triage.errors import BadInput, CaseNotFound
from meldpunt.triage.vocabulary import Decision, FileClass


def _group(session: Session, case_id: int, number: int) -> TriageGroup:
    row = session.scalar(
        select(TriageGroup).where(TriageGroup.case_id == case_id, TriageGroup.number == number)
    )
    if row is None:
        raise CaseNotFound(f"the case has no group {number}")
    return row


def decide(
    session: Session,
    name: str,
    number: int,
    decision: str,
    *,
    category: str | None = None,
    actor: str,
) -> TriageGroup:
    """Record a reviewer's decision on a group (flushed, not committed). ``illegal`` needs a
    category (a code such as ``csam_baseline`` or any value the registry recognises)."""
    case = cases.get_case(session, name)
    if decision not in tuple(Decision):
        raise BadInput(f"decision must be one of {', '.join(Decision)}, not {decision!r}")
    code: str | None = None
    if decision == Decision.illegal:
        if not category:
            raise BadInput("a decision 'illegal' needs a category")
        try:
            check_text(category, "a category", max_length=100)
        except TextError as exc:
            raise BadInput(str(exc)) from None
        try:
            code = classify(category).code
        except InvalidInput as exc:
            raise BadInput(str(exc)) from None
        if code not in CODES or code == "unknown":
            raise BadInput(f"unknown category {category[:80]!r}")
    group = _group(session, case.id, number)
    group.decision = decision
    group.category = code
    group.decided_by = actor
    group.decided_at = now()
    audit.record(session, actor=actor, action="triage.group.decided",
                 subject=("triage_group", group.id),
                 details={"case": case.name, "group": number, "decision": decision,
                          "category": code})  # fmt: skip
    return group


@dataclass(frozen=True)
class ExportResult:
    groups: int
    items: int
    outcomes: dict[str, int]


def export(
    session: Session, name: str, set_name: str, decision: str, *, actor: str
) -> ExportResult:
    """Every not yet exported group with ``decision`` into the set ``set_name`` (a blocklist for
    ``illegal``, an allow-list for ``not_illegal``): one item per distinct file, with its
    digests, PDQ hash and, for videos, its frames' PDQ hashes."""
    case = cases.get_case(session, name)
    target = get_set(session, set_name)
    wanted_allow = decision == Decision.not_illegal
    if target.is_allowlist != wanted_allow:
        kind = "an allow-list" if wanted_allow else "a blocklist"
        raise BadInput(f"decisions {decision!r} go into {kind}; {set_name!r} is not one")
    groups = [
        g for g in cases.groups_of(session, case.id)
        if g.decision == decision and g.exported_to is None
    ]  # fmt: skip
    items: list[ItemInput] = []
    seen: set[str] = set()
    for group in groups:
        rows = session.scalars(
            select(TriageFile)
            .where(
                TriageFile.case_id == case.id,
                TriageFile.group_number == group.number,
                TriageFile.file_class == FileClass.new,
            )
            .order_by(TriageFile.path)
        )
        for row in rows:
            if not row.sha256 or row.sha256 in seen:
                continue
            seen.add(row.sha256)
            values = (("md5", row.md5), ("sha1", row.sha1), ("sha256", row.sha256),
                      ("pdq", row.pdq))  # fmt: skip
            pairs = [(k, v) for k, v in values if v]
            pairs += [("pdq", f[0]) for f in json.loads(row.frames or "[]")]
            category = Category(group.category) if group.category else None
            items.append(ItemInput(signals=normalize_signals(pairs), category=category,
                                   reference=f"triage:{case.name}:{group.number}"))  # fmt: skip
    result = apply_items(session, target.id, items, actor=actor, audit_each=False,
                         source=f"triage case {case.name}")  # fmt: skip
    outcomes: dict[str, int] = {}
    for outcome in result.outcomes:
        outcomes[outcome.outcome] = outcomes.get(outcome.outcome, 0) + 1
    at = now()
    for group in groups:
        group.exported_to = target.name
        group.exported_at = at
    audit.record(session, actor=actor, action="triage.groups.exported",
                 subject=("hash_set", target.id),
                 details={"case": case.name, "decision": decision,
                          "groups": [g.number for g in groups], "items": len(items),
                          "outcomes": outcomes})  # fmt: skip
    return ExportResult(len(groups), len(items), outcomes)
