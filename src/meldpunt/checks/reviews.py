"""The false-positive review queue.

A platform that marks a hit ``false_positive`` puts the entry behind it in front of an analyst.
The decision is about the entry, not about one platform's hit: resolving a review resolves every
open review of the same entry with it. ``confirmed`` disables the entry in the registry (it stops
matching everywhere); ``rejected`` leaves it as it is.

A claim against an entry of a set nobody at the hotline reviewed (``HashSetInfo.reviewed``
False: people's own pictures, hashed on their own device) is *flagged*: the hotline has never
looked at that hash, and a platform now says it matched something else. The queue lists flagged
reviews first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit, registry
from meldpunt.checks._db import begin_write
from meldpunt.checks.errors import InvalidInput, NotFound
from meldpunt.checks.vocabulary import REVIEW_RESOLUTIONS
from meldpunt.clock import now
from meldpunt.store.models import FalsePositiveReview, HashSet, Hit

__all__ = ["REVIEW_RESOLUTIONS", "ReviewInfo", "open_review", "resolve_review", "review_queue"]


@dataclass(frozen=True)
class ReviewInfo:
    id: int
    hit_id: int
    #: The organisation whose hit it was.
    org_id: int
    set_id: int
    item_id: int
    reason: str
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None  # 'confirmed' | 'rejected'
    resolved_by: str | None
    #: The hit's outcome now: no longer 'false_positive' when the platform corrected it since.
    hit_outcome: str | None
    #: Whether the entry's set was reviewed by the hotline; False: the review is flagged.
    set_reviewed: bool = True

    @property
    def flagged(self) -> bool:
        """A claim against a hash nobody at the hotline has looked at."""
        return not self.set_reviewed

    @property
    def open(self) -> bool:
        return self.resolved_at is None


def _info(review: FalsePositiveReview, hit: Hit, set_reviewed: bool | None = True) -> ReviewInfo:
    return ReviewInfo(
        id=review.id,
        hit_id=hit.public_id,  # the id the platform and the pages name the hit by
        org_id=hit.org_id,
        set_id=review.set_id,
        item_id=review.item_id,
        reason=review.reason,
        created_at=review.created_at,
        resolved_at=review.resolved_at,
        resolution=review.resolution,
        resolved_by=review.resolved_by,
        hit_outcome=hit.outcome,
        set_reviewed=set_reviewed is not False,
    )


def open_review(session: Session, hit: Hit, reason: str | None) -> FalsePositiveReview | None:
    """Queue the hit's entry for review, unless this hit already has an open review. Returns
    the new row (flushed), or None. The caller audits it as part of the outcome."""
    existing = session.scalar(
        select(FalsePositiveReview.id).where(
            FalsePositiveReview.hit_id == hit.id, FalsePositiveReview.resolved_at.is_(None)
        )
    )
    if existing is not None:
        return None
    review = FalsePositiveReview(
        hit_id=hit.id,
        set_id=hit.set_id,
        item_id=hit.item_id,
        reason=reason or "",
        created_at=now(),
    )
    session.add(review)
    session.flush()
    return review


def _base_query() -> Any:
    return (
        select(FalsePositiveReview, Hit, HashSet.reviewed)
        .join(Hit, FalsePositiveReview.hit_id == Hit.id)
        .join(HashSet, FalsePositiveReview.set_id == HashSet.id)
    )


def review_queue(session: Session, *, open_only: bool = True) -> list[ReviewInfo]:
    """Reviews, flagged ones first, then oldest first; by default only those waiting for a
    decision."""
    query = _base_query()
    if open_only:
        query = query.where(FalsePositiveReview.resolved_at.is_(None))
    query = query.order_by(HashSet.reviewed, FalsePositiveReview.created_at, FalsePositiveReview.id)
    rows = session.execute(query.execution_options(populate_existing=True))
    return [_info(review, hit, reviewed) for review, hit, reviewed in rows]


def resolve_review(session: Session, review_id: int, resolution: str, *, actor: str) -> ReviewInfo:
    """Decide a review (flushed, not committed): ``confirmed`` (a false positive: the entry is
    disabled in the registry) or ``rejected`` (the entry stays). Open reviews of the same entry
    are resolved with it. Raises NotFound, or InvalidInput when it was decided already."""
    if resolution not in REVIEW_RESOLUTIONS:
        known = ", ".join(REVIEW_RESOLUTIONS)
        raise InvalidInput(f"resolution must be one of {known}, not {resolution!r}")
    if resolution == "confirmed":
        registry.lock_registry(session)  # before any other lock, as the registry asks
    begin_write(session)
    query = (
        _base_query()
        .where(FalsePositiveReview.id == review_id)
        .with_for_update(of=[FalsePositiveReview, Hit])
    )
    found = session.execute(query.execution_options(populate_existing=True)).first()
    if found is None:
        raise NotFound(f"no review {review_id}")
    review, hit, set_reviewed = found
    if review.resolved_at is not None:
        raise InvalidInput(f"review {review_id} was resolved already ({review.resolution})")
    item_disabled = False
    if resolution == "confirmed":
        item_disabled = _disable_item(session, review, actor)
    same_entry = session.scalars(
        select(FalsePositiveReview)
        .where(
            FalsePositiveReview.set_id == review.set_id,
            FalsePositiveReview.item_id == review.item_id,
            FalsePositiveReview.resolved_at.is_(None),
        )
        .order_by(FalsePositiveReview.id)
        .with_for_update()
    ).all()
    at = now()
    for row in same_entry:
        row.resolved_at = at
        row.resolution = resolution
        row.resolved_by = actor
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=f"checks.review.{resolution}",
        subject=("false_positive_review", review.id),
        details={
            "hit_id": review.hit_id,
            "set_id": review.set_id,
            "item_id": review.item_id,
            "item_disabled": item_disabled,
            "also_resolved": [row.id for row in same_entry if row.id != review.id],
        },
    )
    return _info(review, hit, set_reviewed)


def _disable_item(session: Session, review: FalsePositiveReview, actor: str) -> bool:
    """Disable the entry if it is still active; False when it is gone or inactive already."""
    try:
        item = registry.get_item(session, review.item_id)
    except registry.NotFound:
        return False
    if item.status != "active":
        return False
    note = f"false positive confirmed in review {review.id}"
    registry.disable_item(session, review.item_id, actor=actor, note=note)
    return True
