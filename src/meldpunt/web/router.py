"""The pages' router: ``app.include_router(web_router)`` adds every page and ``/static``.

Pages live under ``/ui/`` (``/`` redirects there); the files they need (htmx, one stylesheet)
are served from ``web/static/`` by meldpunt itself. None of these routes is in the OpenAPI
document: they are for people, not for programs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from . import (
    auth,
    pages_authority,
    pages_exchange,
    pages_main,
    pages_monitor,
    pages_notices,
    pages_orgs,
    pages_protect,
    pages_queue,
    pages_report,
    pages_sets,
    pages_takedown,
    pages_triage,
)
from .render import PageError, PageRoute

__all__ = ["STATIC", "router"]

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(pages_main.router)
router.include_router(pages_sets.router)
router.include_router(pages_orgs.router)
router.include_router(pages_exchange.router)
router.include_router(pages_queue.router)
router.include_router(pages_report.router)
router.include_router(pages_protect.router)
router.include_router(pages_notices.router)
router.include_router(pages_takedown.router)
router.include_router(pages_authority.router)
router.include_router(pages_monitor.router)
router.include_router(pages_triage.router)

fallback = APIRouter(route_class=PageRoute, include_in_schema=False)


@fallback.get("/ui/{rest:path}", response_class=HTMLResponse)
def no_such_page(request: Request, session: auth.AnyUser, rest: str) -> Response:
    raise PageError(404, "No such page", f"There is no page at {request.url.path}.")


router.include_router(fallback)  # last: every other page comes first
router.mount("/static", StaticFiles(directory=STATIC), name="static")
