"""The service's state: one typed object made by ``create_app()`` and kept as
``app.state.service``. Routes, the check lane, the key dependencies and the pages reach it with
``service_of(request)`` instead of loose attributes of ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp

from meldpunt.checks import Subscription
from meldpunt.checks.probing import ProbeDetector, ProbingPolicy
from meldpunt.config import Settings, get_settings
from meldpunt.signals import HashOptions, ImageLimits
from meldpunt.signals.hashing import QUERY

from .follower import IndexFollower
from .limits import DecodeBudget, RateLimiter
from .schemas import json_body_limit
from .writer import Writer

if TYPE_CHECKING:  # the key checks use this module, so it may not import theirs at run time
    from meldpunt.reports.context import HotlineContext

    from .auth import FailureLimiter, KeyCache, TtlCache

__all__ = ["Metrics", "ServiceSettings", "ServiceState", "service_of"]


@dataclass
class ServiceSettings:
    """What the service needs: the project settings plus the service's own limits."""

    database_url: str
    snapshot_dir: str | None = None  # where `meldpunt index snapshot` writes; loaded at start
    pdq_min_quality: int = 50
    max_upload_pixels: int = 50_000_000  # the service's own limit; the CLI's is max_image_pixels
    max_upload_bytes: int = 50 * 1024 * 1024
    max_upload_files: int = 100
    max_body_bytes: int = field(default_factory=json_body_limit)  # JSON: from the schema
    max_multipart_bytes: int = 256 * 1024 * 1024  # a whole upload request, its files together
    decode_budget_bytes: int = 1024 * 1024 * 1024  # memory for decoding pictures, all requests
    max_parallel_parses: int = 2  # large JSON bodies parsed at once, in worker threads
    rate_per_second: float = 500.0
    rate_burst: int = 1_000
    key_cache_seconds: float = 5.0
    key_cache_entries: int = 10_000
    auth_failures_per_minute: float = 60.0
    poll_seconds: float = 1.0
    run_worker: bool = True  # the embedded worker thread (re-checks); off where workers run apart
    check_lane: bool = True  # the hot routes without FastAPI's machinery (off: to compare)
    metrics_token: str | None = None  # GET /metrics with this bearer token; None: loopback only
    metrics_org_labels: bool = False  # counters labelled by organisation name
    probing: ProbingPolicy = field(default_factory=ProbingPolicy)
    #: The project settings the hotline's worker, routes and pages read (None: ``get_settings()``).
    project: Settings | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> ServiceSettings:
        s = settings or get_settings()
        values: dict[str, Any] = {
            "database_url": s.database_url,
            "snapshot_dir": str(Path(s.data_dir) / "index"),
            "pdq_min_quality": s.pdq_min_quality,
            "max_body_bytes": s.max_body_bytes or json_body_limit(),
            "project": s,
        }
        for name in (
            "max_upload_pixels",
            "max_upload_bytes",
            "max_upload_files",
            "max_multipart_bytes",
            "decode_budget_bytes",
            "max_parallel_parses",
            "rate_per_second",
            "rate_burst",
            "key_cache_seconds",
            "key_cache_entries",
            "auth_failures_per_minute",
            "poll_seconds",
            "metrics_token",
            "metrics_org_labels",
        ):
            values[name] = getattr(s, name)  # same names in Settings and here
        values["probing"] = ProbingPolicy(
            min_close=s.probing_min_close,
            min_edge=s.probing_min_edge,
            throttle=timedelta(minutes=s.probing_throttle_minutes),
            throttled_per_minute=s.probing_throttled_per_minute,
        )
        values.update(overrides)
        return cls(**values)

    def hash_options(self) -> HashOptions:
        """How the service hashes an uploaded picture (the API and the pages alike): with its
        orientation hashes, under its own pixel limit, and no picture whose decoding alone would
        need more than the whole decoding budget."""
        limits = ImageLimits(
            max_bytes=self.max_upload_bytes,
            max_pixels=self.max_upload_pixels,
            max_decode_bytes=self.decode_budget_bytes,
        )
        project = self.project or get_settings()
        return HashOptions(
            dihedral=True,
            min_quality=self.pdq_min_quality,
            limits=limits,
            trim=project.pdq_trim,
            features=QUERY if project.match_features else 0,
        )


class Metrics:
    """The service's Prometheus counters. Organisation names label them only when
    ``org_labels`` (``metrics_org_labels``): who checks how much is not everyone's business."""

    def __init__(self, org_labels: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.org_labels = org_labels
        r = self.registry
        by_org = ["org"] if org_labels else []
        self.checks = Counter("meldpunt_checks", "Items checked", by_org, registry=r)
        self.hits = Counter("meldpunt_hits", "Matches recorded as hits", by_org, registry=r)
        self.outcomes = Counter(
            "meldpunt_outcomes", "Outcomes reported", [*by_org, "outcome"], registry=r
        )
        self.latency = Histogram(
            "meldpunt_request_seconds",
            "Request latency",
            ["route"],
            registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2),
        )
        self.index_size = Gauge("meldpunt_index_pdq_hashes", "PDQ hashes in the index", registry=r)
        self.index_change = Gauge(
            "meldpunt_index_change", "Registry change the index is at", registry=r
        )

    def checked(self, org: str, items: int, hits: int) -> None:
        checks, found = (
            (self.checks.labels(org), self.hits.labels(org))
            if self.org_labels
            else (self.checks, self.hits)
        )
        checks.inc(items)
        found.inc(hits)

    def outcome(self, org: str, outcome: str) -> None:
        labels = (org, outcome) if self.org_labels else (outcome,)
        self.outcomes.labels(*labels).inc()


@dataclass
class ServiceState:
    """Everything the service's routes and pages share, made once per application."""

    settings: ServiceSettings
    sessions: sessionmaker[Session]
    follower: IndexFollower
    writer: Writer
    metrics: Metrics
    #: API keys' answers (by the key's SHA-256), kept ``key_cache_seconds``
    key_cache: KeyCache
    #: failed authentications per client address
    auth_failures: FailureLimiter
    #: organisations' subscriptions (by organisation id), kept as long
    subscriptions: TtlCache[Subscription]
    limiter: RateLimiter
    #: the memory lent to decoding pictures, all requests together
    decode_budget: DecodeBudget
    #: large JSON bodies parsed at once, in worker threads
    parse_limiter: anyio.CapacityLimiter
    #: probing of the lists through answers, per key (throttles, alerts)
    probing: ProbeDetector
    #: what the hotline's work needs: settings, fetch policy, mail relay, link key, matcher
    hotline: HotlineContext


def service_of(where: HTTPConnection | ASGIApp) -> ServiceState:
    """The state of the application that serves this request (or of this application)."""
    app = where.app if isinstance(where, HTTPConnection) else where
    return cast(ServiceState, cast(Any, app).state.service)
