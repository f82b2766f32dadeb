"""Subscriptions: which blocklists and which categories an organisation's checks run against.

Without a subscription (or with both parts None) a check runs against every active blocklist
and reports the illegal categories only (``registry.SUBSCRIBED_BY_DEFAULT``): entries that are
unassessed, unrecognised or non-pertinent answer ``match: false`` unless an admin names their
categories (non-pertinent entries never match at all). Allow-lists are not subscribed to: they
always apply, to everyone.
A subscription plugs straight into the matcher::

    sub = get_subscription(session, principal.org_id)
    matcher.match(query, sets=sub.set_ids, categories=sub.categories)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit, registry
from meldpunt.checks._db import begin_write
from meldpunt.checks.errors import InvalidInput
from meldpunt.checks.orgs import OrgRef, load_org_row
from meldpunt.clock import now
from meldpunt.store.models import Subscription as SubscriptionRow

__all__ = ["Subscription", "get_subscription", "set_subscription"]


@dataclass(frozen=True)
class Subscription:
    org_id: int
    #: Hash set ids to check against; None: every active blocklist.
    set_ids: frozenset[int] | None = None
    #: Normalised category codes to report (None: every category, never a stored default).
    categories: frozenset[str] | None = registry.SUBSCRIBED_BY_DEFAULT

    def admits(self, set_id: int, category: str) -> bool:
        """Whether a blocklist match in this set and category counts for the organisation."""
        return (self.set_ids is None or set_id in self.set_ids) and (
            self.categories is None or category in self.categories
        )


def _resolve_sets(session: Session, names: Iterable[str | int]) -> frozenset[int]:
    ids: set[int] = set()
    for name in names:
        if isinstance(name, str) and not name.strip():
            continue
        try:
            info = registry.get_set(session, name.strip() if isinstance(name, str) else name)
        except registry.NotFound:
            raise InvalidInput(f"no hash set {name!r}") from None
        if info.is_allowlist:
            raise InvalidInput(f"{info.name!r} is an allow-list: allow-lists always apply")
        ids.add(info.id)
    if not ids:
        raise InvalidInput("no sets named: give at least one set, or None for every blocklist")
    return frozenset(ids)


def _resolve_categories(categories: str | Iterable[str]) -> frozenset[str]:
    try:
        codes = registry.category_filter(categories)
    except registry.InvalidInput as exc:
        raise InvalidInput(str(exc)) from None
    if not codes:
        raise InvalidInput("no categories named: give at least one, or None for the default")
    return codes


def _dump(values: frozenset[int] | frozenset[str] | None) -> str | None:
    return None if values is None else json.dumps(sorted(values))


def set_subscription(
    session: Session,
    org: OrgRef,
    *,
    sets: list[str] | None,
    categories: str | list[str] | None,
    actor: str,
) -> Subscription:
    """Replace the organisation's subscription (flushed, not committed).

    ``sets`` are hash set names (or ids); ``categories`` are category filters as
    ``registry.category_filter`` reads them (``"baseline"``, ``"illegal,ncii"``, codes), stored
    as the codes they stand for. None for ``sets`` means every active blocklist, None for
    ``categories`` the default (the illegal categories). Raises InvalidInput for an unknown set
    or category, an allow-list, or an empty list."""
    begin_write(session)
    org_row = load_org_row(session, org)
    set_ids = None if sets is None else _resolve_sets(session, sets)
    # Stored as NULL: the default, which follows the vocabulary if it grows.
    codes = None if categories is None else _resolve_categories(categories)
    row = session.get(SubscriptionRow, org_row.id, populate_existing=True)
    before = None if row is None else _from_row(row)
    if row is None:
        row = SubscriptionRow(org_id=org_row.id)
        session.add(row)
    row.set_ids = _dump(set_ids)
    row.categories = _dump(codes)
    row.updated_at = now()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="checks.subscription.set",
        subject=("organisation", org_row.id),
        details={
            "set_ids": None if set_ids is None else sorted(set_ids),
            "categories": None if codes is None else sorted(codes),
            "before": None
            if before is None
            else {
                "set_ids": None if before.set_ids is None else sorted(before.set_ids),
                "categories": None if before.categories is None else sorted(before.categories),
            },
        },
    )
    return _subscription(org_row.id, set_ids, codes)


def _subscription(
    org_id: int, set_ids: frozenset[int] | None, codes: frozenset[str] | None
) -> Subscription:
    return Subscription(
        org_id=org_id,
        set_ids=set_ids,
        categories=registry.SUBSCRIBED_BY_DEFAULT if codes is None else codes,
    )


def _from_row(row: SubscriptionRow) -> Subscription:
    set_ids = None if row.set_ids is None else frozenset(int(i) for i in json.loads(row.set_ids))
    codes = None if row.categories is None else frozenset(json.loads(row.categories))
    return _subscription(row.org_id, set_ids, codes)


def get_subscription(session: Session, org_id: int) -> Subscription:
    """The organisation's subscription; the default (every blocklist, the illegal categories)
    when it has none. Does not
    check that the organisation exists: this is on every check's path."""
    query = select(SubscriptionRow).where(SubscriptionRow.org_id == org_id)
    row = session.scalar(query.execution_options(populate_existing=True))
    return Subscription(org_id=org_id) if row is None else _from_row(row)
