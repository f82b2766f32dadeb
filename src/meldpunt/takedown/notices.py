"""Notices: grouping items per abuse contact, sending, re-notices and police notices.

``run_notices`` is the worker's step. Each round it

1. puts items that are ready and attributed (``state='ready'``, ``attributed_at`` and
   ``contact_id`` set, ``due_at`` come) into the ``open`` notice of their contact, made with
   ``due_at = now + contact.group_seconds`` (the grouping window) and a ``message_id`` of its
   own; the item's ``due_at`` becomes NULL: the notice carries it now;
2. puts items graded "first police" (``state='police'``, ``due_at`` come) into an open
   ``police`` notice to the police contact of the hotline's country (none in the directory: the
   item waits an hour and says why in ``last_error`` and a ``contact_needed`` event);
3. puts items noticed or escalated whose ``renotice_at`` has come into an open ``renotice`` of
   their current contact;
4. sends the open notices whose ``due_at`` has come.

Sending (``takedown.sending``): a notice is claimed with a lease (``lease_until``, ``FOR
UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's write lock), so two workers never send one notice
at once. Its items are
read again: those that went offline, were attributed anew or left their state since are
dropped from it, not mailed. The message is composed (``compose``) and handed to the relay
outside any transaction; then one transaction marks the notice sent and moves each item on
(``sending._mark_sent``). ``MailFailed``: ``due_at`` moves on, doubling from
``smtp_retry_minutes`` up to a day, and after ``smtp_attempts`` the notice is ``failed``, as at
once on ``MailRefused``; its items keep waiting and an analyst sees the failed notice
(``/ui/notices``), who may send it again (``retry_notice``).

The Message-ID is fixed when the notice is made, before the first attempt. A worker that dies
after the relay accepted a message and before the commit leaves the notice claimed until the
lease ends; the next worker sends the same message, with the same Message-ID, again. Receivers
(and their mail systems) drop a second copy by its Message-ID; meldpunt never makes a second
Message-ID for one notice.

Sending is never held for the weekend unless the contact's ``hold_weekends`` says so: then a
notice that comes due on a Saturday or Sunday (UTC) waits until Monday 00:00 UTC, and keeps
collecting items until then.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from meldpunt import clock
from meldpunt.config import Settings
from meldpunt.reports import items
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.vocabulary import Event, ItemState
from meldpunt.store.models import AbuseContact, Notice, NoticeItem, UrlItem
from meldpunt.takedown.compose import make_message_id
from meldpunt.takedown.sending import (
    ACTOR,
    RENOTICE_STATES,
    backoff,
    hold_until,
    is_postgres,
    retry_notice,
    send_due,
)
from meldpunt.takedown.vocabulary import ContactKind, NoticeKind, NoticeStatus

__all__ = [
    "ACTOR",
    "POLICE_RETRY",
    "backoff",
    "group_police",
    "group_ready",
    "group_renotices",
    "hold_until",
    "police_contact",
    "retry_notice",
    "run_notices",
    "send_due",
]

log = logging.getLogger(__name__)

#: An item for the police waits this long before the directory is asked again for a contact.
POLICE_RETRY = timedelta(hours=1)
#: How long a claimed item stays with its claimer before grouping takes it (one transaction).
_ITEM_LEASE = timedelta(minutes=5)


def run_notices(context: HotlineContext, limit: int) -> int:
    """The worker's step: group due items into notices, then send the due notices."""
    done = group_ready(context, limit)
    done += group_police(context, limit)
    done += group_renotices(context, limit)
    done += send_due(context, limit)
    return done


# --- grouping -------------------------------------------------------------------------------------


def _new_notice(
    session: Session, contact: AbuseContact, kind: str, now: datetime, sender_email: str
) -> Notice:
    notice = Notice(
        contact_id=contact.id,
        kind=kind,
        status=NoticeStatus.open,
        created_at=now,
        due_at=now + timedelta(seconds=contact.group_seconds),
        attempts=0,
        message_id=f"<pending.{secrets.token_hex(16)}>",  # until the row has its id
    )
    session.add(notice)
    session.flush()
    notice.message_id = make_message_id(notice.id, sender_email)
    return notice


def _open_notices(
    session: Session, contact_ids: Iterable[int], kind: str, now: datetime
) -> dict[int, AbuseContact | Notice]:
    """Lock the contacts (in id order, so that two groupers cannot deadlock) and find the open
    notice of ``kind`` of each that still takes items: not due yet, never tried, not claimed."""
    ids = sorted(set(contact_ids))
    query = select(AbuseContact).where(AbuseContact.id.in_(ids)).order_by(AbuseContact.id)
    if is_postgres(session):
        query = query.with_for_update()
    found: dict[int, AbuseContact | Notice] = {c.id: c for c in session.scalars(query)}
    notices = select(Notice).where(
        Notice.contact_id.in_(ids),
        Notice.kind == kind,
        Notice.status == NoticeStatus.open,
        Notice.attempts == 0,
        Notice.due_at > now,
        or_(Notice.lease_until.is_(None), Notice.lease_until <= now),
    )
    if is_postgres(session):
        notices = notices.with_for_update()
    for notice in session.scalars(notices.order_by(Notice.due_at.desc(), Notice.id.desc())):
        if not isinstance(found.get(notice.contact_id), Notice):
            found[notice.contact_id] = notice
    return found


