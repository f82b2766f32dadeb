"""Notices on the pages: the hoster's answer page behind the signed link in each notice
(``/notice/{token}``, no sign-in), and the analysts' notices (``/ui/notices``: sent, failed and
open ones, their URLs, Message-IDs and answers; a failed notice can be sent again). No page
shows or links media: URLs are text."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request, Response
from fastapi.responses import HTMLResponse

from meldpunt.api.state import service_of
from meldpunt.takedown.answers import ANSWERS, UrlAnswer, read_token, record_answers
from meldpunt.takedown.notice_views import count_notices, get_notice, list_notices
from meldpunt.takedown.notices import retry_notice
from meldpunt.takedown.vocabulary import NOTICE_STATUSES, NoticeKind, NoticeStatus

from .auth import Analyst, CsrfChecked, actor
from .render import PageError, PageRoute, done, page, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE = 100
NoticeId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _answerable(request: Request, token: str) -> int:
    """The notice a link names, if it is one a hoster can answer (sent, not to the police)."""
    hotline = service_of(request).hotline
    assert hotline is not None
    notice_id = read_token(hotline.link_key, token)
    with service_of(request).sessions() as db:
        view = get_notice(db, notice_id)
    if view.status != NoticeStatus.sent or view.kind == NoticeKind.police:
        raise PageError(404, "Not found", "No notice has that link.")
    return notice_id


@router.get("/notice/{token}", response_class=HTMLResponse)
def answer_form(request: Request, token: str, answered: int | None = None) -> Response:
    notice_id = _answerable(request, token)
    with service_of(request).sessions() as db:
        view = get_notice(db, notice_id)
    settings = service_of(request).hotline.settings
    return page(request, "notice_answer.html", notice=view, token=token, answers=ANSWERS,
                hotline=settings.hotline_name, answered=answered)  # fmt: skip


@router.post("/notice/{token}", response_class=HTMLResponse)
def answer(
    request: Request,
    token: str,
    item: Annotated[list[int], Form(max_length=1000)],
    answer: Annotated[list[str], Form(max_length=1000)],
    note: Annotated[list[str], Form(max_length=1000)],
    general: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    notice_id = _answerable(request, token)
    if not len(item) == len(answer) == len(note):
        raise PageError(400, "The form was not understood", "Send the form from the page.")
    with service_of(request).sessions() as db:
        urls = {i.item_id: i.url for i in get_notice(db, notice_id).items}
        given = []
        for item_id, said, text in zip(item, answer, note, strict=True):
            if item_id not in urls:
                raise PageError(400, "Not in this notice", f"Item {item_id} is not in it.")
            if said:
                given.append(UrlAnswer(urls[item_id], said, text.strip() or None))
        if not given and not general.strip():
            raise PageError(400, "Nothing to record", "Choose an answer for at least one URL.")
        recorded = record_answers(db, notice_id, given, actor=f"link:notice-{notice_id}",
                                  note=general.strip() or None)  # fmt: skip
        db.commit()
    return redirect(f"/notice/{token}?answered={len(recorded)}")


@router.get("/ui/notices", response_class=HTMLResponse)
def notices(
    request: Request, session: Analyst, status: str | None = None, offset: int = 0
) -> Response:
    if status not in (None, "", *NOTICE_STATUSES):
        raise PageError(404, "No such list", "Notices are open, sent or failed.")
    offset = max(0, min(offset, 10**9))
    with service_of(request).sessions() as db:
        found = list_notices(db, status=status or None, limit=PAGE + 1, offset=offset)
        counts = count_notices(db)
    return page(request, "notices.html", notices=found[:PAGE], shown=status or "",
                counts=counts, statuses=NOTICE_STATUSES, offset=offset,
                more=len(found) > PAGE, page_size=PAGE)  # fmt: skip


@router.get("/ui/notices/{notice_id}", response_class=HTMLResponse)
def notice(request: Request, session: Analyst, notice_id: NoticeId) -> Response:
    with service_of(request).sessions() as db:
        view = get_notice(db, notice_id)
    return page(request, "notice.html", notice=view)


@router.post(
    "/ui/notices/{notice_id}/retry", response_class=HTMLResponse, dependencies=[CsrfChecked]
)
def retry(request: Request, session: Analyst, notice_id: NoticeId) -> Response:
    with service_of(request).sessions() as db:
        retry_notice(db, notice_id, actor=actor(session))
        db.commit()
    session.flash(f"Notice {notice_id} will be sent again now, with the same Message-ID.")
    return done(request, f"/ui/notices/{notice_id}")
