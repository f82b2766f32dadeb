"""Reports and the safe URL fetcher: the one place where meldpunt talks to the network."""

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
