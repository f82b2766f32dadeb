"""Reports and the safe URL fetcher: the one place where meldpunt talks to the network."""

from meldpunt.reports.errors import Conflict, InvalidInput, NotFound, ReportsError
from meldpunt.reports.fetcher import (
    FetchError,
    FetchFailed,
    FetchPolicy,
    FetchRefused,
    FetchResult,
    FetchTimedOut,
    FetchUnresolvable,
    check_address,
    fetch,
)

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "ReportsError",
    "FetchError",
    "FetchFailed",
    "FetchPolicy",
    "FetchRefused",
    "FetchResult",
    "FetchTimedOut",
    "FetchUnresolvable",
    "check_address",
    "fetch",
]
