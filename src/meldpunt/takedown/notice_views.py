"""What the faces read of notices: the analysts' list of notices sent, failed and open, one
notice with its URLs and their states, and a hoster's own notices. Plain dataclasses, never
media."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt.reports.errors import InvalidInput, NotFound
from meldpunt.store.models import AbuseContact, Notice, NoticeItem, UrlItem
from meldpunt.takedown.answers import answers_of
from meldpunt.takedown.vocabulary import NOTICE_STATUSES

__all__ = ["NoticeItemView", "NoticeView", "count_notices", "get_notice", "list_notices"]

MAX_LIST = 1000


@dataclass(frozen=True)
class NoticeItemView:
    item_id: int
    url: str
    state: str
    offline_at: datetime | None
    answer: str | None = None
    answer_note: str | None = None


@dataclass(frozen=True)
class NoticeView:
    id: int
    kind: str
    status: str
    contact_id: int
    contact_name: str
    contact_org_id: int | None
    recipient: str | None
    subject: str | None
    message_id: str
    created_at: datetime
    due_at: datetime | None
    sent_at: datetime | None
    attempts: int
    last_error: str | None
    answered_at: datetime | None
    items: tuple[NoticeItemView, ...]

    def plain(self) -> dict[str, Any]:
        """JSON-ready: times as ISO text."""

        def value(v: Any) -> Any:
            return v.isoformat() if isinstance(v, datetime) else v

        data = {k: value(v) for k, v in self.__dict__.items() if k != "items"}
        data["items"] = [{k: value(v) for k, v in i.__dict__.items()} for i in self.items]
        return data


def _views(session: Session, rows: Sequence[tuple[Notice, AbuseContact]]) -> list[NoticeView]:
    ids = [notice.id for notice, _ in rows]
    members: dict[int, list[UrlItem]] = {i: [] for i in ids}
    if ids:
        for notice_id, item in session.execute(
            select(NoticeItem.notice_id, UrlItem)
            .join(UrlItem, UrlItem.id == NoticeItem.item_id)
            .where(NoticeItem.notice_id.in_(ids))
            .order_by(UrlItem.id)
        ):
            members[notice_id].append(item)
    views = []
    for notice, contact in rows:
        said = answers_of(notice)
        views.append(
            NoticeView(
                id=notice.id,
                kind=notice.kind,
                status=notice.status,
                contact_id=contact.id,
                contact_name=contact.name,
                contact_org_id=contact.org_id,
                recipient=notice.recipient,
                subject=notice.subject,
                message_id=notice.message_id,
                created_at=notice.created_at,
                due_at=notice.due_at,
                sent_at=notice.sent_at,
                attempts=notice.attempts,
                last_error=notice.last_error,
                answered_at=notice.answered_at,
                items=tuple(
                    NoticeItemView(
                        item_id=item.id,
                        url=item.url,
                        state=item.state,
                        offline_at=item.offline_at,
                        answer=said.get(item.id, {}).get("answer"),
                        answer_note=said.get(item.id, {}).get("note"),
                    )
                    for item in members[notice.id]
                ),
            )
        )
    return views


def _filters(status: str | None, org_id: int | None) -> list[Any]:
    where: list[Any] = []
    if status is not None:
        if status not in NOTICE_STATUSES:
            raise InvalidInput(f"a notice's status is one of {', '.join(NOTICE_STATUSES)}")
        where.append(Notice.status == status)
    if org_id is not None:
        where.append(AbuseContact.org_id == org_id)
    return where


def list_notices(
    session: Session,
    *,
    status: str | None = None,
    org_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[NoticeView]:
    """Notices, newest first: all, or of one ``status``, or those to contacts of organisation
    ``org_id`` (a hoster's own)."""
    limit = max(1, min(limit, MAX_LIST))
    query = (
        select(Notice, AbuseContact)
        .join(AbuseContact, AbuseContact.id == Notice.contact_id)
        .where(*_filters(status, org_id))
        .order_by(Notice.id.desc())
        .limit(limit)
        .offset(max(0, offset))
    )
    return _views(session, list(session.execute(query)))


def count_notices(session: Session) -> dict[str, int]:
    """How many notices there are per status."""
    counts = dict.fromkeys(NOTICE_STATUSES, 0)
    for status, count in session.execute(
        select(Notice.status, func.count()).group_by(Notice.status)
    ):
        counts[status] = int(count)
    return counts


def get_notice(session: Session, notice_id: int) -> NoticeView:
    row = session.execute(
        select(Notice, AbuseContact)
        .join(AbuseContact, AbuseContact.id == Notice.contact_id)
        .where(Notice.id == notice_id)
    ).first()
    if row is None:
        raise NotFound(f"no notice {notice_id}")
    return _views(session, [(row[0], row[1])])[0]
