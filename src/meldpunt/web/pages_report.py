"""The public report form (``/report``, the "meldknop"), the reporter's status page, and the
analysts' pages of reports (``/ui/reports``: the list, one report, the bulk import).

The form needs no sign-in and no JavaScript: one ``<form>`` posted as it is. It takes URLs only
(one per line in a text box); there is no file field, so no picture can ever be uploaded to it.
It has no session to tie a CSRF token to, so it carries a signed form token instead (an HMAC of
when it was issued, with the installation's link key): a post without a fresh token from this
site, or that a browser says came from another site, is refused. Each address may send
``report_form_per_hour`` reports an hour (a token bucket on ``clock.monotonic()``); past that it
gets a 429 page with ``Retry-After``.

The receipt shows the reference and the private status link once; the status page shows each
URL's state in plain words, never media and never anything of other reporters.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
from collections import OrderedDict
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from meldpunt import clock
from meldpunt.api.state import service_of
from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.importing import FORMATS, ReportImportSummary, import_reports
from meldpunt.reports.intake import (
    MAX_EMAIL,
    MAX_NAME,
    MAX_NOTE,
    InvalidReport,
    ReportReceipt,
    submit_report,
)
from meldpunt.reports.views import STATE_WORDS, recent_reports, report_details, report_status
from meldpunt.reports.vocabulary import ReportKind, ReportSource

from .auth import Analyst, CsrfChecked, actor
from .render import PageError, PageRoute, page

__all__ = ["AddressLimiter", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

#: How long a form may sit open before it is sent.
FORM_LIFETIME = timedelta(hours=6)
#: The text box of URLs: a thousand long URLs, one per line.
MAX_URL_BOX = 1_000 * 2_100
KIND_LABELS = {
    ReportKind.csam: "Child sexual abuse material (sexual images or videos of a minor)",
    ReportKind.ncii: "An intimate image or video shared without consent",
    ReportKind.other: "Other illegal content",
}
PAGE_SIZE = 50


class AddressLimiter:
    """``per_hour`` reports per client address (0: no limit), in bursts up to as many (at least
    one); the least recently seen addresses are forgotten past ``max_addresses``."""

    def __init__(self, per_hour: float, max_addresses: int = 100_000) -> None:
        self.per_hour, self.max_addresses = per_hour, max_addresses
        self.burst = max(1.0, per_hour)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, address: str) -> int | None:
        """Take one report from ``address``'s allowance: None, or the seconds until it has one."""
        if self.per_hour <= 0:
            return None
        now = clock.monotonic()
        rate = self.per_hour / 3600
        with self._lock:
            tokens, then = self._buckets.get(address, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * rate)
            if tokens < 1:
                self._buckets[address] = (tokens, now)
                return max(1, math.ceil((1 - tokens) / rate))
            self._buckets[address] = (tokens - 1, now)
            self._buckets.move_to_end(address)
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)
        return None


_limiter_lock = threading.Lock()


def limiter_of(request: Request) -> AddressLimiter:
    """The application's limiter of the form (``app.state.report_limiter``), made on first use."""
    state = request.app.state
    limiter = getattr(state, "report_limiter", None)
    if limiter is None:
        with _limiter_lock:
            limiter = getattr(state, "report_limiter", None)
            if limiter is None:
                per_hour = service_of(request).hotline.settings.report_form_per_hour
                limiter = state.report_limiter = AddressLimiter(per_hour)
    return limiter


def _signature(key: bytes, issued: int, nonce: str) -> str:
    message = f"report-form|{issued}|{nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def form_token(key: bytes) -> str:
    issued = int(clock.now().timestamp())
    nonce = secrets.token_urlsafe(12)
    return f"{issued}.{nonce}.{_signature(key, issued, nonce)}"


def form_token_ok(key: bytes, token: str) -> bool:
    issued_text, _, rest = token.partition(".")
    nonce, _, signature = rest.partition(".")
    if not (issued_text.isascii() and issued_text.isdigit()) or len(issued_text) > 12:
        return False
    issued = int(issued_text)
    if not hmac.compare_digest(_signature(key, issued, nonce), signature):
        return False
    age = clock.now().timestamp() - issued
    return -60 <= age <= FORM_LIFETIME.total_seconds()


