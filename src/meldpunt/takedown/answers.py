"""Hosters' answers to notices: the signed link in each notice, and what an answer does.

A notice carries a link ``<public_url>/notice/<token>``: the token names the notice and an
expiry, signed with HMAC-SHA256 under the installation's link key
(``HotlineContext.link_key``) and compared in constant time, so nobody can make a link to a
notice they were not sent, and a link stops working on its expiry. The link needs no sign-in;
a hoster with an API key of the organisation the contact names (``AbuseContact.org_id``, role
``hoster``) answers by API instead.

An answer says per URL ``removed``, ``not_ours`` or ``other``, with a note. It is recorded on
the notice (``Notice.answer``, JSON) and as an ``answered`` event on the item's timeline. It
changes no state: "removed" is believed only when a re-check finds the content gone, so it
brings the item's next re-check forward to now and the re-check (``takedown.lifecycle``)
decides.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit, clock, errors
from meldpunt.reports import items
from meldpunt.reports.errors import Conflict, InvalidInput, NotFound
from meldpunt.reports.vocabulary import Event, ItemState
from meldpunt.store.models import AbuseContact, Notice, NoticeItem, UrlItem
from meldpunt.takedown.vocabulary import NoticeKind, NoticeStatus
from meldpunt.text import TextError, check_text

__all__ = [
    "ANSWERS",
    "LINK_DAYS",
    "Answer",
    "LinkExpired",
    "NoticeForbidden",
    "UrlAnswer",
    "check_hoster",
    "link_expiry",
    "notice_link",
    "read_token",
    "record_answers",
    "sign_token",
]

#: The states whose items the re-checks watch: "removed" brings their next check forward.
_WATCHED = (ItemState.noticed, ItemState.escalated, ItemState.forwarded)
#: How long the link in a notice works (each re-notice brings a new one).
LINK_DAYS = 30
MAX_NOTE = 2000
_MAX_TOKEN = 120


class Answer(StrEnum):
    removed = "removed"  # believed once a re-check finds it gone
    not_ours = "not_ours"  # the hoster says the address is not on its network
    other = "other"  # free text: the note says it


ANSWERS: tuple[str, ...] = tuple(Answer)


class LinkExpired(errors.MeldpuntError):
    """A genuine link whose time is over."""

    status, code = 410, "expired"


class NoticeForbidden(errors.Forbidden):
    """A hoster's key asked about a notice to another organisation."""


@dataclass(frozen=True)
class UrlAnswer:
    url: str
    answer: Answer | str
    note: str | None = None


# --- the signed link ------------------------------------------------------------------------------


def _signature(key: bytes, notice_id: int, expires: int) -> str:
    mac = hmac.new(key, f"notice-answer:{notice_id}:{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def link_expiry(sent_or_created: datetime) -> datetime:
    """When the link of a notice made at ``sent_or_created`` stops working."""
    return sent_or_created + timedelta(days=LINK_DAYS)


def sign_token(key: bytes, notice_id: int, expires: datetime) -> str:
    """``<notice id>.<expiry, Unix seconds>.<HMAC-SHA256, base64url>``."""
    stamp = int(expires.timestamp())
    return f"{notice_id}.{stamp}.{_signature(key, notice_id, stamp)}"


def notice_link(public_url: str, key: bytes, notice_id: int, expires: datetime) -> str:
    return f"{public_url.rstrip('/')}/notice/{sign_token(key, notice_id, expires)}"


def read_token(key: bytes, token: str, now: datetime | None = None) -> int:
    """The notice id a token names. ``NotFound`` for anything not signed by ``key`` (tampered,
    malformed: no hint which), ``LinkExpired`` (410) for a genuine token past its expiry."""
    parts = token.split(".") if len(token) <= _MAX_TOKEN else []
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts[:2]):
        raise NotFound("no notice has that link")
    notice_id, stamp = int(parts[0]), int(parts[1])
    if not 0 < notice_id < 2**63 or stamp >= 2**40:
        raise NotFound("no notice has that link")
    expected = _signature(key, notice_id, stamp)
    if not hmac.compare_digest(expected.encode("ascii"), parts[2].encode("utf-8", "replace")):
        raise NotFound("no notice has that link")
    if datetime.fromtimestamp(stamp, UTC) <= (now or clock.now()):
        raise LinkExpired(
            "this link has expired; the latest notice or re-notice about these URLs has a new one"
        )
    return notice_id


# --- answering ------------------------------------------------------------------------------------


