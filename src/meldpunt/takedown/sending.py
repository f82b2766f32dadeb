"""Sending notices: claiming due ones with a lease, composing, handing them to the relay, and
recording what happened (see ``takedown.notices`` for the whole story).

A claimed notice's items are read again before composing: those that left (offline, attributed
anew, another state) are dropped, not mailed. The relay is called outside any transaction;
then one transaction marks the notice sent and moves each item on (``_advance``). Failures
retry with backoff (``backoff``) until ``smtp_attempts``; a refusal fails the notice at once.
The Message-ID was fixed when the notice was made, so a message sent again after a crash is the
same message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.config import Settings
from meldpunt.reports import items, smtp
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.errors import Conflict, NotFound
from meldpunt.reports.vocabulary import Event, ItemState
from meldpunt.store.models import AbuseContact, Item, Notice, NoticeItem, UrlItem
from meldpunt.takedown import answers
from meldpunt.takedown.compose import Draft, Earlier, ItemFacts, Sender, XarfInvalid, compose
from meldpunt.takedown.vocabulary import NoticeKind, NoticeStatus

__all__ = ["ACTOR", "MAX_BACKOFF", "backoff", "hold_until", "retry_notice", "send_due"]

log = logging.getLogger(__name__)

ACTOR = "worker"
#: Retries of a notice wait at most this long.
MAX_BACKOFF = timedelta(days=1)
RENOTICE_STATES = (ItemState.noticed, ItemState.escalated)


def is_postgres(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


# --- timing ---------------------------------------------------------------------------------------


def backoff(settings: Settings, attempts: int) -> timedelta:
    """The wait after failed attempt number ``attempts`` (1, 2, ...): ``smtp_retry_minutes``,
    doubling each time, at most a day."""
    minutes = settings.smtp_retry_minutes * 2 ** min(max(attempts - 1, 0), 20)
    return min(timedelta(minutes=minutes), MAX_BACKOFF)


def hold_until(moment: datetime) -> datetime | None:
    """For a contact that takes no notices at weekends: Monday 00:00 UTC when ``moment`` falls
    on a Saturday or Sunday (UTC), else None."""
    weekday = moment.weekday()  # Monday 0 ... Sunday 6
    if weekday < 5:
        return None
    monday = moment + timedelta(days=7 - weekday)
    return monday.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class _Prepared:
    notice_id: int
    kind: str
    item_ids: tuple[int, ...]
    message: EmailMessage


def _due_notices(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Notice.status == NoticeStatus.open,
        Notice.due_at.is_not(None),
        Notice.due_at <= now,
        or_(Notice.lease_until.is_(None), Notice.lease_until <= now),
    )


def _lease(settings: Settings) -> timedelta:
    """Long enough for a send (connect, and every SMTP step may take the timeout)."""
    return max(timedelta(minutes=5), timedelta(seconds=settings.smtp_timeout_seconds * 6))


def _claim_notices(context: HotlineContext, limit: int, now: datetime) -> tuple[list[int], int]:
    """Claim due notices (ids), and hold those of contacts that take none at weekends."""
    with context.sessions() as session:
        if session.scalar(select(Notice.id).where(*_due_notices(now)).limit(1)) is None:
            return [], 0
    with context.sessions() as session, session.begin():
        items.begin_write(session)
        query = (
            select(Notice).where(*_due_notices(now)).order_by(Notice.due_at, Notice.id).limit(limit)
        )
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query.execution_options(populate_existing=True)))
        holds = {
            c.id: c.hold_weekends
            for c in session.scalars(
                select(AbuseContact).where(AbuseContact.id.in_({r.contact_id for r in rows}))
            )
        }
        claimed, held = [], 0
        for row in rows:
            until = hold_until(now) if holds.get(row.contact_id) else None
            if until is not None:
                row.due_at = until  # collects items until Monday
                held += 1
                continue
            row.lease_until = now + _lease(context.settings)
            claimed.append(row.id)
    return claimed, held


def _still_due(notice: Notice, item: UrlItem) -> bool:
    """Whether ``item`` still belongs in ``notice`` (else it is dropped, not mailed)."""
    if notice.kind == NoticeKind.police:
        return item.state == ItemState.police
    if item.contact_id != notice.contact_id:
        return False  # attributed anew
    if notice.kind == NoticeKind.renotice:
        return item.state in RENOTICE_STATES
    return item.state == ItemState.ready and item.attributed_at is not None


def _facts(session: Session, rows: Sequence[UrlItem]) -> list[ItemFacts]:
    entries = {row.match_entry_id for row in rows if row.match_entry_id is not None}
    classes: dict[int, str] = {}
    if entries:
        for entry_id, raw, scheme in session.execute(
            select(Item.id, Item.category_raw, Item.category_scheme).where(Item.id.in_(entries))
        ):
            if raw and scheme == "industry":
                classes[entry_id] = raw
    return [
        ItemFacts(
            item_id=row.id,
            url=row.url,
            kind=row.kind,
            category=row.category,
            matched=row.match_entry_id is not None,
            raw_class=classes.get(row.match_entry_id) if row.match_entry_id else None,
            media=row.media,
            ip=row.ip,
            asn=row.asn,
            network_owner=row.network_owner,
            country=row.country,
            first_seen=row.first_seen_at or row.created_at,
            last_seen=row.last_seen_at,
            md5=row.md5,
            sha1=row.sha1,
            sha256=row.sha256,
            pdq=row.pdq,
        )
        for row in rows
    ]


def _earlier(session: Session, notice: Notice, item_ids: Sequence[int]) -> list[Earlier]:
    """The sent notices a re-notice follows: the latest one of each of its items."""
    rows = session.execute(
        select(NoticeItem.item_id, Notice.id, Notice.sent_at, Notice.message_id)
        .join(Notice, Notice.id == NoticeItem.notice_id)
        .where(
            NoticeItem.item_id.in_(item_ids),
            Notice.id != notice.id,
            Notice.status == NoticeStatus.sent,
            Notice.kind.in_((NoticeKind.notice, NoticeKind.renotice)),
            Notice.sent_at.is_not(None),
        )
    )
    latest: dict[int, Earlier] = {}
    for item_id, notice_id, sent_at, message_id in rows:
        assert sent_at is not None
        known = latest.get(item_id)
        if known is None or (sent_at, notice_id) > (known.sent_at, known.notice_id):
            latest[item_id] = Earlier(notice_id, sent_at, message_id)
    return sorted(set(latest.values()), key=lambda e: (e.sent_at, e.notice_id))


def _prepare(context: HotlineContext, notice_id: int) -> _Prepared | None:
    """Read the notice, drop what no longer belongs in it, compose its message. None: nothing
    to send (dropped empty, failed for good, or no longer this worker's)."""
    settings = context.settings
    with context.sessions() as session, session.begin():
        items.begin_write(session)
        notice = session.get(Notice, notice_id, with_for_update=is_postgres(session))
        if notice is None or notice.status != NoticeStatus.open:
            return None
        contact = session.get(AbuseContact, notice.contact_id)
        rows = list(
            session.scalars(
                select(UrlItem)
                .join(NoticeItem, NoticeItem.item_id == UrlItem.id)
                .where(NoticeItem.notice_id == notice_id)
                .order_by(UrlItem.id)
            )
        )
        keep = [row for row in rows if _still_due(notice, row)]
        dropped = [row.id for row in rows if row not in keep]
        if dropped:
            session.execute(
                delete(NoticeItem).where(
                    NoticeItem.notice_id == notice_id, NoticeItem.item_id.in_(dropped)
                )
            )
            log.info("notice %d: %d item(s) dropped before sending", notice_id, len(dropped))
        if not keep:
            session.delete(notice)
            audit.record_many(
                session,
                [
                    audit.Entry(
                        ACTOR,
                        "hotline.notice_dropped",
                        ("notice", notice_id),
                        {"message_id": notice.message_id, "dropped": dropped},
                    )
                ],
            )
            return None
        problem = None
        if contact is None or not contact.email:
            problem = "the contact has no e-mail address"
        draft = None
        if problem is None:
            assert contact is not None and contact.email is not None
            link = until = None
            if notice.kind != NoticeKind.police:
                until = answers.link_expiry(notice.created_at)
                link = answers.notice_link(settings.public_url, context.link_key, notice.id, until)
            draft = Draft(
                notice_id=notice.id,
                kind=notice.kind,
                message_id=notice.message_id,
                recipient=contact.email,
                contact_name=contact.name,
                items=_facts(session, keep),
                answer_link=link,
                answer_until=until,
                earlier=_earlier(session, notice, [r.id for r in keep])
                if notice.kind == NoticeKind.renotice
                else (),
            )
        kind, item_ids = notice.kind, tuple(row.id for row in keep)
    if draft is not None:
        sender = Sender(
            settings.hotline_name, settings.smtp_from, settings.public_url, settings.hotline_country
        )
        try:
            return _Prepared(notice_id, kind, item_ids, compose(draft, sender, date=clock.now()))
        except (XarfInvalid, ValueError) as exc:
            problem = f"the notice could not be composed: {exc}"
        except Exception as exc:  # the email package on odd values: this notice fails, and
            # does not come back at the head of every batch, holding the notices after it
            log.exception("notice %d could not be composed", notice_id)
            problem = f"the notice could not be composed: {type(exc).__name__}: {exc}"
    assert problem is not None
    _failed(context, notice_id, problem, permanent=True)
    return None


def _failed(context: HotlineContext, notice_id: int, problem: str, *, permanent: bool) -> str:
    """Record a failed attempt: retry later with backoff, or ``failed`` for good."""
    now = clock.now()
    with context.sessions() as session, session.begin():
        items.begin_write(session)
        notice = session.get(Notice, notice_id, with_for_update=is_postgres(session))
        if notice is None or notice.status != NoticeStatus.open:
            return "gone"
        notice.attempts += 1
        notice.last_error = problem[:2000]
        notice.lease_until = None
        if permanent or notice.attempts >= context.settings.smtp_attempts:
            notice.status = NoticeStatus.failed
            notice.due_at = None
            audit.record_many(
                session,
                [
                    audit.Entry(
                        ACTOR,
                        "hotline.notice_failed",
                        ("notice", notice_id),
                        {
                            "message_id": notice.message_id,
                            "attempts": notice.attempts,
                            "error": problem[:500],
                        },
                    )
                ],
            )
            log.warning(
                "notice %d failed after %d attempt(s): %s", notice_id, notice.attempts, problem
            )
            return "failed"
        notice.due_at = now + backoff(context.settings, notice.attempts)
        log.info(
            "notice %d: attempt %d failed (%s); next at %s",
            notice_id,
            notice.attempts,
            problem,
            notice.due_at.isoformat(),
        )
        return "retry"


def _mark_sent(context: HotlineContext, prepared: _Prepared, refused: list[str]) -> None:
    """The relay took the message: the notice is sent, and each of its items moves on."""
    settings = context.settings
    now = clock.now()
    with context.sessions() as session, session.begin():
        items.begin_write(session)
        notice = session.get(Notice, prepared.notice_id, with_for_update=is_postgres(session))
        if notice is None or notice.status == NoticeStatus.sent:
            return  # another worker finished it (its lease ran out while this one sent)
        notice.status = NoticeStatus.sent
        notice.sent_at = now
        notice.recipient = str(prepared.message["To"])
        notice.subject = str(prepared.message["Subject"])[:300]
        notice.attempts += 1
        notice.last_error = f"refused by the relay: {', '.join(refused)}" if refused else None
        notice.lease_until = None
        notice.due_at = None
        query = (
            select(UrlItem)
            .join(NoticeItem, NoticeItem.item_id == UrlItem.id)
            .where(NoticeItem.notice_id == notice.id)
            .order_by(UrlItem.id)
        )
        if is_postgres(session):
            query = query.with_for_update(of=UrlItem)
        rows = list(session.scalars(query))
        mailed = set(prepared.item_ids)
        strays = [row for row in rows if row.id not in mailed]
        if strays:  # joined after the message was composed: back to grouping
            session.execute(
                delete(NoticeItem).where(
                    NoticeItem.notice_id == notice.id,
                    NoticeItem.item_id.in_([row.id for row in strays]),
                )
            )
            for row in strays:
                if notice.kind == NoticeKind.renotice:
                    row.renotice_at = now
                else:
                    row.due_at = now
        details = {
            "notice_id": notice.id,
            "message_id": notice.message_id,
            "recipient": notice.recipient,
        }
        notes: list[items.Note] = []
        for row in rows:
            if row.id not in mailed or not _still_due(notice, row):
                continue  # mailed, but it left (offline, say) while the message went out
            notes.append(_advance(session, row, notice.kind, details, settings, now))
        items.note(session, notes)
        audit.record_many(
            session,
            [
                audit.Entry(
                    ACTOR,
                    "hotline.notice_sent",
                    ("notice", notice.id),
                    {
                        **details,
                        "kind": notice.kind,
                        "items": sorted(mailed),
                        "attempts": notice.attempts,
                    },
                )
            ],
        )


def _advance(
    session: Session,
    row: UrlItem,
    kind: str,
    details: dict[str, object],
    settings: Settings,
    now: datetime,
) -> items.Note:
    """Move one mailed item on, as the state machine says."""
    row.updated_at = now
    if kind == NoticeKind.police:
        return items.Note(row.id, Event.police, ACTOR, dict(details))
    row.last_notice_at = now
    row.renotice_at = now + timedelta(hours=settings.takedown_renotice_hours)
    first_check = now + timedelta(minutes=settings.takedown_first_check_minutes)
    if kind == NoticeKind.renotice:
        row.renotices += 1
        if row.next_check_at is None:
            row.next_check_at = first_check
        return items.Note(row.id, Event.renotice, ACTOR, {**details, "renotices": row.renotices})
    if row.first_notice_at is None:
        row.first_notice_at = now
        # the monitor counts the item at the hoster it was noticed to, even if it moves later
        row.notice_asn, row.notice_owner = row.asn, row.network_owner
        row.notice_country = row.country
    row.next_check_at = first_check
    row.escalation_at = now + timedelta(hours=settings.takedown_escalation_hours)
    row.last_error = None
    note = items.move(
        session, row, ItemState.noticed, actor=ACTOR, event=Event.notice, details=dict(details)
    )
    assert note is not None
    return note


def send_due(context: HotlineContext, limit: int) -> int:
    """Send the open notices whose time has come; returns how many were handled."""
    now = clock.now()
    claimed, held = _claim_notices(context, limit, now)
    for notice_id in claimed:
        prepared = _prepare(context, notice_id)
        if prepared is None:
            continue
        try:
            refused = smtp.send(prepared.message, context.mail_relay)
        except smtp.MailRefused as exc:
            _failed(context, notice_id, str(exc), permanent=True)
            continue
        except smtp.MailFailed as exc:
            _failed(context, notice_id, str(exc), permanent=False)
            continue
        _mark_sent(context, prepared, refused)
    return len(claimed) + held


def retry_notice(session: Session, notice_id: int, *, actor: str) -> Notice:
    """Send a failed notice again (an analyst's decision): open, due now, attempts from zero,
    same Message-ID. Items that another notice carries meanwhile are dropped when it is sent."""
    items.begin_write(session)
    notice = session.get(Notice, notice_id, with_for_update=is_postgres(session))
    if notice is None:
        raise NotFound(f"no notice {notice_id}")
    if notice.status != NoticeStatus.failed:
        raise Conflict(f"notice {notice_id} is {notice.status}, not failed")
    notice.status = NoticeStatus.open
    notice.due_at = clock.now()
    notice.attempts = 0
    notice.lease_until = None
    audit.record_many(
        session,
        [
            audit.Entry(
                actor,
                "hotline.notice_retried",
                ("notice", notice_id),
                {"message_id": notice.message_id, "last_error": (notice.last_error or "")[:500]},
            )
        ],
    )
    session.flush()
    return notice
