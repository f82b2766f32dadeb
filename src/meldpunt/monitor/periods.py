"""Periods: the UTC month, quarter or year a moment falls in, and their labels
(``2026-03``, ``2026-Q1``, ``2026``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .errors import InvalidInput
from .vocabulary import PERIODS, Period

__all__ = ["check_kind", "next_start", "parse_period", "period_of", "period_of_day"]

_LABELS = {
    Period.month: re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$"),
    Period.quarter: re.compile(r"^(\d{4})-Q([1-4])$"),
    Period.year: re.compile(r"^(\d{4})$"),
}


def check_kind(kind: str) -> Period:
    if kind not in PERIODS:
        raise InvalidInput(f"period must be one of {', '.join(PERIODS)}, not {kind!r}")
    return Period(kind)


def period_of(kind: str, at: datetime) -> str:
    """The label of the period of ``kind`` that the moment ``at`` (UTC) falls in."""
    at = at.astimezone(UTC)
    if kind == Period.month:
        return f"{at.year:04d}-{at.month:02d}"
    if kind == Period.quarter:
        return f"{at.year:04d}-Q{(at.month - 1) // 3 + 1}"
    return f"{at.year:04d}"


def period_of_day(kind: str, day: str) -> str:
    """The label of the period a 'YYYY-MM-DD' day falls in."""
    if kind == Period.month:
        return day[:7]
    if kind == Period.quarter:
        return f"{day[:4]}-Q{(int(day[5:7]) - 1) // 3 + 1}"
    return day[:4]


def parse_period(kind: str, label: str) -> tuple[datetime, datetime]:
    """The start (inclusive) and end (exclusive) of the period ``label`` of ``kind``."""
    kind = check_kind(kind)
    match = _LABELS[kind].match(label or "")
    examples = {Period.month: "2026-03", Period.quarter: "2026-Q1", Period.year: "2026"}
    if match is None or not 1970 <= int(match.group(1)) <= 9998:
        raise InvalidInput(f"a {kind} is written like {examples[kind]}, not {label!r}")
    year = int(match.group(1))
    if kind == Period.month:
        start = datetime(year, int(match.group(2)), 1, tzinfo=UTC)
    elif kind == Period.quarter:
        start = datetime(year, 3 * (int(match.group(2)) - 1) + 1, 1, tzinfo=UTC)
    else:
        start = datetime(year, 1, 1, tzinfo=UTC)
    return start, next_start(kind, start)


def next_start(kind: str, start: datetime) -> datetime:
    """The start of the period after the one that begins at ``start``."""
    months = {Period.month: 1, Period.quarter: 3, Period.year: 12}[Period(kind)]
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
