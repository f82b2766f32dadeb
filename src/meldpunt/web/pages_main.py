"""The dashboard, hits, the false-positive review queue, and "check a file"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from meldpunt import checks, registry
from meldpunt.api.state import service_of
from meldpunt.registry.matching import MatchAnswer, picture_query
from meldpunt.reports import queue

from .auth import Analyst, AnyUser, CsrfChecked, HitsReader, actor
from .queries import today
from .render import PageError, PageRoute, fragment, is_htmx, page, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

HITS_PAGE = 100


@router.get("/ui/", response_class=HTMLResponse)
def dashboard(request: Request, session: AnyUser) -> Response:
    principal = session.principal
    assert principal is not None
    if principal.role == checks.Role.platform:
        return redirect("/ui/hits")
    admin = principal.role == checks.Role.admin
    with service_of(request).sessions() as db:
        summaries = registry.set_summaries(db)
        open_reviews = checks.review_queue(db)
        waiting = sum(queue.counts(db, queue.WAITING).values())
        orgs = len(checks.list_orgs(db)) if admin else None
        figures = today(db) if admin else None
        overdue = sum(s.overdue for s in checks.org_stats(db)) if admin else None
    follower = service_of(request).follower
    return page(request, "dashboard.html", sets=len(summaries),
                active_sets=sum(s.set.active for s in summaries),
                entries=sum(s.active_items for s in summaries), reviews=len(open_reviews),
                flagged=sum(r.flagged for r in open_reviews), orgs=orgs,
                waiting=waiting,
                today=figures, overdue=overdue, index=follower.status(),
                ready=follower.ready)  # fmt: skip


@router.get("/ui/hits", response_class=HTMLResponse)
def hits(
    request: Request, session: HitsReader, overdue: bool = False, before: int | None = None
) -> Response:
    principal = session.principal
    assert principal is not None
    own = principal.org_id if principal.role == checks.Role.platform else None
    with service_of(request).sessions() as db:
        if overdue:
            found = checks.overdue_hits(db, own)
        else:
            found = checks.list_hits(db, own, limit=HITS_PAGE + 1, before_id=before)
        set_names = {s.id: s.name for s in registry.list_sets(db)}
        org_names = {o.id: o.name for o in checks.list_orgs(db)} if own is None else {}
        # a platform sees distances only when an admin allows them (as in the API's answers)
        distances = own is None or checks.get_org(db, own).show_distances
    more = not overdue and len(found) > HITS_PAGE
    found = found[:HITS_PAGE] if not overdue else found
    return page(request, "hits.html", hits=found, overdue=overdue, set_names=set_names,
                org_names=org_names, admin=own is None, distances=distances,
                next_before=found[-1].row_id if more and found else None)  # fmt: skip


def _review_rows(request: Request, reviews: list[checks.ReviewInfo]) -> list[dict[str, Any]]:
    rows = []
    with service_of(request).sessions() as db:
        set_names = {s.id: s.name for s in registry.list_sets(db)}
        org_names = {o.id: o.name for o in checks.list_orgs(db)}
        for review in reviews:
            try:
                entry: registry.ItemInfo | None = registry.get_item(db, review.item_id)
            except registry.NotFound:
                entry = None
            rows.append({"review": review, "entry": entry, "set": set_names.get(review.set_id),
                         "org": org_names.get(review.org_id)})  # fmt: skip
    return rows


@router.get("/ui/reviews", response_class=HTMLResponse)
def reviews(request: Request, session: Analyst, all: bool = False) -> Response:
    with service_of(request).sessions() as db:
        found = checks.review_queue(db, open_only=not all)
    return page(request, "reviews.html", rows=_review_rows(request, found), show_all=all)


@router.post("/ui/reviews/{review_id}", response_class=HTMLResponse, dependencies=[CsrfChecked])
def resolve(
    request: Request,
    session: Analyst,
    review_id: int,
    resolution: Annotated[str, Form(max_length=20)],
) -> Response:
    with service_of(request).sessions() as db:
        review = checks.resolve_review(db, review_id, resolution, actor=actor(session))
        db.commit()
    if is_htmx(request):
        (row,) = _review_rows(request, [review])
        return fragment(request, "_review_row.html", row=row)
    words: dict[str, str] = {
        checks.ReviewResolution.confirmed: "confirmed: the entry is disabled",
        checks.ReviewResolution.rejected: "rejected: the entry stays",
    }
    session.flash(f"Review {review_id} {words.get(resolution, resolution)}.")
    return redirect("/ui/reviews")


@dataclass(frozen=True)
class FileCheck:
    """What the check page shows: the file's name, size and signals, and the answer."""

    filename: str
    size: int
    md5: str
    sha1: str
    sha256: str
    pdq: str | None
    pdq_quality: int | None
    problem: str | None
    answer: MatchAnswer


def _check(request: Request, filename: str, data: bytes) -> FileCheck:
    service = service_of(request)
    settings = service.settings
    # not a picture: the digests can still match, and the page says why there is no PDQ hash
    query, error = picture_query(
        data, settings.hash_options(), decode=service.decode_budget.pdq_signal
    )
    problem = f"{error} ({error.code})" if error is not None else None
    answer = service.follower.use(
        lambda matcher: matcher.match(query, min_quality=settings.pdq_min_quality)
    )
    assert query.md5 and query.sha1 and query.sha256  # bytes always have their digests
    return FileCheck(filename, len(data), query.md5, query.sha1, query.sha256, query.pdq,
                     query.pdq_quality, problem, answer)  # fmt: skip


@router.get("/ui/check", response_class=HTMLResponse)
def check_form(request: Request, session: Analyst) -> Response:
    return page(request, "check.html", result=None)


@router.post("/ui/check", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def check_file(
    request: Request, session: Analyst, file: Annotated[UploadFile, File()]
) -> Response:
    limit = service_of(request).settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PageError(413, "File too large", f"Files are limited to {limit:,} bytes.")
    result = await run_in_threadpool(_check, request, file.filename or "upload", data)
    return page(request, "check.html", result=result)
