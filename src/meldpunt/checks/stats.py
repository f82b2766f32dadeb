"""Figures per organisation: checks, items, hits, outcomes, overdue hits, confirmed removals.

These feed the admin pages now and the public monitor later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, true
from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.checks.errors import NotFound
from meldpunt.checks.timing import outcome_due
from meldpunt.checks.vocabulary import Outcome
from meldpunt.store.models import CheckCount, Hit, Organisation

__all__ = ["OrgStats", "org_stats"]


@dataclass(frozen=True)
class OrgStats:
    org_id: int
    org_name: str
    #: Check requests and the items in them, over all days.
    checks: int
    items: int
    hits: int
    #: Hits per outcome, every outcome of the vocabulary present (0 when none).
    outcomes: Mapping[str, int] = field(default_factory=dict)
    #: Hits without an outcome (overdue or not yet).
    open: int = 0
    #: Hits without an outcome, older than ``hit_outcome_due_hours``.
    overdue: int = 0
    #: Hits the platform says it removed, or whose public URL a re-check found gone.
    confirmed_removals: int = 0


def org_stats(session: Session, org_id: int | None = None) -> list[OrgStats]:
    """Figures for one organisation, or for every organisation (by name)."""
    orgs_query = select(Organisation.id, Organisation.name).order_by(Organisation.name)
    if org_id is not None:
        orgs_query = orgs_query.where(Organisation.id == org_id)
    orgs = session.execute(orgs_query).all()
    if org_id is not None and not orgs:
        raise NotFound(f"no organisation {org_id!r}")

    of_org = true() if org_id is None else Hit.org_id == org_id

    counts_query = select(
        CheckCount.org_id, func.sum(CheckCount.checks), func.sum(CheckCount.items)
    ).group_by(CheckCount.org_id)
    if org_id is not None:
        counts_query = counts_query.where(CheckCount.org_id == org_id)
    counts = {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in session.execute(counts_query)}

    by_outcome: dict[int, dict[str | None, int]] = {}
    outcome_query = (
        select(Hit.org_id, Hit.outcome, func.count())
        .where(of_org)
        .group_by(Hit.org_id, Hit.outcome)
    )
    for org, outcome, count in session.execute(outcome_query):
        by_outcome.setdefault(org, {})[outcome] = int(count)

    cutoff = clock.now() - outcome_due()
    overdue_query = (
        select(Hit.org_id, func.count())
        .where(of_org, Hit.outcome.is_(None), Hit.at < cutoff)
        .group_by(Hit.org_id)
    )
    overdue = {org: int(count) for org, count in session.execute(overdue_query)}

    removed_query = (
        select(Hit.org_id, func.count())
        .where(of_org, or_(Hit.outcome == "removed", Hit.recheck_status == "gone"))
        .group_by(Hit.org_id)
    )
    removed = {org: int(count) for org, count in session.execute(removed_query)}

    stats = []
    for org, name in orgs:
        hits = by_outcome.get(org, {})
        checks, items = counts.get(org, (0, 0))
        stats.append(
            OrgStats(
                org_id=org,
                org_name=name,
                checks=checks,
                items=items,
                hits=sum(hits.values()),
                outcomes={outcome: hits.get(outcome, 0) for outcome in Outcome},
                open=hits.get(None, 0),
                overdue=overdue.get(org, 0),
                confirmed_removals=removed.get(org, 0),
            )
        )
    return stats