def _put_in_notices(
    session: Session,
    placed: Sequence[tuple[UrlItem, int]],
    kind: str,
    settings: Settings,
    now: datetime,
) -> list[int]:
    """Put each (item, contact id) into the open ``kind`` notice of that contact (made when
    there is none); returns the notices' ids."""
    chosen = _open_notices(session, (contact_id for _, contact_id in placed), kind, now)
    for contact_id, value in list(chosen.items()):
        if isinstance(value, AbuseContact):
            chosen[contact_id] = _new_notice(session, value, kind, now, settings.smtp_from)
    notice_ids = {c: n.id for c, n in chosen.items()}
    present: set[tuple[int, int]] = {
        (notice_id, item_id)
        for notice_id, item_id in session.execute(
            select(NoticeItem.notice_id, NoticeItem.item_id).where(
                NoticeItem.notice_id.in_(set(notice_ids.values())),
                NoticeItem.item_id.in_([item.id for item, _ in placed]),
            )
        )
    }
    for item, contact_id in placed:
        pair = (notice_ids[contact_id], item.id)
        if pair not in present:
            session.add(NoticeItem(notice_id=pair[0], item_id=pair[1]))
            present.add(pair)
    session.flush()
    return sorted(set(notice_ids.values()))


def _any_due(
    context: HotlineContext,
    due: InstrumentedAttribute[datetime | None],
    where: Sequence[ColumnElement[bool]],
    now: datetime,
) -> bool:
    """A plain read first: an idle worker never takes SQLite's write lock."""
    with context.sessions() as session:
        return items.any_due(session, due, where, now)


def group_ready(context: HotlineContext, limit: int) -> int:
    """Put ready, attributed items whose ``due_at`` has come into their contact's notice."""
    now = clock.now()
    where = [
        UrlItem.state == ItemState.ready,
        UrlItem.attributed_at.is_not(None),
        UrlItem.contact_id.is_not(None),
    ]
    if not _any_due(context, UrlItem.due_at, where, now):
        return 0
    with context.sessions() as session, session.begin():
        rows = items.claim(session, UrlItem.due_at, where, limit=limit, lease=_ITEM_LEASE, now=now)
        if not rows:
            return 0
        placed = [(row, row.contact_id) for row in rows if row.contact_id is not None]
        _put_in_notices(session, placed, NoticeKind.notice, context.settings, now)
        for row in rows:
            row.due_at = None  # the notice carries it now
            row.lease_until = None
            row.updated_at = now
    return len(rows)


def group_renotices(context: HotlineContext, limit: int) -> int:
    """Put noticed or escalated items whose ``renotice_at`` has come into an open re-notice of
    their current contact."""
    now = clock.now()
    where = [UrlItem.state.in_(RENOTICE_STATES), UrlItem.contact_id.is_not(None)]
    if not _any_due(context, UrlItem.renotice_at, where, now):
        return 0
    with context.sessions() as session, session.begin():
        rows = items.claim(
            session, UrlItem.renotice_at, where, limit=limit, lease=_ITEM_LEASE, now=now
        )
        if not rows:
            return 0
        placed = [(row, row.contact_id) for row in rows if row.contact_id is not None]
        _put_in_notices(session, placed, NoticeKind.renotice, context.settings, now)
        for row in rows:
            row.renotice_at = None  # set again when the re-notice is sent
            row.updated_at = now
    return len(rows)


def police_contact(session: Session, country: str) -> AbuseContact | None:
    """The approved police contact of ``country`` with an e-mail address (the oldest first)."""
    return session.scalars(
        select(AbuseContact)
        .where(
            AbuseContact.kind == ContactKind.police,
            AbuseContact.country == country,
            AbuseContact.approved.is_(True),
            AbuseContact.email.is_not(None),
        )
        .order_by(AbuseContact.id)
        .limit(1)
    ).first()


def group_police(context: HotlineContext, limit: int) -> int:
    """Put items graded "first police" whose ``due_at`` has come into an open police notice;
    without a police contact they wait ``POLICE_RETRY`` and say why."""
    now = clock.now()
    where = [UrlItem.state == ItemState.police]
    if not _any_due(context, UrlItem.due_at, where, now):
        return 0
    country = context.settings.hotline_country
    with context.sessions() as session, session.begin():
        rows = items.claim(session, UrlItem.due_at, where, limit=limit, lease=_ITEM_LEASE, now=now)
        if not rows:
            return 0
        contact = police_contact(session, country)
        if contact is None:
            problem = f"no approved police contact with an e-mail address for {country}"
            log.warning("%s: %d item(s) wait for one", problem, len(rows))
            notes = []
            for row in rows:
                if row.last_error != problem:
                    notes.append(
                        items.Note(
                            row.id,
                            Event.contact_needed,
                            ACTOR,
                            {"for": "police", "country": country},
                        )
                    )
                row.last_error = problem
                row.due_at = now + POLICE_RETRY
                row.updated_at = now
            items.note(session, notes)
            return len(rows)
        _put_in_notices(
            session, [(row, contact.id) for row in rows], NoticeKind.police, context.settings, now
        )
        for row in rows:
            row.due_at = None
            row.lease_until = None
            row.last_error = None
            row.updated_at = now
    return len(rows)
