"""Orders: a binding order to one hoster to remove listed URLs within a deadline.

An order is issued on a case, for the case's items or a subset (each still watched by the
hotline's re-checks: noticed, escalated or forwarded; by default those not in a running order
already), with

- ``hours`` until the deadline: ``authority_order_hours`` unless shorter (or longer) is given,
  more than 0 and never more than ``authority_max_order_hours``; ``deadline_at = issued_at +
  hours``;
- the legal basis (``authority_legal_basis`` unless given) and the reasons (required);
- the penalty payment: an amount per period and a cap (``authority_penalty_*`` unless given);
- the recipient: the e-mail address of the hoster's abuse contact, unless another is given;
- ``public``: whether the decision appears on ``/decisions`` (also later, ``publish``).

On issue each listed item's next re-check is brought forward to the deadline at the latest, so
the hotline's re-checks (``takedown.lifecycle``) look at every URL at the deadline, and the
order is due to be mailed (``authority.delivery``) and evaluated at the deadline
(``authority.compliance``). A hoster acknowledges through the signed link in the mail or by API
(``acknowledge``). Every step is audited in its transaction.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from meldpunt import audit, clock, errors
from meldpunt.config import Settings
from meldpunt.reports.intake import check_email
from meldpunt.reports.vocabulary import ItemState
from meldpunt.store.models import AbuseContact, Case, CaseItem, Order, OrderItem, Penalty, UrlItem

from .cases import adopt_hoster
from .common import (
    MAX_LEGAL_BASIS,
    MAX_REASONS,
    check_ids,
    check_number,
    free_text,
    iso,
    locked,
    new_ref,
    publish,
    write_lock,
)
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .vocabulary import FINAL_ORDER_STATUSES, CaseState, OrderStatus

__all__ = [
    "WATCHED_STATES",
    "acknowledge",
    "check_hoster",
    "get_order",
    "issue_order",
    "list_orders",
    "order_summary",
    "publish_order",
    "withdraw_order",
]

#: The states whose items the hotline re-checks: the only ones an order can be judged on.
WATCHED_STATES = (ItemState.noticed, ItemState.escalated, ItemState.forwarded)
#: Running orders: penalty payments may still accrue.
RUNNING = (OrderStatus.issued, OrderStatus.unmet)
MAX_CENTS = 10**15


def _cents(euros: float | None, default: float, what: str) -> int:
    value = default if euros is None else check_number(euros, what, low=0, high=MAX_CENTS / 100)
    return round(value * 100)


def _message_id(ref: str, sender: str) -> str:
    domain = sender.rpartition("@")[2].strip().strip(">").lower()
    if not re.fullmatch(r"[a-z0-9.-]+", domain or "-"):
        domain = "meldpunt.invalid"
    return f"<order-{ref.lower()}.{secrets.token_hex(8)}@{domain}>"


def issue_order(
    session: Session,
    settings: Settings,
    *,
    case_id: int,
    actor: str,
    reasons: str,
    item_ids: Sequence[int] | None = None,
    hours: float | None = None,
    legal_basis: str | None = None,
    penalty_euros: float | None = None,
    penalty_period_hours: float | None = None,
    penalty_cap_euros: float | None = None,
    public: bool = False,
    recipient: str | None = None,
) -> Order:
    """Issue an order (flushed, audited; the caller commits). ``InvalidInput`` names what to
    fix: a deadline beyond the maximum, no reasons, an item not in the case or not watched."""
    maximum = settings.authority_max_order_hours
    if hours is None:
        hours = min(settings.authority_order_hours, maximum)
    else:
        try:
            hours = float(hours)
        except (TypeError, ValueError):
            raise InvalidInput("hours must be a number") from None
        if hours != hours or hours in (float("inf"), float("-inf")) or hours <= 0:
            raise InvalidInput("an order's deadline must be more than 0 hours away")
        if hours > maximum:
            raise InvalidInput(
                f"an order's deadline may be at most {maximum:g} hours "
                f"(authority_max_order_hours); {hours:g} was given"
            )
    reasons_text = free_text(reasons, "the reasons", MAX_REASONS)
    basis = free_text(legal_basis, "the legal basis", MAX_LEGAL_BASIS, required=False)
    basis = basis or settings.authority_legal_basis
    penalty = _cents(penalty_euros, settings.authority_penalty_euros, "the penalty payment")
    cap = _cents(penalty_cap_euros, settings.authority_penalty_cap_euros, "the penalty cap")
    period = (
        settings.authority_penalty_period_hours
        if penalty_period_hours is None
        else check_number(
            penalty_period_hours, "the penalty period (hours)", low=0.01, high=24 * 366
        )  # fmt: skip
    )
    try:
        given_recipient = check_email(recipient) if recipient else None
    except errors.InvalidInput as exc:
        raise InvalidInput(str(exc)) from None

    write_lock(session)
    case = session.scalars(locked(session, select(Case).where(Case.id == case_id))).first()
    if case is None:
        raise NotFound(f"no case {case_id}")
    if case.state != CaseState.open:
        raise Conflict(f"case {case.ref} is closed")
    adopt_hoster(session, case)
    in_case = set(session.scalars(select(CaseItem.item_id).where(CaseItem.case_id == case.id)))
    if item_ids is None:
        ids = sorted(in_case)
        rows = list(
            session.scalars(
                locked(session, select(UrlItem).where(UrlItem.id.in_(ids), UrlItem.state.in_(
                    WATCHED_STATES)).order_by(UrlItem.id))
            )
        )  # fmt: skip
        busy = set(
            session.scalars(
                select(OrderItem.item_id)
                .join(Order, Order.id == OrderItem.order_id)
                .where(OrderItem.item_id.in_([r.id for r in rows]), Order.status.in_(RUNNING))
            )
        )
        rows = [r for r in rows if r.id not in busy]  # those are ordered already
        if not rows:
            raise InvalidInput(
                f"case {case.ref} has no URL that is still online, watched by the re-checks and "
                "not in a running order"
            )
    else:
        ids = check_ids(item_ids, "URLs")
        if not ids:
            raise InvalidInput("an order names at least one URL")
        outside = [i for i in ids if i not in in_case]
        if outside:
            raise InvalidInput(
                f"item(s) {', '.join(map(str, outside[:10]))} are not in case {case.ref}: "
                "add them to the case first"
            )
        rows = list(
            session.scalars(
                locked(session, select(UrlItem).where(UrlItem.id.in_(ids)).order_by(UrlItem.id))
            )
        )
        unwatched = [r for r in rows if r.state not in WATCHED_STATES]
        if unwatched:
            first = unwatched[0]
            raise InvalidInput(
                f"item {first.id} is {first.state}: an order names URLs the hotline noticed and "
                "re-checks (noticed, escalated or forwarded)"
            )
    running = session.execute(
        select(OrderItem.item_id, Order.ref)
        .join(Order, Order.id == OrderItem.order_id)
        .where(OrderItem.item_id.in_([r.id for r in rows]), Order.status.in_(RUNNING))
    ).first()
    if running is not None:
        raise Conflict(f"item {running[0]} is in running order {running[1]} already")
    contact = session.get(AbuseContact, case.contact_id) if case.contact_id else None
    to = given_recipient or (contact.email if contact is not None else None)
    if not to:
        raise InvalidInput(
            "the hoster has no abuse contact with an e-mail address: give the recipient"
        )
    now = clock.now()
    deadline = now + timedelta(hours=hours)
    ref = new_ref("O", now)
    order = Order(
        ref=ref,
        case_id=case.id,
        contact_id=case.contact_id,
        asn=case.asn,
        network_owner=case.network_owner,
        recipient=to,
        status=OrderStatus.issued,
        legal_basis=basis,
        reasons=reasons_text,
        issued_by=actor,
        issued_at=now,
        hours=hours,
        deadline_at=deadline,
        updated_at=now,
        message_id=_message_id(ref, settings.smtp_from),
        send_due_at=now,
        send_attempts=0,
        check_at=deadline,
        penalty_cents=penalty,
        penalty_period_hours=period,
        penalty_cap_cents=cap,
        penalty_total_cents=0,
        next_penalty_at=deadline if penalty > 0 and cap > 0 else None,
        public=bool(public),
        published_at=now if public else None,
    )
    session.add(order)
    session.flush()
    session.add_all(OrderItem(order_id=order.id, item_id=r.id) for r in rows)
    for row in rows:  # the re-checks look at every URL at the deadline
        if row.next_check_at is None or row.next_check_at > deadline:
            row.next_check_at = deadline
    case.updated_at = now
    audit.record(
        session,
        actor=actor,
        action="authority.order_issued",
        subject=("order", order.id),
        details={
            "ref": ref,
            "case": case.ref,
            "contact_id": order.contact_id,
            "asn": order.asn,
            "recipient": to,
            "items": [r.id for r in rows],
            "hours": hours,
            "deadline_at": deadline.isoformat(),
            "legal_basis": basis[:500],
            "penalty_cents": penalty,
            "penalty_period_hours": period,
            "penalty_cap_cents": cap,
            "public": bool(public),
        },
    )
    session.flush()
    return order


def _order(session: Session, order_id: int, *, lock: bool = False) -> Order:
    query = select(Order).where(Order.id == order_id)
    order = session.scalars(locked(session, query) if lock else query).first()
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


def check_hoster(session: Session, order_id: int, org_id: int) -> Order:
    """The order, if it went to a contact of organisation ``org_id`` (``Forbidden`` if not)."""
    order = _order(session, order_id)
    contact = session.get(AbuseContact, order.contact_id) if order.contact_id else None
    if contact is None or contact.org_id is None or contact.org_id != org_id:
        raise Forbidden(f"order {order_id} was not sent to your organisation")
    return order


def acknowledge(session: Session, order_id: int, *, actor: str, via: str) -> Order:
    """Record the hoster's acknowledgement (the first one counts; later ones change nothing).
    An acknowledgement is also proof of delivery."""
    write_lock(session)
    order = _order(session, order_id, lock=True)
    if order.status == OrderStatus.withdrawn:
        raise Conflict(f"order {order.ref} was withdrawn")
    if order.acknowledged_at is not None:
        return order
    now = clock.now()
    order.acknowledged_at = now
    order.acknowledged_by = actor[:200]
    details: dict[str, Any] = {"ref": order.ref, "via": via}
    if order.delivered_at is None:
        order.delivered_at = now
        details["delivered"] = True
    order.updated_at = now
    audit.record(session, actor=actor, action="authority.order_acknowledged",
                 subject=("order", order.id), details=details)  # fmt: skip
    session.flush()
    return order


def withdraw_order(
    session: Session, order_id: int, *, actor: str, note: str | None = None
) -> Order:
    """Withdraw a running order: no more evaluations, deliveries or penalty payments (those
    already forfeited stay)."""
    note = free_text(note, "the note", 10_000, required=False)
    write_lock(session)
    order = _order(session, order_id, lock=True)
    if order.status in FINAL_ORDER_STATUSES:
        raise Conflict(f"order {order.ref} is {order.status} already")
    now = clock.now()
    order.status = OrderStatus.withdrawn
    order.withdrawn_at = order.updated_at = now
    order.check_at = order.next_penalty_at = None
    if order.delivered_at is None:
        order.send_due_at = None
    audit.record(session, actor=actor, action="authority.order_withdrawn",
                 subject=("order", order.id),
                 details={"ref": order.ref, "note": (note or "")[:500] or None})  # fmt: skip
    session.flush()
    return order


def publish_order(session: Session, order_id: int, *, actor: str) -> Order:
    """Mark the order public (it appears on ``/decisions``); publishing twice changes nothing."""
    write_lock(session)
    order = _order(session, order_id, lock=True)
    publish(session, order, "order", actor=actor)
    return order


# --- reading ------------------------------------------------------------------------------------


def order_summary(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "ref": order.ref,
        "case_id": order.case_id,
        "status": order.status,
        "contact_id": order.contact_id,
        "asn": order.asn,
        "network_owner": order.network_owner,
        "recipient": order.recipient,
        "issued_by": order.issued_by,
        "issued_at": iso(order.issued_at),
        "hours": order.hours,
        "deadline_at": iso(order.deadline_at),
        "legal_basis": order.legal_basis,
        "reasons": order.reasons,
        "delivered_at": iso(order.delivered_at),
        "send_attempts": order.send_attempts,
        "send_error": order.send_error,
        "send_due_at": iso(order.send_due_at),
        "acknowledged_at": iso(order.acknowledged_at),
        "acknowledged_by": order.acknowledged_by,
        "check_at": iso(order.check_at),
        "gone_at": iso(order.gone_at),
        "penalty_cents": order.penalty_cents,
        "penalty_period_hours": order.penalty_period_hours,
        "penalty_cap_cents": order.penalty_cap_cents,
        "penalty_total_cents": order.penalty_total_cents,
        "next_penalty_at": iso(order.next_penalty_at),
        "public": order.public,
        "published_at": iso(order.published_at),
        "withdrawn_at": iso(order.withdrawn_at),
    }


def list_orders(
    session: Session,
    *,
    status: str | None = None,
    org_id: int | None = None,
    case_id: int | None = None,
    asn: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Orders, newest first; ``org_id``: only those to that organisation's contacts."""
    query = select(Order).order_by(Order.issued_at.desc(), Order.id.desc())
    if status:
        query = query.where(Order.status == status)
    if case_id is not None:
        query = query.where(Order.case_id == case_id)
    if asn is not None:
        query = query.where(Order.asn == asn)
    if org_id is not None:
        query = query.join(
            AbuseContact, and_(AbuseContact.id == Order.contact_id, AbuseContact.org_id == org_id)
        )
    return [order_summary(o) for o in session.scalars(query.limit(limit).offset(offset))]


