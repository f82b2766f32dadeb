"""The analysts' queue and an item's page (``docs/hotline-grading.md``).

No picture is ever shown by default, and the item's URL is text, never a link: an analyst
opens nothing by accident. The one exception is an explicit click on "show blurred preview",
which loads the picture fetched again, small and strongly blurred (``reports.preview``); only
the item's page allows images (from meldpunt itself), every other page keeps ``img-src
'none'``. Grading works with plain forms, with htmx, and from the keyboard (``queue.js``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from meldpunt.api.schemas import RowId
from meldpunt.api.state import service_of
from meldpunt.reports import items, queue
from meldpunt.reports.errors import Conflict, InvalidInput
from meldpunt.reports.preview import preview_item
from meldpunt.reports.vocabulary import Grade, ItemState, Media

from .auth import Analyst, CsrfChecked, actor
from .render import SECURITY_HEADERS, PageError, PageRoute, fragment, is_htmx, page, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

QUEUE_PAGE = 200
#: The states the queue page has tabs for: the ones that wait for an analyst.
TABS = (ItemState.queued, ItemState.review, ItemState.police, ItemState.contact_needed)
#: The grades, with the keys that give them on the queue page.
GRADES = (
    (Grade.illegal, "Illegal", "1 / i"),
    (Grade.not_illegal, "Not illegal", "2 / n"),
    (Grade.ignore, "Ignore", "3 / x"),
    (Grade.police, "First police", "4 / p"),
)
#: The item's page may show the blurred preview (an image from meldpunt itself), nothing else.
ITEM_PAGE_CSP = SECURITY_HEADERS["Content-Security-Policy"].replace(
    "img-src 'none'", "img-src 'self'"
)


def _default_category(kind: str) -> str:
    return "ncii" if kind == "ncii" else "csam"


def _common(request: Request) -> dict[str, Any]:
    return {"grades": GRADES, "categories": queue.ILLEGAL_CATEGORIES,
            "default_category": _default_category}  # fmt: skip


def _rows(session: Any, found: list[Any]) -> list[dict[str, Any]]:
    pages = [item.id for item in found if item.media == Media.page]
    children = queue.children_counts(session, pages) if pages else {}
    return [{"item": item, "children": children.get(item.id, 0)} for item in found]


@router.get("/ui/queue", response_class=HTMLResponse)
def queue_page(request: Request, session: Analyst, state: str = "queued") -> Response:
    if state not in TABS:
        raise PageError(404, "No such queue", f"There is no queue of {state!r} items.")
    with service_of(request).sessions() as db:
        found = queue.queue(db, state=state, limit=QUEUE_PAGE, oldest_first=True)
        rows = _rows(db, found)
        counts = queue.counts(db, TABS)
    second = service_of(request).hotline.settings.hotline_second_analyst
    return page(request, "queue.html", rows=rows, state=state, counts=counts, tabs=TABS,
                second_analyst=second, me=actor(session), **_common(request))  # fmt: skip


def _back(target: str, item_id: int) -> str:
    return target if target.startswith("/ui/queue") else f"/ui/items/{item_id}"


@router.post("/ui/items/{item_id}/grade", response_class=HTMLResponse, dependencies=[CsrfChecked])
def grade(
    request: Request,
    session: Analyst,
    item_id: RowId,
    grade: Annotated[str, Form(max_length=20)],
    category: Annotated[str, Form(max_length=100)] = "",
    back: Annotated[str, Form(max_length=200)] = "/ui/queue",
) -> Response:
    hotline = service_of(request).hotline
    if grade not in (Grade.illegal, Grade.police):
        category = ""  # the row's category list goes with every button; only these take it
    with service_of(request).sessions() as db:
        try:
            item = queue.grade(db, item_id, grade, category or None, actor=actor(session),
                               settings=hotline.settings)  # fmt: skip
            db.commit()
        except (InvalidInput, Conflict) as exc:
            if is_htmx(request):
                raise
            session.flash(str(exc), "error")
            return redirect(_back(back, item_id))
        said = _said(item)
        if is_htmx(request) and back.startswith("/ui/queue"):
            return fragment(request, "_queue_row.html", row={"item": item, "children": 0},
                            done=said, **_common(request))  # fmt: skip
    session.flash(f"Item {item_id}: {said}.")
    return redirect(_back(back, item_id))


def _said(item: Any) -> str:
    if item.state == ItemState.review:
        return f"proposed {item.proposed_grade}; a second analyst confirms"
    if item.state == ItemState.queued:
        return "the second analyst disagreed: back in the queue"
    shown = f"{item.grade} ({item.category})" if item.category else str(item.grade)
    return f"graded {shown}, now {item.state}"


@router.post("/ui/items/{item_id}/police-cleared", response_class=HTMLResponse,
             dependencies=[CsrfChecked])  # fmt: skip
def police_cleared(request: Request, session: Analyst, item_id: RowId) -> Response:
    hotline = service_of(request).hotline
    with service_of(request).sessions() as db:
        try:
            queue.police_cleared(db, item_id, actor=actor(session), settings=hotline.settings)
            db.commit()
        except Conflict as exc:
            session.flash(str(exc), "error")
            return redirect(f"/ui/items/{item_id}")
    session.flash(f"Item {item_id}: the police cleared it; it goes on to its notice.")
    return redirect(f"/ui/items/{item_id}")


@router.get("/ui/items/{item_id}", response_class=HTMLResponse)
def item_page(
    request: Request, session: Analyst, item_id: RowId, preview: bool = False
) -> Response:
    with service_of(request).sessions() as db:
        record = queue.describe(db, item_id)
    can_preview = record["media"] not in (Media.page, Media.video)
    response = page(request, "item.html", record=record, preview=preview and can_preview,
                    can_preview=can_preview, waiting=record["state"] in queue.WAITING,
                    me=actor(session), **_common(request))  # fmt: skip
    response.headers["Content-Security-Policy"] = ITEM_PAGE_CSP
    return response


@router.get("/ui/items/{item_id}/preview", response_class=HTMLResponse)
def preview_fragment(request: Request, session: Analyst, item_id: RowId) -> Response:
    """The preview's figure, for htmx to put into the item's page on a click."""
    with service_of(request).sessions() as db:
        items.get_item(db, item_id)  # 404 before the figure asks for its picture
    return fragment(request, "_preview.html", item_id=item_id)


@router.get("/ui/items/{item_id}/preview.jpg")
async def preview_picture(request: Request, session: Analyst, item_id: RowId) -> Response:
    service = service_of(request)
    data = await run_in_threadpool(preview_item, service.hotline, item_id,
                                   service.decode_budget.reserve)  # fmt: skip
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
