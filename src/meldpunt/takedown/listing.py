"""What the analysts' pages list of attribution: the "contact needed" queue and a hoster's
items (by AS number)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt.reports.vocabulary import Event, ItemState
from meldpunt.store.models import AbuseContact, AsnPrefix, ItemEvent, UrlItem

__all__ = ["HosterView", "Waiting", "contact_needed", "hoster"]


@dataclass(frozen=True)
class Waiting:
    """An item in the "contact needed" queue and why it waits."""

    item: UrlItem
    why: str | None
    since: datetime | None


def contact_needed(session: Session, *, limit: int = 200) -> list[Waiting]:
    """Items waiting for an abuse contact, longest waiting first, each with the reason the
    attribution gave."""
    rows = list(
        session.scalars(
            select(UrlItem)
            .where(UrlItem.state == ItemState.contact_needed)
            .order_by(UrlItem.updated_at, UrlItem.id)
            .limit(limit)
        )
    )
    reasons: dict[int, tuple[str | None, datetime]] = {}
    if rows:
        query = (
            select(ItemEvent.item_id, ItemEvent.details, ItemEvent.at)
            .where(
                ItemEvent.item_id.in_([r.id for r in rows]),
                ItemEvent.event == Event.contact_needed,
            )
            .order_by(ItemEvent.id)
        )
        for item_id, details, at in session.execute(query):
            why = json.loads(details).get("why") if details else None
            reasons[item_id] = (why, at)  # the latest one stays
    return [Waiting(r, *reasons.get(r.id, (None, None))) for r in rows]


@dataclass(frozen=True)
class HosterView:
    """One network's items and what the directory and the table say of it."""

    asn: int
    owners: list[str]
    countries: list[str]
    prefixes: int
    contacts: list[AbuseContact]
    states: dict[str, int]
    items: list[UrlItem]


def hoster(session: Session, asn: int, *, state: str | None = None, limit: int = 200) -> HosterView:
    """The items attributed to AS ``asn`` (newest first, of ``state`` if given), counted per
    state, with the network's owners and contacts."""
    prefixes = session.execute(
        select(AsnPrefix.org, AsnPrefix.country).where(AsnPrefix.asn == asn)
    ).all()
    counts = session.execute(
        select(UrlItem.state, func.count()).where(UrlItem.asn == asn).group_by(UrlItem.state)
    ).all()
    query = select(UrlItem).where(UrlItem.asn == asn)
    if state is not None:
        query = query.where(UrlItem.state == state)
    found = list(session.scalars(query.order_by(UrlItem.id.desc()).limit(limit)))
    contacts = list(
        session.scalars(
            select(AbuseContact).where(AbuseContact.asn == asn).order_by(AbuseContact.name)
        )
    )
    return HosterView(
        asn=asn,
        owners=sorted({o for o, _c in prefixes if o}),
        countries=sorted({c for _o, c in prefixes if c}),
        prefixes=len(prefixes),
        contacts=contacts,
        states={s: int(n) for s, n in counts},
        items=found,
    )
