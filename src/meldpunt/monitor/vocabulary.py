"""The monitor's vocabularies: what its tables are per, and the periods they cover."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BYS", "PERIODS", "By", "Period"]


class By(StrEnum):
    hoster = "hoster"  # network owner and AS number as attributed at notice time
    platform = "platform"  # an organisation that calls the check service


class Period(StrEnum):
    month = "month"  # '2026-03'
    quarter = "quarter"  # '2026-Q1'
    year = "year"  # '2026'


BYS: tuple[str, ...] = tuple(By)
PERIODS: tuple[str, ...] = tuple(Period)
