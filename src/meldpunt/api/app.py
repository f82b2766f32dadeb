"""The FastAPI application: `create_app()` is what `meldpunt serve` runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp

from meldpunt import __version__
from meldpunt.config import Settings, get_settings
from meldpunt.registry.matching import open_matcher
from meldpunt.reports.fetcher import FetchPolicy
from meldpunt.store import init_db, make_engine, make_sessionmaker
from meldpunt.web import router as web_router
from meldpunt.worker import WorkerThread

from . import errors
from .auth import FailureLimiter, KeyCache, TtlCache
from .docs import router as docs_router
from .fastlane import CheckLane
from .follower import IndexFollower
from .limits import BodyLimit, DecodeBudget, RateLimiter, Timing
from .routes_admin import router as admin_router
from .routes_check import router as check_router
from .schemas import check_request_schemas, json_body_limit
from .writer import Writer


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

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> ServiceSettings:
        s = settings or get_settings()
        values: dict[str, Any] = {
            "database_url": s.database_url,
            "snapshot_dir": str(Path(s.data_dir) / "index"),
            "pdq_min_quality": s.pdq_min_quality,
            "max_body_bytes": s.max_body_bytes or json_body_limit(),
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
        ):
            values[name] = getattr(s, name)  # same names in Settings and here
        values.update(overrides)
        return cls(**values)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.checks = Counter("meldpunt_checks", "Items checked", ["org"], registry=r)
        self.hits = Counter("meldpunt_hits", "Matches recorded as hits", ["org"], registry=r)
        self.outcomes = Counter(
            "meldpunt_outcomes", "Outcomes reported", ["org", "outcome"], registry=r
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


class _App(FastAPI):
    """FastAPI with the check lane in front of its middleware stack (see ``fastlane``)."""

    def __init__(self, *, lane: bool, **kwargs: Any) -> None:
        self._lane = lane
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if not self._lane:
            return stack
        settings = self.state.settings
        return CheckLane(stack, self.state, settings.max_body_bytes, self.state.metrics.latency)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            # The check route reads its JSON body itself (it also takes files): name its schema.
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                check_request_schemas()
            )
        return self.openapi_schema or {}


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    config = settings or ServiceSettings.from_settings()
    engine = make_engine(config.database_url)
    sessions = make_sessionmaker(engine)
    writer = Writer(sessions)
    snapshots = Path(config.snapshot_dir) if config.snapshot_dir else None
    follower = IndexFollower(
        sessions,
        poll_seconds=config.poll_seconds,
        load=lambda session: open_matcher(session, snapshots),
    )

    worker = WorkerThread(sessions, FetchPolicy.from_settings()) if config.run_worker else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        init_db(config.database_url)
        follower.start()
        writer.start()
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            writer.stop()
            follower.stop()
            engine.dispose()

    app = _App(
        lane=config.check_lane,
        title="meldpunt",
        version=__version__,
        summary="The hash check service: check uploads against the registry of known material.",
        lifespan=lifespan,
        docs_url=None,  # served by api/docs.py from local files
        redoc_url=None,
    )
    app.state.settings = config
    app.state.sessions = sessions
    app.state.follower = follower
    app.state.key_cache = KeyCache(config.key_cache_seconds, config.key_cache_entries)
    app.state.auth_failures = FailureLimiter(config.auth_failures_per_minute)
    app.state.subscriptions = TtlCache(config.key_cache_seconds, config.key_cache_entries)
    app.state.writer = writer
    app.state.limiter = RateLimiter(config.rate_per_second, config.rate_burst)
    app.state.metrics = Metrics()
    app.state.decode_budget = DecodeBudget(config.decode_budget_bytes)
    app.state.parse_limiter = anyio.CapacityLimiter(config.max_parallel_parses)
    app.add_middleware(Timing, histogram=app.state.metrics.latency)
    app.add_middleware(
        BodyLimit,
        max_bytes=config.max_body_bytes,
        max_multipart_bytes=config.max_multipart_bytes,
    )
    errors.install(app)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="The index is loaded and in step")
    def readyz() -> JSONResponse:
        status = follower.status()
        return JSONResponse({"ready": follower.ready, **status}, 200 if follower.ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        status = follower.status()
        app.state.metrics.index_size.set(float(status["pdq_hashes"] or 0))  # type: ignore[arg-type]
        app.state.metrics.index_change.set(float(status["index_change"] or 0))  # type: ignore[arg-type]
        return PlainTextResponse(
            generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    app.include_router(check_router)
    app.include_router(admin_router)
    app.include_router(docs_router)
    app.include_router(web_router)
    return app
