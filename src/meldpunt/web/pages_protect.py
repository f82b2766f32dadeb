"""The page ``/protect`` (no sign-in): a person hashes their own intimate pictures in their
browser and sends only the hashes (``docs/selfhash.md``). The hashing runs in
``static/protect/hashing.js``, served by meldpunt itself; the page talks to
``/v1/protect/...`` (``api/routes_protect.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from meldpunt.api.state import service_of

from .render import PageRoute, page

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/protect", response_class=HTMLResponse)
def protect(request: Request) -> Response:
    settings = service_of(request).hotline.settings
    response = page(request, "protect.html", max_pictures=settings.selfhash_max_pictures)
    # The page may read the pictures the person chooses and show them from blob: addresses;
    # it may send requests to this site only.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' blob:; connect-src 'self'; script-src 'self'; "
        "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
