"""Trusted flaggers' routes: report URLs to the hotline and follow what became of them.

``POST /v1/reports`` takes up to ``hotline_report_urls`` (default 1,000) URLs with the flagger's
own reference, a kind and a note; ``GET /v1/reports/{report_id}`` shows each URL's state and
timeline. Keys of the role ``flagger`` see their organisation's reports only (another's is 404,
as if it did not exist); ``admin`` keys may do both for any report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from meldpunt.checks import Principal, Role
from meldpunt.reports.intake import (
    MAX_NOTE,
    MAX_REFERENCE,
    InvalidReport,
    ReportReceipt,
    submit_report,
)
from meldpunt.reports.items import MAX_URL
from meldpunt.reports.views import ReportView, report_by_id, report_for_flagger
from meldpunt.reports.vocabulary import ReportKind, ReportSource
from meldpunt.text import FreeText, OneLine

from .auth import require
from .errors import error_body
from .schemas import RowId
from .state import service_of

__all__ = ["router"]

router = APIRouter(tags=["reports"])

FlaggerKey = Annotated[Principal, Depends(require(Role.flagger, Role.admin))]
#: What the schema lets through; the setting ``hotline_report_urls`` (default 1,000) decides.
MAX_URLS = 100_000

UrlText = Annotated[OneLine, Field(min_length=1, max_length=MAX_URL)]


class UrlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: UrlText = Field(description="The URL (http or https); normalised by the hotline")
    referer: UrlText | None = Field(None, description="The page that led to it, if any")


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    reference: OneLine | None = Field(
        None, max_length=MAX_REFERENCE, description="Your own reference for this report"
    )
    kind: ReportKind = Field(
        description="csam: child sexual abuse material; ncii: non-consensual intimate images; "
        "other: other illegal content"
    )
    note: FreeText | None = Field(
        None, max_length=MAX_NOTE, description="Why the material is illegal, in your words"
    )
    urls: (
        Annotated[list[UrlIn], Field(min_length=1, max_length=MAX_URLS)]
        | Annotated[list[UrlText], Field(min_length=1, max_length=MAX_URLS)]
    ) = Field(
        description="The URLs: objects with a referer, or plain strings. At most "
        "`hotline_report_urls` (default 1,000) per call, else 413. A URL given twice counts "
        "once. One URL that is not an http(s) URL refuses the whole call (422, naming its "
        "position)."
    )


class UrlTaken(BaseModel):
    position: int = Field(description="The URL's place in `urls` (from 0)")
    url: str = Field(description="The URL as the hotline keeps it (normalised)")
    item_id: int = Field(description="The hotline's item for this URL")
    state: Literal["received", "linked"] = Field(
        description="received: a new item, to be fetched now; linked: the URL was already "
        "open at the hotline and this report was added to it"
    )
    item_state: str = Field(description="Where the item stands now")


class ReportCreated(BaseModel):
    id: int = Field(description="The report's id (GET /v1/reports/{id})")
    ref: str = Field(description="The hotline's reference")
    reference: str | None = Field(description="Your reference")
    kind: str
    urls: list[UrlTaken]
    duplicates: int = Field(description="URLs given again in the same call (counted once)")


class EventOut(BaseModel):
    at: datetime
    event: str


class UrlState(BaseModel):
    position: int
    url: str
    given: str = Field(description="The URL as it was given")
    referer: str | None
    item_id: int
    state: str = Field(description="Where the item stands now")
    events: list[EventOut] = Field(description="The item's timeline, oldest first")
    media: dict[str, int] = Field(
        description="Pictures and videos found on the page (items of their own), by state"
    )


class ReportOut(BaseModel):
    id: int
    ref: str
    reference: str | None
    kind: str
    source: str
    created_at: datetime
    note: str | None
    urls: list[UrlState]


def _created(receipt: ReportReceipt, reference: str | None) -> ReportCreated:
    return ReportCreated(
        id=receipt.report_id, ref=receipt.ref, reference=reference, kind=receipt.kind,
        duplicates=receipt.duplicates,
        urls=[UrlTaken(position=u.position, url=u.url, item_id=u.item_id,
                       state=u.outcome, item_state=u.state)
              for u in receipt.urls],
    )  # fmt: skip


def _out(view: ReportView) -> ReportOut:
    return ReportOut(
        id=view.id, ref=view.ref, reference=view.flagger_ref, kind=view.kind, source=view.source,
        created_at=view.created_at, note=view.note,
        urls=[UrlState(position=u.position, url=u.url, given=u.given, referer=u.referer,
                       item_id=u.item_id, state=u.state, media=u.media,
                       events=[EventOut(at=at, event=event) for at, event in u.events])
              for u in view.urls],
    )  # fmt: skip


def _actor(principal: Principal) -> str:
    if principal.role == Role.flagger:
        return f"flagger:{principal.org_name}"
    return f"key:{principal.key_id}"


@router.post(
    "/v1/reports",
    status_code=201,
    response_model=ReportCreated,
    summary="Report URLs to the hotline (trusted flaggers)",
    responses={
        413: {"description": "More URLs than one report may name"},
        422: {"description": "A URL or field that cannot be taken (the message says which)"},
    },
)
def create_report(request: Request, body: ReportIn, principal: FlaggerKey) -> ReportCreated:
    """Each URL becomes an item of the hotline, or is linked to the item of the same URL that is
    open already (it is not fetched or noticed twice). By sending a report the flagger states
    that it is accurate and made in good faith (DSA Art. 16(2)(d))."""
    state = service_of(request)
    state.limiter.take(principal.key_id)
    urls = [(u, None) if isinstance(u, str) else (u.url, u.referer) for u in body.urls]
    with state.sessions() as session:
        try:
            receipt = submit_report(
                session, source=ReportSource.flagger, kind=str(body.kind), urls=urls,
                note=body.note, good_faith=True, org_id=principal.org_id,
                flagger_ref=body.reference, actor=_actor(principal),
                settings=state.hotline.settings,
            )  # fmt: skip
        except InvalidReport as exc:
            problems = [{"where": f"urls.{p.position}", "problem": p.message}
                        for p in exc.problems[:50]]  # fmt: skip
            return JSONResponse(  # type: ignore[return-value]
                error_body("invalid_url", exc.message, problems=problems), exc.status
            )
        session.commit()
    reference = body.reference.strip() if body.reference and body.reference.strip() else None
    return _created(receipt, reference)


@router.get(
    "/v1/reports/{report_id}",
    response_model=ReportOut,
    summary="A report of yours: each URL's state and timeline",
)
def get_report(request: Request, report_id: RowId, principal: FlaggerKey) -> ReportOut:
    with service_of(request).sessions() as session:
        if principal.role == Role.flagger:
            view = report_for_flagger(session, principal.org_id, report_id)
        else:
            view = report_by_id(session, report_id)
    return _out(view)