def _from_elsewhere(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    return site in ("cross-site", "same-site") or (
        origin not in (None, "null") and urlsplit(origin).netloc != request.headers.get("host")
    )


def _form(
    request: Request,
    status: int = 200,
    error: str | None = None,
    problems: list[tuple[int, str]] | None = None,
    **values: Any,
) -> HTMLResponse:
    fields = {"urls": "", "kind": "", "note": "", "name": "", "email": "", "good_faith": False}
    fields.update(values)
    hotline = service_of(request).hotline
    return page(request, "report_form.html", status, kinds=KIND_LABELS, error=error,
                problems=problems or [], form_token=form_token(hotline.link_key),
                max_urls=hotline.settings.hotline_report_urls, **fields)  # fmt: skip


@router.get("/report", response_class=HTMLResponse)
def report_form(request: Request) -> Response:
    return _form(request)


# Starlette reads a form field of at most 1 MB unless told otherwise: the box of URLs needs more
# (a thousand URLs of 2,048 characters, percent-encoded as browsers send them); the request's
# body limit still bounds the whole.
@router.post("/report", response_class=HTMLResponse,
             form_limits={"max_part_size": 4 * MAX_URL_BOX})  # fmt: skip
def send_report(
    request: Request,
    form_token: Annotated[str, Form(max_length=200)] = "",
    urls: Annotated[str, Form(max_length=MAX_URL_BOX)] = "",
    kind: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=MAX_NOTE + 1_000)] = "",
    name: Annotated[str, Form(max_length=MAX_NAME + 100)] = "",
    email: Annotated[str, Form(max_length=MAX_EMAIL + 100)] = "",
    good_faith: Annotated[bool, Form()] = False,
) -> Response:
    state = service_of(request)
    if _from_elsewhere(request) or not form_token_ok(state.hotline.link_key, form_token):
        raise PageError(403, "Form refused",
                        "This form has expired or was not sent from this site. Open the report "
                        "form again and send it from there.")  # fmt: skip
    address = request.client.host if request.client is not None else "unknown"
    wait = limiter_of(request).take(address)
    if wait is not None:
        response = page(request, "error.html", 429, title="Too many reports",
                        message="This address has sent as many reports as it may for now. "
                        f"Please try again in {math.ceil(wait / 60)} minutes.")  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response
    values: dict[str, Any] = {"urls": urls, "kind": kind, "note": note, "name": name,
                              "email": email, "good_faith": good_faith}  # fmt: skip
    lines = [line.strip() for line in urls.splitlines() if line.strip()]
    if kind not in tuple(ReportKind):
        return _form(request, 400, "Please choose what the material is.", **values)
    if not lines:
        return _form(request, 400, "Please give at least one URL.", **values)
    try:
        with state.sessions() as session:
            receipt = submit_report(
                session, source=ReportSource.form, kind=kind, urls=[(u, None) for u in lines],
                note=note, reporter_name=name, reporter_email=email, good_faith=good_faith,
                actor="public", settings=state.hotline.settings,
            )  # fmt: skip
            session.commit()
    except InvalidReport as exc:
        problems = [(p.position + 1, p.message) for p in exc.problems]
        return _form(request, 400, "Some lines are not URLs that can be reported:",
                     problems, **values)  # fmt: skip
    except InvalidInput as exc:
        return _form(request, exc.status, str(exc)[:1].upper() + str(exc)[1:] + ".", **values)
    return _receipt(request, receipt)


def _receipt(request: Request, receipt: ReportReceipt) -> HTMLResponse:
    settings = service_of(request).hotline.settings
    assert receipt.status_path is not None
    link = settings.public_url.rstrip("/") + receipt.status_path
    return page(request, "report_receipt.html", 201, receipt=receipt, link=link,
                hotline=settings.hotline_name)  # fmt: skip


@router.get("/report/status/{ref}", response_class=HTMLResponse)
def status(
    request: Request, ref: str, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    with service_of(request).sessions() as session:
        view = report_status(session, ref, token)
    return page(request, "report_status.html", view=view, kinds=KIND_LABELS)


# --- the analysts' pages ------------------------------------------------------------------------


@router.get("/ui/reports", response_class=HTMLResponse)
def reports(
    request: Request,
    session: Analyst,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    source: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    if source not in (None, "", *ReportSource):
        raise PageError(400, "Unknown source", f"Sources: {', '.join(ReportSource)}.")
    with service_of(request).sessions() as db:
        found = recent_reports(db, limit=PAGE_SIZE, before=before, source=source or None)
    following = found[-1].id if len(found) == PAGE_SIZE else None
    return page(request, "reports.html", reports=found, following=following,
                source=source or "", sources=tuple(ReportSource))  # fmt: skip


@router.get("/ui/reports/import", response_class=HTMLResponse)
def import_form(request: Request, session: Analyst) -> Response:
    return page(request, "reports_import.html", formats=FORMATS, kinds=KIND_LABELS,
                summary=None, filename=None, error=None)  # fmt: skip


def _import(request: Request, upload: UploadFile, format: str, kind: str | None,
            who: str) -> ReportImportSummary:  # fmt: skip
    state = service_of(request)
    with state.sessions() as db:
        return import_reports(db, upload.file, actor=who, format=format, kind=kind,
                              settings=state.hotline.settings)  # fmt: skip


@router.post("/ui/reports/import", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def import_file(
    request: Request,
    session: Analyst,
    file: Annotated[UploadFile, File()],
    format: Annotated[str, Form(max_length=20)] = "auto",
    kind: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    if format not in FORMATS:
        raise PageError(400, "Unknown format", f"Formats: {', '.join(FORMATS)}.")
    if kind not in ("", *ReportKind):
        raise PageError(400, "Unknown kind", f"Kinds: {', '.join(ReportKind)}.")
    summary = await run_in_threadpool(_import, request, file, format, kind or None,
                                      actor(session))  # fmt: skip
    status_code = 200 if summary.taken else 400
    return page(request, "reports_import.html", status_code, formats=FORMATS, kinds=KIND_LABELS,
                summary=summary, filename=file.filename, error=None)  # fmt: skip


@router.get("/ui/reports/{ref}", response_class=HTMLResponse)
def one_report(request: Request, session: Analyst, ref: str) -> Response:
    with service_of(request).sessions() as db:
        view = report_details(db, ref[:40])
    return page(request, "report.html", view=view, kinds=KIND_LABELS, words=STATE_WORDS)
