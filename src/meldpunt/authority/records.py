"""The duty-of-care record of one hoster (by AS number, as the hotline attributed its items
when they were first noticed): notices and how they were heeded, orders, penalty payments and
fines over time. One function (``hoster_record``) returns one typed structure; the page
``/ui/hosters/{asn}`` and ``GET /v1/hosters/{asn}/record`` show it.

- **notices**: the messages sent to the network's abuse contacts (notices and re-notices);
- **notified**: items first noticed to this network (``notice_asn``), per month of the first
  notice; **ignored**: of those, the items escalated (still online past the escalation norm);
  **re-notices**: the re-notices they took; **offline**: of those, gone by now.
- **orders** with their status, **penalties** forfeited, **fines** with the amount that stands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt.reports.vocabulary import ItemState
from meldpunt.store.models import (
    AbuseContact,
    Fine,
    HosterFacts,
    Notice,
    Order,
    Penalty,
    UrlItem,
)
from meldpunt.takedown.vocabulary import NoticeKind, NoticeStatus

from .hosters import check_asn

__all__ = ["HosterRecord", "MonthRow", "RecordEvent", "RecordTotals", "hoster_record"]

#: The most months and events a record shows (the newest).
MAX_MONTHS = 120
MAX_EVENTS = 1000


@dataclass
class MonthRow:
    month: str  # 2026-03
    notified: int = 0
    ignored: int = 0
    renotices: int = 0
    offline: int = 0


@dataclass(frozen=True)
class RecordEvent:
    at: str
    kind: str  # order_issued, order_met, order_late, order_unmet, penalty, fine, objection, appeal
    ref: str
    text: str
    amount_cents: int | None = None


@dataclass
class RecordTotals:
    notices: int = 0  # messages sent to the network's abuse contacts (notices and re-notices)
    notified: int = 0
    ignored: int = 0
    renotices: int = 0
    offline: int = 0
    orders: int = 0
    orders_by_status: dict[str, int] = field(default_factory=dict)
    penalties: int = 0
    penalty_cents: int = 0
    fines: int = 0
    fine_cents: int = 0  # what stands after objection and appeal


@dataclass
class HosterRecord:
    asn: int
    name: str | None
    contacts: list[str]
    addresses: int | None
    customers: int | None
    turnover_cents: int | None
    totals: RecordTotals
    months: list[MonthRow]
    events: list[RecordEvent]

    def plain(self) -> dict[str, Any]:
        return asdict(self)


def _month(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def hoster_record(session: Session, asn: int) -> HosterRecord:
    asn = check_asn(asn)
    facts = session.get(HosterFacts, asn)
    contacts = list(
        session.scalars(
            select(AbuseContact.name).where(AbuseContact.asn == asn).order_by(AbuseContact.name)
        )
    )
    owner = session.scalar(select(UrlItem.notice_owner).where(UrlItem.notice_asn == asn).limit(1))
    totals = RecordTotals()
    months: dict[str, MonthRow] = {}
    # one pass over the network's noticed items, by month of first notice (bounded memory)
    query = (
        select(UrlItem.first_notice_at, UrlItem.escalated_at, UrlItem.renotices, UrlItem.state)
        .where(UrlItem.notice_asn == asn, UrlItem.first_notice_at.is_not(None))
        .execution_options(yield_per=5000)
    )
    for first, escalated, renotices, state in session.execute(query):
        assert first is not None
        row = months.get(_month(first))
        if row is None:
            row = months[_month(first)] = MonthRow(_month(first))
        row.notified += 1
        row.ignored += escalated is not None
        row.renotices += renotices or 0
        row.offline += state == ItemState.offline
    for row in months.values():
        totals.notified += row.notified
        totals.ignored += row.ignored
        totals.renotices += row.renotices
        totals.offline += row.offline
    totals.notices = (
        session.scalar(
            select(func.count())
            .select_from(Notice)
            .join(AbuseContact, AbuseContact.id == Notice.contact_id)
            .where(
                AbuseContact.asn == asn,
                Notice.status == NoticeStatus.sent,
                Notice.kind.in_((NoticeKind.notice, NoticeKind.renotice)),
            )
        )
        or 0
    )
    events: list[RecordEvent] = []
    for order in session.scalars(select(Order).where(Order.asn == asn).order_by(Order.issued_at)):
        totals.orders += 1
        totals.orders_by_status[order.status] = totals.orders_by_status.get(order.status, 0) + 1
        events.append(RecordEvent(order.issued_at.isoformat(), "order_issued", order.ref,
                                  f"order to remove within {order.hours:g} hours"))  # fmt: skip
        if order.status in ("met", "late") and order.gone_at is not None:
            events.append(RecordEvent(order.gone_at.isoformat(), f"order_{order.status}",
                                      order.ref, f"order {order.status}"))  # fmt: skip
        elif order.status == "unmet":
            events.append(RecordEvent(order.deadline_at.isoformat(), "order_unmet", order.ref,
                                      "deadline passed with material online"))  # fmt: skip
        elif order.status == "withdrawn" and order.withdrawn_at is not None:
            events.append(RecordEvent(order.withdrawn_at.isoformat(), "order_withdrawn",
                                      order.ref, "order withdrawn"))  # fmt: skip
    refs = dict(session.execute(select(Order.id, Order.ref).where(Order.asn == asn)).all())
    for penalty in session.scalars(
        select(Penalty).where(Penalty.asn == asn).order_by(Penalty.due_at, Penalty.id)
    ):
        totals.penalties += 1
        totals.penalty_cents += penalty.amount_cents
        events.append(RecordEvent(penalty.due_at.isoformat(), "penalty",
                                  refs.get(penalty.order_id, str(penalty.order_id)),
                                  f"penalty payment {penalty.seq} forfeited",
                                  penalty.amount_cents))  # fmt: skip
    for fine in session.scalars(select(Fine).where(Fine.asn == asn).order_by(Fine.decided_at)):
        totals.fines += 1
        totals.fine_cents += fine.final_cents
        events.append(RecordEvent(fine.decided_at.isoformat(), "fine", fine.ref,
                                  f"fine decided ({fine.legal_basis[:80]})",
                                  fine.amount_cents))  # fmt: skip
        if fine.objection_decided_at is not None:
            events.append(RecordEvent(fine.objection_decided_at.isoformat(), "objection",
                                      fine.ref, f"objection: {fine.objection_outcome}",
                                      fine.final_cents))  # fmt: skip
        if fine.appeal_decided_at is not None:
            events.append(RecordEvent(fine.appeal_decided_at.isoformat(), "appeal", fine.ref,
                                      f"appeal: {fine.appeal_outcome}",
                                      fine.final_cents))  # fmt: skip
    events.sort(key=lambda e: e.at)
    shown = sorted(months.values(), key=lambda m: m.month)[-MAX_MONTHS:]
    return HosterRecord(
        asn=asn,
        name=(facts.name if facts and facts.name else None) or owner,
        contacts=contacts,
        addresses=facts.addresses if facts else None,
        customers=facts.customers if facts else None,
        turnover_cents=facts.turnover_cents if facts else None,
        totals=totals,
        months=shown,
        events=events[-MAX_EVENTS:],
    )


def known_hosters(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(HosterFacts)) or 0
