"""The public monitor's pages (no sign-in): ``/monitor`` (per hoster, a period at a time, with
charts), ``/monitor/platforms`` (per platform, unnamed) and ``/monitor/report/{year}`` (the
printable yearly report, which states its method). They read the monitor's figures only
(``monitor.tables``); every table links its CSV and JSON (``/v1/monitor/...``). Charts are
inline SVG drawn on the server (``monitor_charts``), kept per period and figures."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from meldpunt.api.state import service_of
from meldpunt.config import Settings
from meldpunt.monitor.errors import MonitorError
from meldpunt.monitor.periods import check_kind, parse_period
from meldpunt.monitor.tables import (
    HosterRow,
    Table,
    hoster_table,
    periods,
    platform_table,
    totals,
)
from meldpunt.monitor.vocabulary import PERIODS, By

from . import monitor_charts as charts
from .render import PageError, PageRoute, page

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE = 100
CHART_ROWS = 15
PeriodKind = Annotated[str, Query(max_length=10)]
At = Annotated[str | None, Query(max_length=10)]
Offset = Annotated[int, Query(ge=0, le=10**9)]


def _settings(request: Request) -> Settings:
    return service_of(request).hotline.settings


def _check(period: str, at: str | None) -> None:
    try:
        check_kind(period)
        if at not in (None, "", "latest"):
            parse_period(period, at)
    except MonitorError as exc:
        raise PageError(400, "No such period", str(exc)) from exc


def _links(by: str, table: Table, offset: int, limit: int) -> dict[str, str]:
    query = {"period": table.period_kind, "at": table.period, "offset": offset, "limit": limit}
    base = f"/v1/monitor/{by}s?"
    return {
        "csv": base + urlencode({**query, "format": "csv"}),
        "json": base + urlencode({**query, "format": "json"}),
    }


def _naming(settings: Settings) -> str:
    if settings.monitor_name_min_notified == 0:
        return "Every hoster is named."
    rule = (
        f"A hoster is named in a period when {settings.monitor_name_min_notified:,} or more of "
        "the URLs notified in it were on its network"
    )
    if settings.monitor_name_after_order:
        rule += ", or when it received an order issued before the period's end"
    return rule + (
        '. Any other hoster appears as "hoster #rank" (its rank by URLs notified), without '
        "its AS number or name."
    )


def _hoster_charts(
    table: Table, trend_points: list[tuple[str, float | None]], per: str | None = None
) -> list[Markup]:
    top: list[HosterRow] = table.rows[:CHART_ROWS] if table.offset == 0 else []
    key = (table.period_kind, table.period, table.public)
    shown = []
    if top:
        shown.append(
            charts.cached(
                ("buckets", *key, tuple(r.name for r in top)),
                table.computed_at,
                lambda: charts.buckets_chart(
                    top, f"When the URLs notified in {table.period} went offline"
                ),
            )
        )
        share = sum(r.share_of_notified or 0.0 for r in top)
        shown.append(
            charts.cached(
                ("concentration", *key, tuple(r.name for r in top)),
                table.computed_at,
                lambda: charts.concentration_chart(
                    top, max(0.0, 1.0 - share), f"Share of the URLs notified in {table.period}"
                ),
            )
        )
    if len(trend_points) > 1:
        last = trend_points[-1][0]
        shown.append(
            charts.cached(
                ("trend", table.period_kind, last, tuple(trend_points)),
                None,
                lambda: charts.within_24h_chart(
                    trend_points, f"Offline within 24 hours, per {table.period_kind}"
                ),
            )
        )
    return shown


def _trend(rows: list[Any]) -> list[tuple[str, float | None]]:
    return [(r.period, r.offline_24h / r.notified if r.notified else None) for r in rows]


@router.get("/monitor", response_class=HTMLResponse)
def hosters_page(
    request: Request, period: PeriodKind = "month", at: At = None, offset: Offset = 0
) -> Response:
    _check(period, at)
    settings = _settings(request)
    with service_of(request).sessions() as db:
        known = periods(db, period)
        if not known:
            return page(request, "monitor.html", table=None, kinds=PERIODS, kind=period,
                        known=[], charts=[], links={}, naming=_naming(settings),
                        offset=0, page_size=PAGE)  # fmt: skip
        table = hoster_table(db, period, at or known[0], settings=settings, public=True,
                             offset=offset, limit=PAGE)  # fmt: skip
        trend_points = _trend(totals(db, period, last=24))
    shown = _hoster_charts(table, trend_points)
    return page(request, "monitor.html", table=table, kinds=PERIODS, kind=period, known=known,
                charts=shown, links=_links("hoster", table, offset, PAGE),
                naming=_naming(settings), offset=offset, page_size=PAGE)  # fmt: skip


@router.get("/monitor/platforms", response_class=HTMLResponse)
def platforms_page(
    request: Request, period: PeriodKind = "month", at: At = None, offset: Offset = 0
) -> Response:
    _check(period, at)
    settings = _settings(request)
    with service_of(request).sessions() as db:
        known = periods(db, period, By.platform)
        table = (
            platform_table(
                db,
                period,
                at or known[0],
                settings=settings,
                public=True,
                offset=offset,
                limit=PAGE,
            )
            if known
            else None
        )
    shown = []
    if table is not None and table.rows and offset == 0:
        top = table.rows[:CHART_ROWS]
        shown.append(
            charts.cached(
                ("outcomes", table.period_kind, table.period),
                table.computed_at,
                lambda: charts.outcomes_chart(
                    top, f"What platforms did with their hits, {table.period}"
                ),
            )
        )
    links = _links("platform", table, offset, PAGE) if table is not None else {}
    return page(request, "monitor_platforms.html", table=table, kinds=PERIODS, kind=period,
                known=known, charts=shown, links=links, offset=offset,
                page_size=PAGE)  # fmt: skip


@router.get("/monitor/report/{year}", response_class=HTMLResponse)
def yearly_report(request: Request, year: Annotated[int, Path(ge=1970, le=9998)]) -> Response:
    settings = _settings(request)
    label = f"{year:04d}"
    with service_of(request).sessions() as db:
        if label not in periods(db, "year"):
            raise PageError(404, "No report for that year", f"There are no figures for {label}.")
        table = hoster_table(db, "year", label, settings=settings, public=True, limit=PAGE)
        quarters = totals(db, "quarter", within=label, last=4)
        months = totals(db, "month", within=label, last=12)
        platforms = (
            platform_table(db, "year", label, settings=settings, public=True, limit=PAGE)
            if label in periods(db, "year", By.platform)
            else None
        )
    shown = _hoster_charts(table, _trend(months), per="month")
    return page(request, "monitor_report.html", year=label, table=table, quarters=quarters,
                months=months, platforms=platforms, charts=shown, naming=_naming(settings),
                links=_links("hoster", table, 0, PAGE),
                due_hours=settings.hit_outcome_due_hours)  # fmt: skip
