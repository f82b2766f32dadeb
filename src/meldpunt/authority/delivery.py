"""Delivering orders by mail (a worker step, like ``takedown.sending``).

An order is due to be mailed when issued (``send_due_at``). Its Message-ID was fixed when it
was issued, so a message sent again after a crash is the same message. The mail carries the
order as text and as an HTML document attachment, with the signed acknowledgement link. A
failed attempt is retried with backoff (``smtp_retry_minutes`` doubling, at most a day) until
``smtp_attempts``; then, or on a refusal, delivery has failed: ``send_error`` says why and stays
visible, and the authority can send it again (``resend``). The relay is called outside any
transaction. The API is the other way of delivery: the hoster's acknowledgement is proof of it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.reports import smtp
from meldpunt.reports.context import HotlineContext
from meldpunt.store.models import AbuseContact, Case, Order, OrderItem, UrlItem
from meldpunt.takedown.sending import backoff

from .common import is_postgres, locked, write_lock
from .document import OrderDocument, render_html, render_text, utc_time
from .errors import Conflict, NotFound
from .links import order_link
from .vocabulary import OrderStatus

__all__ = ["compose_order", "document_of", "resend", "send_due_orders"]

log = logging.getLogger(__name__)

ACTOR = "worker"
LEASE = timedelta(minutes=5)


def document_of(session: Session, order: Order, link: str | None, authority: str) -> OrderDocument:
    contact = session.get(AbuseContact, order.contact_id) if order.contact_id else None
    case = session.get(Case, order.case_id)
    urls = list(
        session.scalars(
            select(UrlItem.url)
            .join(OrderItem, OrderItem.item_id == UrlItem.id)
            .where(OrderItem.order_id == order.id)
            .order_by(UrlItem.id)
        )
    )
    hoster = ", ".join(
        p for p in (contact.name if contact else None, order.network_owner,
                    f"AS{order.asn}" if order.asn else None) if p
    ) or "the hoster"  # fmt: skip
    return OrderDocument(
        ref=order.ref,
        authority=authority,
        hoster=hoster,
        recipient=order.recipient or "",
        issued_at=order.issued_at,
        deadline_at=order.deadline_at,
        hours=order.hours,
        urls=urls,
        legal_basis=order.legal_basis,
        reasons=order.reasons,
        penalty_cents=order.penalty_cents or 0,
        penalty_period_hours=order.penalty_period_hours or 0,
        penalty_cap_cents=order.penalty_cap_cents or 0,
        link=link,
        case_ref=case.ref if case else "",
    )


def compose_order(context: HotlineContext, doc: OrderDocument, message_id: str) -> EmailMessage:
    settings = context.settings
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = doc.recipient
    message["Subject"] = (
        f"Removal order {doc.ref}: {len(doc.urls)} URL(s) by {utc_time(doc.deadline_at)}"
    )
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(clock.now())
    message["X-Meldpunt-Order"] = doc.ref
    message.set_content(render_text(doc))
    message.add_attachment(
        render_html(doc).encode("utf-8"),
        maintype="text",
        subtype="html",
        filename=f"order-{doc.ref}.html",
    )
    return message


def _claim(context: HotlineContext, limit: int) -> list[int]:
    now = clock.now()
    due = (
        Order.send_due_at.is_not(None),
        Order.send_due_at <= now,
        Order.delivered_at.is_(None),
        Order.status != OrderStatus.withdrawn,
        or_(Order.lease_until.is_(None), Order.lease_until <= now),
    )
    with context.sessions() as session:
        if session.scalar(select(Order.id).where(*due).limit(1)) is None:
            return []
    with context.sessions() as session, session.begin():
        write_lock(session)
        query = select(Order).where(*due).order_by(Order.send_due_at, Order.id).limit(limit)
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query.execution_options(populate_existing=True)))
        lease = max(LEASE, timedelta(seconds=context.settings.smtp_timeout_seconds * 6))
        for row in rows:
            row.lease_until = now + lease
        return [row.id for row in rows]


def _failed(context: HotlineContext, order_id: int, problem: str, *, permanent: bool) -> None:
    now = clock.now()
    with context.sessions() as session, session.begin():
        write_lock(session)
        order = session.scalars(locked(session, select(Order).where(Order.id == order_id))).first()
        if order is None or order.delivered_at is not None:
            return
        order.send_attempts += 1
        order.send_error = problem[:2000]
        order.lease_until = None
        order.updated_at = now
        if permanent or order.send_attempts >= context.settings.smtp_attempts:
            order.send_due_at = None
            audit.record(
                session,
                actor=ACTOR,
                action="authority.order_delivery_failed",
                subject=("order", order.id),
                details={"ref": order.ref, "attempts": order.send_attempts,
                         "error": problem[:500]},
            )  # fmt: skip
            log.warning("order %s could not be delivered: %s", order.ref, problem)
            return
        order.send_due_at = now + backoff(context.settings, order.send_attempts)


def _send_one(context: HotlineContext, order_id: int) -> None:
    with context.sessions() as session:
        order = session.get(Order, order_id)
        if order is None or order.delivered_at is not None:
            return
        link = order_link(context.settings.public_url, context.link_key, order.id, order.issued_at)
        doc = document_of(session, order, link, context.settings.authority_name)
        message = compose_order(context, doc, order.message_id)
    try:
        refused = smtp.send(message, context.mail_relay)
    except smtp.MailRefused as exc:
        _failed(context, order_id, str(exc), permanent=True)
        return
    except smtp.MailFailed as exc:
        _failed(context, order_id, str(exc), permanent=False)
        return
    now = clock.now()
    with context.sessions() as session, session.begin():
        write_lock(session)
        order = session.scalars(locked(session, select(Order).where(Order.id == order_id))).first()
        if order is None or order.delivered_at is not None:
            return
        order.send_attempts += 1
        order.delivered_at = now
        order.send_due_at = order.lease_until = None
        order.send_error = f"refused by the relay: {', '.join(refused)}" if refused else None
        order.updated_at = now
        audit.record(
            session,
            actor=ACTOR,
            action="authority.order_delivered",
            subject=("order", order.id),
            details={"ref": order.ref, "via": "mail", "recipient": order.recipient,
                     "message_id": order.message_id, "attempts": order.send_attempts},
        )  # fmt: skip


def send_due_orders(context: HotlineContext, limit: int) -> int:
    """Mail the orders whose delivery is due; returns how many were tried."""
    claimed = _claim(context, limit)
    for order_id in claimed:
        try:
            _send_one(context, order_id)
        except Exception as exc:  # one odd order never holds the others
            log.exception("order %d could not be sent", order_id)
            _failed(context, order_id, f"{type(exc).__name__}: {exc}", permanent=True)
    return len(claimed)


def resend(session: Session, order_id: int, *, actor: str) -> Order:
    """Try the mail again after delivery failed (same Message-ID, attempts from zero)."""
    write_lock(session)
    order = session.scalars(locked(session, select(Order).where(Order.id == order_id))).first()
    if order is None:
        raise NotFound(f"no order {order_id}")
    if order.delivered_at is not None or order.status == OrderStatus.withdrawn:
        raise Conflict(f"order {order.ref} was delivered already or withdrawn")
    if order.send_due_at is not None:
        raise Conflict(f"order {order.ref} is being sent")
    order.send_due_at = clock.now()
    order.send_attempts = 0
    audit.record(
        session,
        actor=actor,
        action="authority.order_resent",
        subject=("order", order.id),
        details={"ref": order.ref, "last_error": (order.send_error or "")[:500]},
    )
    # fmt: skip
    session.flush()
    return order
