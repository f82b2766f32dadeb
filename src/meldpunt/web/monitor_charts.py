"""The monitor's charts, drawn on the server as SVG (altair's Vega-Lite, rendered by
vl-convert) and put inline beside the tables: no script, no picture request, nothing the
pages' Content-Security-Policy would stop.

Drawing a chart takes a tenth of a second or more, so each is kept per (chart, period, naming)
together with the ``computed_at`` of the figures it shows: the same figures reuse it, and
changed figures are drawn again at most every ``REDRAW_SECONDS`` (the tables beside them are
always current).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import altair as alt
import vl_convert
from markupsafe import Markup

from meldpunt import clock
from meldpunt.monitor.tables import HosterRow, PlatformRow

__all__ = [
    "REDRAW_SECONDS",
    "buckets_chart",
    "cached",
    "concentration_chart",
    "outcomes_chart",
    "within_24h_chart",
]

REDRAW_SECONDS = 30.0
_KEEP = 256
_BUCKETS = (
    ("offline_24h", "within 24 hours", "#1a7f37"),
    ("offline_48h", "24 to 48 hours", "#bf8700"),
    ("offline_later", "after 48 hours", "#cf222e"),
    ("online", "still online", "#6e7781"),
)
_OUTCOMES = (
    ("blocked", "#1a7f37"), ("removed", "#2da44e"), ("reported", "#0969da"),
    ("false_positive", "#8250df"), ("other", "#6e7781"), ("pending", "#cf222e"),
)  # fmt: skip

_lock = threading.Lock()
_cache: OrderedDict[tuple[Any, ...], tuple[datetime | None, float, Markup]] = OrderedDict()


def cached(
    key: tuple[Any, ...], computed_at: datetime | None, draw: Callable[[], Markup]
) -> Markup:
    """The chart ``key`` for figures computed at ``computed_at``, drawn by ``draw`` when the
    kept one is older than both those figures and ``REDRAW_SECONDS``."""
    now = clock.monotonic()
    with _lock:
        kept = _cache.get(key)
        if kept is not None and (kept[0] == computed_at or now - kept[1] < REDRAW_SECONDS):
            _cache.move_to_end(key)
            return kept[2]
    svg = draw()
    with _lock:
        _cache[key] = (computed_at, now, svg)
        _cache.move_to_end(key)
        while len(_cache) > _KEEP:
            _cache.popitem(last=False)
    return svg


def _svg(chart: alt.TopLevelMixin, label: str) -> Markup:
    svg = vl_convert.vegalite_to_svg(chart.to_dict())
    # an accessible name for the figure; the text of the chart itself is escaped by vl-convert
    start = svg.index("<svg") + len("<svg")
    title = Markup(' role="img" aria-label="{}"').format(label)
    return Markup(svg[:start]) + title + Markup(svg[start:])  # noqa: S704 (vl-convert's SVG)


def buckets_chart(rows: Sequence[HosterRow], title: str) -> Markup:
    """Stacked bars per hoster: how many of its notified URLs went offline within 24 hours,
    24 to 48, later, and how many are still online."""
    values = [
        {"hoster": row.name, "when": label, "order": index, "urls": getattr(row, name)}
        for row in rows
        for index, (name, label, _) in enumerate(_BUCKETS)
    ]
    names = [row.name for row in rows]
    chart = (
        alt.Chart(alt.Data(values=values), title=title)
        .mark_bar()
        .encode(
            y=alt.Y("hoster:N", sort=names, title=None),
            x=alt.X("urls:Q", stack="zero", title="URLs notified"),
            color=alt.Color(
                "when:N",
                scale=alt.Scale(domain=[b[1] for b in _BUCKETS], range=[b[2] for b in _BUCKETS]),
                legend=alt.Legend(title="offline", orient="bottom"),
            ),
            order=alt.Order("order:Q"),
        )
        .properties(width=480)
    )
    return _svg(chart, title)


def within_24h_chart(points: Sequence[tuple[str, float | None]], title: str) -> Markup:
    """The share of notified URLs offline within 24 hours, per period (all hosters)."""
    values = [{"period": label, "share": share} for label, share in points if share is not None]
    chart = (
        alt.Chart(alt.Data(values=values), title=title)
        .mark_line(point=True, color="#1a7f37")
        .encode(
            x=alt.X("period:O", title=None, sort=None),
            y=alt.Y(
                "share:Q",
                title="offline within 24 hours",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
        )  # fmt: skip
        .properties(width=480, height=180)
    )
    return _svg(chart, title)


def concentration_chart(rows: Sequence[HosterRow], others: float, title: str) -> Markup:
    """Each of the largest hosters' share of the period's notified URLs, and the rest."""
    values = [{"hoster": row.name, "share": row.share_of_notified or 0.0} for row in rows]
    if others > 0:
        values.append({"hoster": "all others", "share": others})
    chart = (
        alt.Chart(alt.Data(values=values), title=title)
        .mark_bar(color="#0969da")
        .encode(
            y=alt.Y("hoster:N", sort=[str(v["hoster"]) for v in values], title=None),
            x=alt.X("share:Q", title="share of URLs notified", axis=alt.Axis(format="%")),
        )
        .properties(width=480)
    )
    return _svg(chart, title)


def outcomes_chart(rows: Sequence[PlatformRow], title: str) -> Markup:
    """Stacked bars per platform: its hits by outcome, and those still waiting for one."""
    values = [
        {"platform": row.name, "outcome": name.replace("_", " "), "order": index,
         "hits": getattr(row, name)}
        for row in rows
        for index, (name, _) in enumerate(_OUTCOMES)
    ]  # fmt: skip
    chart = (
        alt.Chart(alt.Data(values=values), title=title)
        .mark_bar()
        .encode(
            y=alt.Y("platform:N", sort=[row.name for row in rows], title=None),
            x=alt.X("hits:Q", stack="zero", title="hits"),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(
                    domain=[o[0].replace("_", " ") for o in _OUTCOMES],
                    range=[o[1] for o in _OUTCOMES],
                ),
                legend=alt.Legend(title="outcome", orient="bottom"),
            ),  # fmt: skip
            order=alt.Order("order:Q"),
        )
        .properties(width=480)
    )
    return _svg(chart, title)