def get_order(session: Session, order_id: int) -> dict[str, Any]:
    """An order with its compliance per URL and its penalty payments."""
    from .compliance import judge_items

    order = _order(session, order_id)
    rows = list(
        session.execute(
            select(UrlItem, OrderItem)
            .join(OrderItem, OrderItem.item_id == UrlItem.id)
            .where(OrderItem.order_id == order.id)
            .order_by(UrlItem.id)
        )
    )
    verdicts = judge_items(session, order, [r for r, _ in rows])
    case = session.get(Case, order.case_id)
    contact = session.get(AbuseContact, order.contact_id) if order.contact_id else None
    penalties = session.scalars(
        select(Penalty).where(Penalty.order_id == order.id).order_by(Penalty.seq)
    )
    return {
        **order_summary(order),
        "case_ref": case.ref if case else None,
        "contact": contact.name if contact else None,
        "items": [
            {
                "id": row.id,
                "url": row.url,
                "state": row.state,
                "verdict": verdicts[row.id].verdict,
                "gone_at": iso(verdicts[row.id].gone_at),
                "why": verdicts[row.id].why,
                "recorded_gone_at": iso(link.gone_at),
                "last_seen_at": iso(row.last_seen_at),
            }
            for row, link in rows
        ],
        "penalties": [
            {
                "seq": p.seq,
                "due_at": iso(p.due_at),
                "forfeited_at": iso(p.forfeited_at),
                "amount_cents": p.amount_cents,
            }
            for p in penalties
        ],
    }


def order_ids_of_item(session: Session, item_id: int) -> list[int]:
    return list(session.scalars(select(OrderItem.order_id).where(OrderItem.item_id == item_id)))


__all__ += ["RUNNING", "order_ids_of_item"]
