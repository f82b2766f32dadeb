"""Helpers for the notice tests: abuse contacts and attributed items made directly in the
database (as attribution would leave them), and a hotline context that mails to a sink."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from meldpunt import clock
from meldpunt.config import Settings
from meldpunt.reports import items
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.smtp import Relay
from meldpunt.store.models import AbuseContact, ItemEvent, Notice, NoticeItem, UrlItem

#: A Monday morning (UTC).
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def context_for(
    sessions: sessionmaker[Session],
    settings: Settings,
    relay: Relay,
    *,
    secret: bytes | None = b"k" * 32,
    **changes: Any,
) -> HotlineContext:
    """A context that mails through ``relay``; ``secret=None``: the installation's link key
    (made in ``data_dir``, as the service has it)."""
    values = {
        "hotline_name": "Meldpunt Test",
        "smtp_from": "notices@hotline.example",
        "public_url": "https://hotline.example",
        **changes,
    }
    return HotlineContext(
        sessions, settings=settings.model_copy(update=values), relay=relay, secret=secret
    )


def add_contact(
    session: Session,
    name: str,
    *,
    kind: str = "hoster",
    email: str | None = None,
    group_seconds: int = 120,
    hold_weekends: bool = False,
    country: str | None = "NL",
    org_id: int | None = None,
    approved: bool = True,
) -> AbuseContact:
    now = clock.now()
    contact = AbuseContact(
        name=name,
        kind=kind,
        email=email if email is not None else f"abuse@{name}.example",
        asn=64500 + session.query(AbuseContact).count(),
        country=country,
        approved=approved,
        group_seconds=group_seconds,
        hold_weekends=hold_weekends,
        org_id=org_id,
        created_at=now,
        updated_at=now,
    )
    session.add(contact)
    session.flush()
    return contact


def digest(text: str, name: str) -> str:
    return hashlib.new(name, text.encode()).hexdigest()


def ready_item(
    session: Session,
    url: str,
    contact: AbuseContact | None,
    *,
    kind: str = "csam",
    category: str | None = "csam_baseline",
    state: str = "ready",
    entry_id: int | None = None,
    media: str = "image",
) -> UrlItem:
    """An item graded illegal and attributed to ``contact``, due now."""
    now = clock.now()
    item, created = items.open_item(session, items.normalise_url(url), kind=kind, actor="test")
    assert created
    item.state = state
    item.grade = "police" if state == "police" else "illegal"
    item.category = category
    item.graded_by = "registry" if entry_id else "analyst:1"
    item.graded_at = now
    item.match_entry_id = entry_id
    item.media = media
    item.content_type = "image/jpeg"
    item.md5, item.sha1, item.sha256 = (digest(url, n) for n in ("md5", "sha1", "sha256"))
    item.pdq = digest(url, "sha256")
    item.first_seen_at = item.last_seen_at = now
    item.ip = "127.0.0.5"
    if contact is not None:
        item.asn, item.network_owner, item.country = contact.asn, f"{contact.name} B.V.", "NL"
        item.contact_id = contact.id
        item.attributed_at = now
    item.due_at = now
    session.flush()
    return item


def notices_of(session: Session) -> list[Notice]:
    return list(session.scalars(select(Notice).order_by(Notice.id)))


def item_ids(session: Session, notice_id: int) -> list[int]:
    return sorted(
        session.scalars(select(NoticeItem.item_id).where(NoticeItem.notice_id == notice_id))
    )


def events(session: Session, item_id: int) -> list[str]:
    return [
        e.event
        for e in session.scalars(
            select(ItemEvent).where(ItemEvent.item_id == item_id).order_by(ItemEvent.id)
        )
    ]


def fresh(session: Session, row: Any) -> Any:
    """``row`` as the database has it now (``row`` may come from a session that ended)."""
    return session.get(type(row), inspect(row).identity, populate_existing=True)
