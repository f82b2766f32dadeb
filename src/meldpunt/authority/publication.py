"""Publication: the orders and fines the authority marked public, for ``/decisions`` and
``GET /v1/public/decisions``. What is published: the kind and reference, the hoster (its name
and AS number), the date, for an order the number of URLs (never the URLs themselves: they
point at the material), the deadline, its status, when the material was gone and the penalty
payments forfeited; for a fine the amount, its basis and what stands after objection and
appeal. Never the reasons (they may describe the material) or anyone's address."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt.store.models import AbuseContact, Fine, Order, OrderItem

from .common import iso

__all__ = ["MAX_PAGE", "PublicDecision", "public_decisions"]

MAX_PAGE = 200
#: The deepest a listing pages (newest first).
MAX_OFFSET = 100_000


@dataclass(frozen=True)
class PublicDecision:
    kind: str  # order or fine
    ref: str
    hoster: str
    asn: int | None
    decided_at: str
    published_at: str | None
    legal_basis: str
    # orders
    urls: int | None = None
    hours: float | None = None
    deadline_at: str | None = None
    status: str | None = None
    gone_at: str | None = None
    penalty_cents: int | None = None
    penalty_total_cents: int | None = None
    # fines
    amount_cents: int | None = None
    share: float | None = None
    objection_outcome: str | None = None
    appeal_outcome: str | None = None
    final_cents: int | None = None

    def plain(self) -> dict[str, Any]:
        return asdict(self)


def _hoster(owner: str | None, contact: str | None, asn: int | None) -> str:
    return owner or contact or (f"AS{asn}" if asn else "unknown")


def public_decisions(
    session: Session, *, limit: int = 50, offset: int = 0
) -> tuple[list[PublicDecision], int]:
    """One page of the public decisions (newest first) and how many there are."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, min(offset, MAX_OFFSET))
    take = offset + limit
    names = dict(session.execute(select(AbuseContact.id, AbuseContact.name)).all())
    orders = list(
        session.scalars(
            select(Order).where(Order.public.is_(True))
            .order_by(Order.issued_at.desc(), Order.id.desc()).limit(take)
        )
    )  # fmt: skip
    counts = dict(
        session.execute(
            select(OrderItem.order_id, func.count())
            .where(OrderItem.order_id.in_([o.id for o in orders]))
            .group_by(OrderItem.order_id)
        ).all()
    )
    fines = list(
        session.scalars(
            select(Fine).where(Fine.public.is_(True))
            .order_by(Fine.decided_at.desc(), Fine.id.desc()).limit(take)
        )
    )  # fmt: skip
    found = [
        PublicDecision(
            kind="order",
            ref=o.ref,
            hoster=_hoster(o.network_owner, names.get(o.contact_id or 0), o.asn),
            asn=o.asn,
            decided_at=o.issued_at.isoformat(),
            published_at=iso(o.published_at),
            legal_basis=o.legal_basis,
            urls=counts.get(o.id, 0),
            hours=o.hours,
            deadline_at=o.deadline_at.isoformat(),
            status=o.status,
            gone_at=iso(o.gone_at),
            penalty_cents=o.penalty_cents,
            penalty_total_cents=o.penalty_total_cents,
        )
        for o in orders
    ] + [
        PublicDecision(
            kind="fine",
            ref=f.ref,
            hoster=_hoster(f.network_owner, names.get(f.contact_id or 0), f.asn),
            asn=f.asn,
            decided_at=f.decided_at.isoformat(),
            published_at=iso(f.published_at),
            legal_basis=f.legal_basis,
            amount_cents=f.amount_cents,
            share=f.share,
            objection_outcome=f.objection_outcome,
            appeal_outcome=f.appeal_outcome,
            final_cents=f.final_cents,
        )
        for f in fines
    ]
    found.sort(key=lambda d: (d.decided_at, d.ref), reverse=True)
    total = (
        session.scalar(select(func.count()).select_from(Order).where(Order.public.is_(True))) or 0
    ) + (session.scalar(select(func.count()).select_from(Fine).where(Fine.public.is_(True))) or 0)
    return found[offset:take], total
