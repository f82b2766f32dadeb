"""Pages for analysts: hash sets, their entries, import (upload) and export (download)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Path, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from meldpunt import registry
from meldpunt.api.state import service_of
from meldpunt.api.uploads import add_picture_form, read_picture_form
from meldpunt.registry import EXPORT_FORMATS, FormatError, ImportSummary

from .auth import Analyst, CsrfChecked, actor
from .exporting import CONTENT_TYPES, download_name, stream_export
from .queries import entries_page
from .render import PageError, PageRoute, done, fragment, is_htmx, page, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

IMPORT_FORMATS = ("auto", "plain", "jsonl", "vics", "icse", "te-csv")
PAGE_SIZE = 50


def _set_path(name: str) -> str:
    return "/ui/sets/" + quote(name, safe="")


@router.get("/ui/sets", response_class=HTMLResponse)
def sets(request: Request, session: Analyst) -> Response:
    with service_of(request).sessions() as db:
        summaries = registry.set_summaries(db)
    return page(request, "sets.html", summaries=summaries, categories=sorted(registry.CODES))


@router.post("/ui/sets", response_class=HTMLResponse, dependencies=[CsrfChecked])
def create_set(
    request: Request,
    session: Analyst,
    name: Annotated[str, Form(max_length=200)],
    kind: Annotated[str, Form(max_length=20)] = registry.SetKind.blocklist,
    description: Annotated[str, Form(max_length=2000)] = "",
    default_category: Annotated[str, Form(max_length=100)] = "",
    pdq_threshold: Annotated[int, Form(ge=0, le=64)] = 31,
) -> Response:
    name = name.strip()  # the set keeps its name without surrounding spaces
    try:
        with service_of(request).sessions() as db:
            registry.create_set(db, name, kind=kind, description=description.strip(),
                                default_category=default_category or None,
                                pdq_threshold=pdq_threshold, actor=actor(session))  # fmt: skip
            db.commit()
    except registry.InvalidInput as exc:
        session.flash(str(exc), "error")
        return redirect("/ui/sets")
    session.flash(f"Set {name} created.")
    return redirect(_set_path(name))


@router.get("/ui/sets/{name}", response_class=HTMLResponse)
def one_set(request: Request, session: Analyst, name: str, q: str = "", after: int = 0) -> Response:
    with service_of(request).sessions() as db:
        summary = registry.set_summary(db, name)
        entries, next_after = entries_page(db, summary.set.id, search=q[:300], after=after,
                                           limit=PAGE_SIZE)  # fmt: skip
    values: dict[str, Any] = {
        "summary": summary,
        "hash_set": summary.set,
        "entries": entries,
        "q": q,
        "after": after,
        "next_after": next_after,
        "set_path": _set_path(name),
    }
    if is_htmx(request):
        return fragment(request, "_entries.html", **values)
    return page(request, "set.html", formats=EXPORT_FORMATS, import_formats=IMPORT_FORMATS,
                ways=[w.value for w in registry.MatchWay], **values)  # fmt: skip


@router.post("/ui/sets/{name}/state", response_class=HTMLResponse, dependencies=[CsrfChecked])
def set_state(
    request: Request, session: Analyst, name: str, state: Annotated[str, Form(max_length=20)]
) -> Response:
    if state not in tuple(registry.SetState):
        raise PageError(400, "Unknown state", "A set is either active or disabled.")
    change = registry.enable_set if state == registry.SetState.active else registry.disable_set
    with service_of(request).sessions() as db:
        info = change(db, name, actor=actor(session))
        db.commit()
    word = (
        "enabled: its entries match again"
        if state == registry.SetState.active
        else "disabled: it no longer matches"
    )
    session.flash(f"Set {info.name} {word} (within seconds).")
    return done(request, _set_path(info.name))


@router.post(
    "/ui/sets/{name}/entries/{item_id}/withdraw",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
def withdraw_entry(
    request: Request,
    session: Analyst,
    name: str,
    item_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    with service_of(request).sessions() as db:
        entry = registry.withdraw_item(db, item_id, reason=reason, hash_set=name,
                                       actor=actor(session))  # fmt: skip
        db.commit()
    if is_htmx(request):  # the row, swapped in place
        return fragment(request, "_entry_row.html", e=entry, set_path=_set_path(name))
    session.flash(f"Entry {entry.id} withdrawn: it no longer matches (within seconds).")
    return redirect(_set_path(name))


@router.post("/ui/sets/{name}/pictures", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def add_pictures(request: Request, session: Analyst, name: str) -> Response:
    form = await read_picture_form(request)  # 'file' fields and a category, as the API's
    state = service_of(request)
    outcomes = await run_in_threadpool(add_picture_form, state, name, form, actor(session))
    refused = sum(o.outcome == "rejected" for o in outcomes)
    return page(request, "pictures_result.html", set_path=_set_path(name), set_name=name,
                outcomes=outcomes, refused=refused)  # fmt: skip


@router.post("/ui/sets/{name}/ways", response_class=HTMLResponse, dependencies=[CsrfChecked])
def set_ways(
    request: Request,
    session: Analyst,
    name: str,
    on: Annotated[list[str] | None, Form(max_length=20)] = None,
) -> Response:
    chosen = set(on or [])
    optional = [w.value for w in registry.MatchWay if w != registry.MatchWay.plain]
    if chosen - set(optional):
        raise PageError(400, "Unknown way", f"Ways: {', '.join(optional)}.")
    with service_of(request).sessions() as db:
        info = registry.set_ways(db, name, on=[w for w in optional if w in chosen],
                                 off=[w for w in optional if w not in chosen],
                                 actor=actor(session))  # fmt: skip
        db.commit()
    off = ", ".join(sorted(info.ways_off)) or "none"
    session.flash(f"Set {info.name}: ways turned off: {off} (within seconds).")
    return done(request, _set_path(info.name))


def _import(
    request: Request, name: str, upload: UploadFile, format: str, who: str
) -> ImportSummary:
    with service_of(request).sessions() as db:
        return registry.import_stream(db, name, upload.file, format=format, actor=who,
                                      source=upload.filename or "upload")  # fmt: skip


@router.post("/ui/sets/{name}/import", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def import_file(
    request: Request,
    session: Analyst,
    name: str,
    file: Annotated[UploadFile, File()],
    format: Annotated[str, Form(max_length=20)] = "auto",
) -> Response:
    if format not in IMPORT_FORMATS:
        raise PageError(400, "Unknown format", f"Formats: {', '.join(IMPORT_FORMATS)}.")
    try:
        summary = await run_in_threadpool(_import, request, name, file, format, actor(session))
    except FormatError as exc:
        return page(request, "import_result.html", 400, set_path=_set_path(name), set_name=name,
                    filename=file.filename, summary=None, error=str(exc))  # fmt: skip
    return page(request, "import_result.html", set_path=_set_path(name), set_name=name,
                filename=file.filename, summary=summary, error=None)  # fmt: skip


@router.get("/ui/sets/{name}/export")
def export(request: Request, session: Analyst, name: str, format: str = "jsonl") -> Response:
    if format not in EXPORT_FORMATS:
        raise PageError(400, "Unknown format", f"Export formats: {', '.join(EXPORT_FORMATS)}.")
    with service_of(request).sessions() as db:
        info = registry.get_set(db, name)
    filename = download_name(info.name, format)
    return StreamingResponse(
        stream_export(service_of(request).sessions, info.id, format),
        media_type=CONTENT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
