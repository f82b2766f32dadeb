"""Routes of notices: hosters read the notices sent to them and answer them; analysts read all.

A ``hoster`` key belongs to an organisation; it sees and answers only the notices to abuse
contacts that name that organisation (``AbuseContact.org_id``), else 403. An answer says per URL
"removed", "not_ours" or "other" with a note; "removed" is believed only when a re-check finds
the content gone (``takedown.answers``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from meldpunt.checks import Principal, Role
from meldpunt.reports.errors import NotFound
from meldpunt.takedown.answers import MAX_NOTE, Answer, UrlAnswer, check_hoster, record_answers
from meldpunt.takedown.notice_views import MAX_LIST, get_notice, list_notices
from meldpunt.takedown.vocabulary import NoticeStatus
from meldpunt.text import FreeText, OneLine

from .auth import require
from .schemas import RowId
from .state import service_of

router = APIRouter()

HosterKey = Annotated[Principal, Depends(require(Role.hoster))]
NoticeReader = Annotated[Principal, Depends(require(Role.hoster, Role.analyst, Role.admin))]


class UrlAnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    url: OneLine = Field(max_length=2048, description="A URL the notice named, as it named it")
    answer: Answer = Field(description="removed, not_ours (not on our network) or other")
    note: FreeText | None = Field(None, max_length=MAX_NOTE)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: list[UrlAnswerIn] = Field(default_factory=list, max_length=MAX_LIST)
    note: FreeText | None = Field(None, max_length=MAX_NOTE, description="About the whole notice")


def hoster_actor(principal: Principal) -> str:
    return f"hoster:{principal.org_name}"


@router.get(
    "/v1/notices",
    tags=["notices"],
    summary="Notices: a hoster's own (sent to it), or every notice for analysts",
)
def notices(
    request: Request,
    principal: NoticeReader,
    status: NoticeStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[dict[str, Any]]:
    with service_of(request).sessions() as session:
        if principal.role == Role.hoster:
            found = list_notices(
                session,
                status=NoticeStatus.sent,
                org_id=principal.org_id,
                limit=limit,
                offset=offset,
            )
        else:
            found = list_notices(
                session,
                status=None if status is None else str(status),
                limit=limit,
                offset=offset,
            )
        return [view.plain() for view in found]


@router.get("/v1/notices/{notice_id}", tags=["notices"], summary="One notice and its URLs")
def notice(request: Request, notice_id: RowId, principal: NoticeReader) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        if principal.role == Role.hoster:
            check_hoster(session, notice_id, principal.org_id)
        view = get_notice(session, notice_id)
        if principal.role == Role.hoster and view.status != NoticeStatus.sent:
            raise NotFound(f"no notice {notice_id}")  # not sent (yet): as if there were none
        return view.plain()


@router.post(
    "/v1/notices/{notice_id}/answer",
    tags=["notices"],
    summary="A hoster's answer per URL; 'removed' is believed once a re-check confirms it",
)
def answer(
    request: Request, notice_id: RowId, body: AnswerIn, principal: HosterKey
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        check_hoster(session, notice_id, principal.org_id)
        session.commit()  # end the read: recording takes the write lock first (SQLite)
        recorded = record_answers(
            session,
            notice_id,
            [UrlAnswer(a.url, a.answer, a.note) for a in body.answers],
            actor=hoster_actor(principal),
            note=body.note,
        )
        session.commit()
        view = get_notice(session, notice_id)
    return {
        "notice_id": notice_id,
        "recorded": len(recorded),
        "items": [
            {"url": i.url, "state": i.state, "answer": i.answer}
            for i in view.items
            if i.item_id in recorded
        ],
    }
