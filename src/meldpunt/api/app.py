"""The FastAPI application: `create_app()` is what `meldpunt serve` runs."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp

from meldpunt import __version__
from meldpunt.checks.probing import ProbeDetector, active_throttles
from meldpunt.config import get_settings
from meldpunt.registry.matching import open_matcher
from meldpunt.reports.context import HotlineContext
from meldpunt.store import init_db, make_engine, make_sessionmaker
from meldpunt.web import router as web_router
from meldpunt.worker import WorkerThread

from . import errors
from .auth import FailureLimiter, KeyCache, TtlCache
from .docs import router as docs_router
from .errors import ApiError
from .fastlane import CheckLane
from .follower import IndexFollower
from .limits import BodyLimit, DecodeBudget, RateLimiter, Timing
from .routes_admin import router as admin_router
from .routes_authority import router as authority_router
from .routes_check import router as check_router
from .routes_dsa import router as dsa_router
from .routes_exchange import router as exchange_router
from .routes_items import router as items_router
from .routes_monitor import router as monitor_router
from .routes_notices import router as notices_router
from .routes_protect import router as protect_router
from .routes_reports import router as reports_router
from .routes_takedown import router as takedown_router
from .schemas import check_request_schemas
from .state import Metrics, ServiceSettings, ServiceState, service_of
from .writer import Writer

__all__ = ["ServiceSettings", "create_app"]


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ip_address(host).is_loopback
    except ValueError:
        return False


def check_metrics_access(request: Request, token: str | None) -> None:
    """/metrics answers a request with the bearer token when one is set, else a request from
    the loopback address only (401 without a token, 403 for a wrong one or another address).
    Behind a reverse proxy on the same machine every request comes from loopback: set a token."""
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if token is not None:
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "unauthenticated", "/metrics needs the metrics token (Bearer)")
        if not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(403, "forbidden", "that is not the metrics token")
        return
    if not _is_loopback(request.client.host if request.client else None):
        raise ApiError(
            403, "forbidden", "/metrics is served to the loopback address only (or set a token)"
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
        service = service_of(self)
        return CheckLane(stack, service, service.settings.max_body_bytes, service.metrics.latency)

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

    hotline = HotlineContext(
        sessions, settings=config.project or get_settings(), use_matcher=follower.use
    )
    worker = WorkerThread(hotline) if config.run_worker else None

    probing = ProbeDetector(config.probing)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        init_db(config.database_url)
        with sessions() as session:  # keys throttled before a restart stay throttled
            for key_id, until in active_throttles(session):
                probing.throttle(key_id, until)
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
    service = ServiceState(
        settings=config,
        sessions=sessions,
        follower=follower,
        writer=writer,
        metrics=Metrics(config.metrics_org_labels),
        key_cache=KeyCache(config.key_cache_seconds, config.key_cache_entries),
        auth_failures=FailureLimiter(config.auth_failures_per_minute),
        subscriptions=TtlCache(config.key_cache_seconds, config.key_cache_entries),
        limiter=RateLimiter(config.rate_per_second, config.rate_burst),
        decode_budget=DecodeBudget(config.decode_budget_bytes),
        parse_limiter=anyio.CapacityLimiter(config.max_parallel_parses),
        probing=probing,
        hotline=hotline,
    )
    app.state.service = service
    app.add_middleware(Timing, histogram=service.metrics.latency)
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

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        summary="Prometheus metrics: with the metrics token, or from the loopback address",
    )
    def metrics(request: Request) -> PlainTextResponse:
        check_metrics_access(request, config.metrics_token)
        status = follower.status()
        service.metrics.index_size.set(float(status["pdq_hashes"] or 0))  # type: ignore[arg-type]
        service.metrics.index_change.set(float(status["index_change"] or 0))  # type: ignore[arg-type]
        return PlainTextResponse(
            generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    app.include_router(check_router)
    app.include_router(admin_router)
    app.include_router(items_router)
    app.include_router(reports_router)
    app.include_router(notices_router)
    app.include_router(takedown_router)
    app.include_router(authority_router)
    app.include_router(monitor_router)
    app.include_router(dsa_router)
    app.include_router(exchange_router)
    app.include_router(protect_router)
    app.include_router(docs_router)
    app.include_router(web_router)
    return app
