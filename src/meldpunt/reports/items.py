"""The hotline's items: one per reported URL (and per picture or video found on a reported page),
their states and their timelines.

Everything that happens to an item is a line of its timeline (``item_events``) and, since a
hoster, a reporter or an authority could dispute it, an event of the audit log
(``hotline.<event>``, subject ``("url_item", id)``). ``note`` writes both, for many items at
once. ``move`` changes an item's state and notes it; entering a final state frees the URL, so
that a later report of it opens a new item.

Work that waits is a due time on the item (see ``UrlItem``); ``claim`` hands due items to one
worker by moving their due time on by a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two
workers never take the same item and a worker that dies leaves its items due again when the
lease ends.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from meldpunt import audit, clock
from meldpunt.reports.errors import InvalidInput, NotFound
from meldpunt.reports.vocabulary import FINAL_STATES, Event, ItemState
from meldpunt.store import begin_write
from meldpunt.store.models import ItemEvent, UrlItem
from meldpunt.text import text_problem

__all__ = [
    "MAX_URL",
    "Note",
    "begin_write",
    "claim",
    "get_item",
    "move",
    "normalise_url",
    "note",
    "open_item",
    "timeline",
    "url_key",
    "without_credentials",
]

MAX_URL = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters a URL may carry as they are; everything else is percent-encoded once.
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE_PATH + "?"
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+-]*):(?!\d)")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


def normalise_url(raw: str) -> str:
    """The URL as the hotline keeps it, so that two spellings of one address are one item:
    scheme and host in lower case (the host as IDNA), no default port, no fragment, an empty
    path as ``/``, unsafe characters percent-encoded, no user name or password (the hotline
    never logs in anywhere and keeps no one's credentials). Only http and https. Raises
    ``InvalidInput`` saying what is wrong."""
    if not isinstance(raw, str):
        raise InvalidInput("a URL must be text")
    value = raw.strip()
    problem = text_problem(value)
    if problem:
        raise InvalidInput(f"the URL {problem}")
    if not value:
        raise InvalidInput("the URL is empty")
    if len(value) > MAX_URL:
        raise InvalidInput(f"the URL is longer than {MAX_URL} characters")
    if "://" not in value:
        named = _SCHEME.match(value)
        if named:  # 'javascript:...', 'mailto:...' (but 'localhost:8080/x' is a host)
            raise InvalidInput(f"only http and https URLs can be reported, not {named[1]!r}")
        value = "http://" + value  # what people paste: 'example.com/page'
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"{value[:100]!r} is not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidInput(f"only http and https URLs can be reported, not {scheme!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInput(f"{value[:100]!r} has no host")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
        host = f"[{address}]" if address.version == 6 else str(address)
    except ValueError:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            host = ""
        if not _HOST_NAME.fullmatch(host):  # no spaces, quotes, '<' ... in a host name
            raise InvalidInput(f"{value[:100]!r}: the host name is not valid") from None
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = quote(parts.path or "/", safe=_SAFE_PATH)
    query = quote(parts.query, safe=_SAFE_QUERY)
    url = urlunsplit((scheme, netloc, path, query, ""))
    if len(url) > MAX_URL:
        raise InvalidInput(f"the URL is longer than {MAX_URL} characters")
    return url


def without_credentials(url: str) -> str:
    """``url`` without a user name and password (``http://user:pass@host/`` gives
    ``http://host/``), as far as ``urlsplit`` reads them: the hotline keeps no one's
    credentials, neither in the URL it fetches and notices nor in the copy as given."""
    scheme, separator, rest = url.partition("://")
    if not separator:  # 'user:1234@example.com/a', as people paste it
        scheme, rest = "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    if "@" not in rest[:end]:
        return url
    return f"{scheme}{separator}{rest[:end].rpartition('@')[2]}{rest[end:]}"


def url_key(url: str) -> str:
    """The digest that stands for a normalised URL in indexes."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


@dataclass(frozen=True)
class Note:
    """One line for an item's timeline."""

    item_id: int
    event: Event | str
    actor: str
    details: dict[str, Any] | None = None
    audited: bool = True


def note(session: Session, notes: Sequence[Note]) -> None:
    """Write ``notes`` to the items' timelines and (those ``audited``) to the audit log, in the
    session's transaction, each table in one statement."""
    if not notes:
        return
    now = clock.now()
    session.flush()
    session.execute(
        insert(ItemEvent),
        [
            {
                "item_id": n.item_id,
                "at": now,
                "event": str(n.event),
                "actor": n.actor,
                "details": None if not n.details else json.dumps(n.details, sort_keys=True),
            }
            for n in notes
        ],
    )
    audit.record_many(
        session,
        [
            audit.Entry(n.actor, f"hotline.{n.event}", ("url_item", n.item_id), n.details)
            for n in notes
            if n.audited
        ],
    )


def move(
    session: Session,
    item: UrlItem,
    state: ItemState | str,
    *,
    actor: str,
    event: Event | str | None = None,
    details: dict[str, Any] | None = None,
    due_at: datetime | None = None,
) -> Note | None:
    """Put ``item`` in ``state`` (its ``due_at`` becomes ``due_at``) and return the timeline
    note for ``event`` (None when no event), for the caller to ``note`` with the rest of its
    batch. A final state frees the URL (``open_key``) and clears every due time."""
    now = clock.now()
    item.state = str(state)
    item.updated_at = now
    item.due_at = due_at
    item.lease_until = None
    if state in FINAL_STATES:
        item.open_key = None
        item.due_at = item.next_check_at = item.renotice_at = item.escalation_at = None
    if event is None:
        return None
    return Note(item.id, event, actor, details)


def open_item(
    session: Session,
    url: str,
    *,
    kind: str,
    actor: str,
    parent_id: int | None = None,
    due_at: datetime | None = None,
) -> tuple[UrlItem, bool]:
    """The open item of normalised ``url``, or a new one in state ``received`` (due to be
    fetched at ``due_at``, default now); returns (item, created). Two callers that add the same
    URL at once get the same item (the unique index on ``open_key`` decides)."""
    key = url_key(url)
    found = session.scalars(select(UrlItem).where(UrlItem.open_key == key)).first()
    if found is not None:
        return found, False
    now = clock.now()
    item = UrlItem(
        url=url,
        url_key=key,
        open_key=key,
        host=host_of(url),
        parent_id=parent_id,
        kind=kind,
        state=str(ItemState.received),
        created_at=now,
        updated_at=now,
        due_at=due_at or now,
        attempts=0,
        renotices=0,
        misses=0,
    )
    try:
        with session.begin_nested():
            session.add(item)
            session.flush()
    except IntegrityError:
        found = session.scalars(select(UrlItem).where(UrlItem.open_key == key)).first()
        if found is None:
            raise
        return found, False
    return item, True


def get_item(session: Session, item_id: int, *, lock: bool = False) -> UrlItem:
    query = select(UrlItem).where(UrlItem.id == item_id)
    if lock and session.connection().dialect.name == "postgresql":
        query = query.with_for_update()
    item = session.scalars(query).first()
    if item is None:
        raise NotFound(f"no item {item_id}")
    return item


def timeline(session: Session, item_id: int) -> list[ItemEvent]:
    return list(
        session.scalars(
            select(ItemEvent).where(ItemEvent.item_id == item_id).order_by(ItemEvent.id)
        )
    )


def claim(
    session: Session,
    due: InstrumentedAttribute[datetime | None],
    where: Iterable[ColumnElement[bool]],
    *,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
) -> list[UrlItem]:
    """Claim up to ``limit`` items whose ``due`` time (``UrlItem.due_at``, ``next_check_at``,
    ...) has come and that match ``where``, oldest first, by moving ``due`` on by ``lease``
    (flushed; the caller commits to hand them to its worker). Rows another worker holds are
    skipped on PostgreSQL; on SQLite the write lock is taken first, so claimers take turns.
    The returned rows show ``due`` as moved; each claimer sets its next due time itself."""
    now = now or clock.now()
    begin_write(session)
    query = (
        select(UrlItem)
        .where(due.is_not(None), due <= now, *where)
        .order_by(due, UrlItem.id)
        .limit(limit)
    )
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query.execution_options(populate_existing=True)))
    for row in rows:
        setattr(row, due.key, now + lease)
    session.flush()
    return rows


def any_due(
    session: Session,
    due: InstrumentedAttribute[datetime | None],
    where: Iterable[ColumnElement[bool]],
    now: datetime | None = None,
) -> bool:
    """Whether anything is due, by a plain read: an idle worker never takes SQLite's write lock."""
    now = now or clock.now()
    found = session.scalar(select(UrlItem.id).where(due.is_not(None), due <= now, *where).limit(1))
    return found is not None
