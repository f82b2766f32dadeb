"""The public monitor's tables for programs (no key): per hoster and per platform, per month,
quarter or year, as JSON or CSV; the same tables as the pages (``/monitor``) and
``meldpunt monitor export``, read from the monitor's figures only (``docs/monitor.md``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from meldpunt.monitor.errors import InvalidInput
from meldpunt.monitor.periods import check_kind
from meldpunt.monitor.tables import (
    FORMATS,
    MAX_ROWS,
    hoster_table,
    periods,
    platform_table,
    table_csv,
    table_json,
)
from meldpunt.monitor.vocabulary import BYS, PERIODS, By

from .state import service_of

router = APIRouter()

PeriodKind = Annotated[
    str, Query(max_length=10, description="month, quarter or year", examples=["month"])
]
At = Annotated[
    str | None,
    Query(max_length=10, description="The period: 2026-03, 2026-Q1 or 2026 (default: latest)"),
]
Format = Annotated[str, Query(max_length=4, description="json or csv")]
Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=MAX_ROWS)]


def _format(value: str) -> str:
    if value not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def _answer(request: Request, by: str, period: str, at: str | None, output: str, offset: int,
            limit: int) -> Any:  # fmt: skip
    output = _format(output)
    check_kind(period)
    service = service_of(request)
    make = hoster_table if by == By.hoster else platform_table
    with service.sessions() as session:
        table = make(session, period, at, settings=service.hotline.settings, public=True,
                     offset=offset, limit=limit)  # fmt: skip
    if output == "csv":
        name = f"monitor-{by}-{table.period}.csv"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(table_csv(table), media_type="text/csv; charset=utf-8",
                        headers=disposition)  # fmt: skip
    return table_json(table)


@router.get(
    "/v1/monitor/hosters",
    tags=["monitor"],
    summary="Per hoster: URLs reported and notified, how fast they came down (public)",
)
def hosters(
    request: Request,
    period: PeriodKind = "month",
    at: At = None,
    format: Format = "json",
    offset: Offset = 0,
    limit: Limit = 100,
) -> Any:
    return _answer(request, By.hoster, period, at, format, offset, limit)


@router.get(
    "/v1/monitor/platforms",
    tags=["monitor"],
    summary="Per platform (unnamed): checks, hits, outcomes, overdue hits (public)",
)
def platforms(
    request: Request,
    period: PeriodKind = "month",
    at: At = None,
    format: Format = "json",
    offset: Offset = 0,
    limit: Limit = 100,
) -> Any:
    return _answer(request, By.platform, period, at, format, offset, limit)


@router.get(
    "/v1/monitor/periods", tags=["monitor"], summary="The periods that have figures (public)"
)
def monitor_periods(request: Request) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        return {by: {kind: periods(session, kind, by) for kind in PERIODS} for by in BYS}
