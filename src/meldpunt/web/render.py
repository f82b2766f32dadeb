"""Rendering pages: the Jinja2 environment, the page errors, and the route class that turns every
error of a page into an HTML page (never the API's JSON) and adds the pages' security headers.

The Content-Security-Policy allows scripts, styles and requests from meldpunt itself only, and no
images at all (``img-src 'none'``): even if a picture's address slipped into a page, the browser
would not load it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException

from meldpunt.checks import Role
from meldpunt.errors import MeldpuntError

__all__ = [
    "NAV",
    "PageError",
    "PageRoute",
    "SignInRequired",
    "done",
    "fragment",
    "is_htmx",
    "page",
    "redirect",
]

TEMPLATES = Path(__file__).parent / "templates"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'none'; media-src 'none'; object-src 'none'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

#: The navigation: (label, path, roles that see it).
NAV: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("Dashboard", "/ui/", frozenset({Role.analyst, Role.admin})),
    ("Queue", "/ui/queue", frozenset({Role.analyst, Role.admin})),
    ("Sets", "/ui/sets", frozenset({Role.analyst, Role.admin})),
    ("Check a file", "/ui/check", frozenset({Role.analyst, Role.admin})),
    ("Reviews", "/ui/reviews", frozenset({Role.analyst, Role.admin})),
    ("Reports", "/ui/reports", frozenset({Role.analyst, Role.admin})),
    ("Contacts", "/ui/contacts", frozenset({Role.analyst, Role.admin})),
    ("Contact needed", "/ui/contact-needed", frozenset({Role.analyst, Role.admin})),
    ("Notices", "/ui/notices", frozenset({Role.analyst, Role.admin})),
    ("Hits", "/ui/hits", frozenset({Role.platform, Role.admin})),
    ("Organisations", "/ui/orgs", frozenset({Role.admin})),
    ("Partners", "/ui/partners", frozenset({Role.admin})),
    ("Probing", "/ui/probing", frozenset({Role.admin})),
    ("Authority", "/ui/authority", frozenset({Role.authority, Role.admin})),
    ("Triage", "/ui/triage", frozenset({Role.analyst, Role.admin})),
)


def _when(value: datetime | None) -> Markup:
    if value is None:
        return Markup("—")
    return Markup('<time datetime="{}">{}</time>').format(
        value.isoformat(), value.strftime("%Y-%m-%d %H:%M UTC")
    )


def _number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["when"] = _when
env.filters["number"] = _number
env.filters["urlpart"] = lambda value: quote(str(value), safe="")


class SignInRequired(Exception):
    """No session, or its key stopped working: go to the sign-in page."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "sign in")
        self.message = message


class PageError(Exception):
    """An error to show as a page with this status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _context(request: Request, context: dict[str, Any]) -> dict[str, Any]:
    session = getattr(request.state, "web_session", None)
    user = session.principal if session is not None else None
    nav = [(label, path) for label, path, roles in NAV if user is not None and user.role in roles]
    return {
        "user": user,
        "csrf": session.csrf if session is not None else "",
        "nav": nav,
        "flashes": session.take_flashes() if session is not None else [],
        "path": request.url.path,
        **context,
    }


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A whole page (the template extends ``base.html``)."""
    html = env.get_template(template).render(_context(request, context))
    return HTMLResponse(html, status)


def fragment(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A piece of a page, for htmx to swap in (no flashes are taken)."""
    session = getattr(request.state, "web_session", None)
    values = {"csrf": session.csrf if session is not None else "", **context}
    return HTMLResponse(env.get_template(template).render(values), status)


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def done(request: Request, path: str) -> Response:
    """After a form: go to ``path`` (htmx is told to load it as a whole page)."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": path})
    return redirect(path)


def _sign_in_response(request: Request, exc: SignInRequired) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = "/ui/sign-in" if request.method != "GET" else f"/ui/sign-in?next={quote(target)}"
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": location})
    return redirect(location)


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    if is_htmx(request):  # the message goes above the page, the page stays as it is
        response = fragment(
            request, "_message.html", status, kind="error", text=f"{title}: {message}"
        )
        response.headers.update({"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"})
        return response
    return page(request, "error.html", status, title=title, message=message)


class PageRoute(APIRoute):
    """Routes of the pages: errors become pages, and every answer gets the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            response: Response
            try:
                response = await handler(request)
            except SignInRequired as exc:
                response = _sign_in_response(request, exc)
            except PageError as exc:
                response = _error_page(request, exc.status, exc.title, exc.message)
            except MeldpuntError as exc:  # every room's error knows its status
                title = "Not found" if exc.status == 404 else "That did not work"
                response = _error_page(request, exc.status, title, str(exc))
            except StarletteHTTPException as exc:  # the form parser's (too many files)
                response = _error_page(
                    request, exc.status_code, "That did not work", str(exc.detail)
                )
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', '')}"
                    for e in exc.errors()[:5]
                )
                response = _error_page(request, 422, "The request was not understood", problems)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return page_handler