def check_hoster(session: Session, notice_id: int, org_id: int) -> Notice:
    """The notice, if it went to a contact of organisation ``org_id`` (``NotFound`` if there is
    no such notice, ``NoticeForbidden`` if it went to someone else)."""
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound(f"no notice {notice_id}")
    contact = session.get(AbuseContact, notice.contact_id)
    if contact is None or contact.org_id != org_id:
        raise NoticeForbidden(f"notice {notice_id} was not sent to your organisation")
    return notice


def _answers_of(notice: Notice) -> dict[str, Any]:
    try:
        stored = json.loads(notice.answer) if notice.answer else {}
    except ValueError:
        stored = {}
    return stored if isinstance(stored, dict) else {}


def answers_of(notice: Notice) -> dict[int, dict[str, Any]]:
    """What was answered per item id (the latest answer of each)."""
    found = _answers_of(notice).get("items", {})
    return {int(k): v for k, v in found.items() if str(k).isdigit() and isinstance(v, dict)}


def _note(value: str, what: str) -> str:
    """A note as the hoster wrote it, or InvalidInput (a clear 422 on the page behind the
    link, which takes what a form sends: a TextError there was a server error)."""
    try:
        return check_text(value, what, max_length=MAX_NOTE, multiline=True)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None


def record_answers(
    session: Session,
    notice_id: int,
    answers: Sequence[UrlAnswer],
    *,
    actor: str,
    note: str | None = None,
) -> dict[int, str]:
    """Record a hoster's answers to sent notice ``notice_id`` (flushed; the caller commits):
    per item an ``answered`` event (audited), the answer kept on the notice; "removed" brings
    the item's next re-check forward to now and changes nothing else. Returns item id ->
    answer. ``InvalidInput`` for a URL the notice did not name, ``Conflict`` for a notice that
    was not sent or went to the police."""
    if not answers and not note:
        raise InvalidInput("an answer needs at least one URL or a note")
    if note is not None:
        note = _note(note, "the note")
    items.begin_write(session)
    query = select(Notice).where(Notice.id == notice_id)
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update()
    notice = session.scalars(query).first()
    if notice is None:
        raise NotFound(f"no notice {notice_id}")
    if notice.status != NoticeStatus.sent or notice.kind == NoticeKind.police:
        raise Conflict(f"notice {notice_id} is not a notice to a hoster that was sent")
    rows = list(
        session.scalars(
            select(UrlItem)
            .join(NoticeItem, NoticeItem.item_id == UrlItem.id)
            .where(NoticeItem.notice_id == notice_id)
        )
    )
    by_url = {row.url: row for row in rows}
    chosen: dict[int, tuple[UrlItem, str, str | None]] = {}
    for given in answers:
        try:
            url = items.normalise_url(given.url)
        except InvalidInput:
            url = given.url
        row = by_url.get(url)
        if row is None:
            raise InvalidInput(f"notice {notice_id} does not name {given.url[:200]!r}")
        if given.answer not in ANSWERS:
            raise InvalidInput(f"an answer is one of {', '.join(ANSWERS)}, not {given.answer!r}")
        text = None
        if given.note:
            text = _note(given.note, f"the note on {given.url[:200]}")
        chosen[row.id] = (row, str(given.answer), text)
    now = clock.now()
    stored = _answers_of(notice)
    per_item = stored.setdefault("items", {})
    notes: list[items.Note] = []
    for item_id, (row, answer, text) in chosen.items():
        per_item[str(item_id)] = {
            "answer": answer,
            "note": text,
            "at": now.isoformat(),
            "by": actor,
            "url": row.url,
        }
        details: dict[str, Any] = {"notice_id": notice_id, "answer": answer}
        if text:
            details["note"] = text[:500]
        if answer == Answer.removed and row.state in _WATCHED:
            # Believed only when a re-check finds it gone: check now, decide nothing here.
            row.next_check_at = now
            row.updated_at = now
            details["check_now"] = True
        notes.append(items.Note(row.id, Event.answered, actor, details))
    if note:
        stored["note"] = note
    stored["answered_by"] = actor
    notice.answer = json.dumps(stored, sort_keys=True)
    notice.answered_at = now
    items.note(session, notes)
    audit.record_many(
        session,
        [
            audit.Entry(
                actor,
                "hotline.notice_answered",
                ("notice", notice_id),
                {
                    "items": {str(k): v[1] for k, v in chosen.items()},
                    "note": (note or "")[:500] or None,
                },
            )
        ],
    )
    session.flush()
    return {item_id: answer for item_id, (_, answer, _) in chosen.items()}
