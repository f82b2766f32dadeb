"""Routes of the DSA exports (``docs/dsa.md``): a platform's statements of reasons for the
Transparency Database, one batch of at most 100 per page; the hotline's yearly report as
trusted flagger for analysts and admins.

A ``platform`` key sees only its own organisation's statements: the organisation comes from
the key, never from the request.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from meldpunt.monitor.dsa import (
    BATCH_LIMIT,
    AutomatedDecision,
    StatementOptions,
    statement_counts,
    statement_page,
)
from meldpunt.monitor.transparency import flagger_report, report_csv, report_html, report_json

from .auth import AnalystKey, PlatformKey
from .state import service_of

router = APIRouter()

DateText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=40,
        description="A date (YYYY-MM-DD, midnight UTC) or an ISO date and time",
    ),
]


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"


@router.get(
    "/v1/dsa/statements",
    tags=["dsa"],
    summary="A platform's statements of reasons for the DSA Transparency Database, 100 a page",
)
def statements(
    request: Request,
    principal: PlatformKey,
    since: DateText,
    until: DateText,
    page: Annotated[int, Query(ge=1, le=10**7)] = 1,
    automated_decision: Annotated[
        AutomatedDecision, Query(description="How automated the platform's decisions were")
    ] = AutomatedDecision.AUTOMATED_DECISION_PARTIALLY,
) -> dict[str, Any]:
    """The statements for the hits this platform removed or blocked in ``[since, until)``
    (at most 366 days), ordered by when it acted. ``statements`` is a body for the Transparency
    Database's ``POST /api/v1/statements`` as it stands; ``next`` is the following page or
    null. ``counts`` says how many statements the whole range has and which outcomes made
    none."""
    options = StatementOptions(automated_decision=str(automated_decision))
    with service_of(request).sessions() as session:
        batch = statement_page(session, principal.org_id, since, until, page, options)
        counts = statement_counts(session, principal.org_id, since, until)
    return {
        "statements": batch.statements,
        "page": batch.number,
        "next": batch.number + 1 if batch.has_next else None,
        "batch_limit": BATCH_LIMIT,
        "counts": counts.plain(),
    }


@router.get(
    "/v1/dsa/flagger-report",
    tags=["dsa"],
    summary="The hotline's yearly report as trusted flagger (notices per hoster and outcome)",
    response_model=None,
)
def flagger(
    request: Request,
    principal: AnalystKey,
    year: Annotated[int, Query(ge=2000, le=2100)],
    format: ReportFormat = ReportFormat.json,
) -> dict[str, Any] | Response:
    """Notices sent per hoster, per type of content, and what became of the URLs: removed
    (with the time to removal), not removed, pending. ``format=csv`` gives the rows,
    ``format=html`` a printable page that states the method."""
    state = service_of(request)
    with state.sessions() as session:
        report = flagger_report(session, year, flagger=state.hotline.settings.hotline_name)
    if format == ReportFormat.csv:
        return PlainTextResponse(report_csv(report), media_type="text/csv; charset=utf-8")
    if format == ReportFormat.html:
        return HTMLResponse(report_html(report))
    return report_json(report)
