"""Signing in and out of the pages, and the dependencies that guard every page.

``role(...)`` (and ``AnyUser``, ``Analyst``, ``Admin``, ``HitsReader``) admits a signed-in
session whose key has one of the roles (else a 403 page); without a session the browser is sent
to the sign-in page. ``CsrfChecked`` refuses a POST whose form (or ``X-CSRF-Token`` header) does
not carry the session's token, or that a browser says came from another site.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse

from meldpunt.api.state import service_of
from meldpunt.checks import NotFound, Principal, Role, list_keys

from .render import PageError, PageRoute, SignInRequired, page, redirect
from .sessions import COOKIE, WebSession, store_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _set_cookie(request: Request, response: Response, session_id: str) -> None:
    response.set_cookie(COOKIE, session_id, path="/ui", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")  # fmt: skip


def _key_still_works(request: Request, principal: Principal) -> bool:
    with service_of(request).sessions() as db:
        try:
            keys = list_keys(db, principal.org_id)
        except NotFound:
            return False
    return any(key.id == principal.key_id and key.active for key in keys)


def signed_in(request: Request) -> WebSession:
    store = store_of(request.app.state)
    session = store.get(request.cookies.get(COOKIE))
    if session is None or session.principal is None:
        raise SignInRequired()
    if not _key_still_works(request, session.principal):
        store.drop(session.id)
        raise SignInRequired("the key of this session was revoked or has expired")
    request.state.web_session = session
    return session


def role(*roles: str) -> Callable[..., WebSession]:
    """A dependency that admits signed-in sessions of these roles only (else a 403 page)."""

    def check(session: Annotated[WebSession, Depends(signed_in)]) -> WebSession:
        assert session.principal is not None
        if session.principal.role not in roles:
            raise PageError(403, "Not for your role",
                            f"This page is for {' and '.join(roles)} keys; you signed in with "
                            f"a {session.principal.role} key.")  # fmt: skip
        return session

    return check


async def csrf_checked(
    request: Request, session: Annotated[WebSession, Depends(signed_in)]
) -> None:
    """Refuse a cross-site or token-less POST of a signed-in session (403)."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    foreign = site in ("cross-site", "same-site") or (
        origin not in (None, "null") and urlsplit(origin).netloc != request.headers.get("host")
    )
    token = request.headers.get("x-csrf-token")
    if token is None:  # the form is parsed once: its limit on files holds for the route too
        form = await request.form(max_files=service_of(request).settings.max_upload_files)
        value = form.get("csrf")
        token = value if isinstance(value, str) else None
    if foreign or not session.csrf_ok(token):
        raise PageError(403, "Form refused",
                        "This form was not sent from a page of this session (its security token "
                        "is missing or out of date). Reload the page and try again.")  # fmt: skip


AnyUser = Annotated[WebSession, Depends(role(*Role))]
Analyst = Annotated[WebSession, Depends(role(Role.analyst, Role.admin))]
Admin = Annotated[WebSession, Depends(role(Role.admin))]
HitsReader = Annotated[WebSession, Depends(role(Role.platform, Role.admin))]
CsrfChecked = Depends(csrf_checked)


def _safe_next(target: str | None) -> str:
    """Only a path of the pages: never another site (``//host``) or a scheme."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def actor(session: WebSession) -> str:
    assert session.principal is not None
    return f"key:{session.principal.key_id}"


@router.get("/", response_class=HTMLResponse)
def root() -> Response:
    return redirect("/ui/")


@router.get("/ui", response_class=HTMLResponse)
def ui_root() -> Response:
    return redirect("/ui/")


@router.get("/ui/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str | None = None) -> Response:
    store = store_of(request.app.state)
    session = store.get(request.cookies.get(COOKIE))
    if session is not None and session.principal is not None:
        return redirect(_safe_next(next))
    if session is None:
        session = store.new()
    request.state.web_session = session
    response = page(request, "sign_in.html", next=_safe_next(next), error=None)
    _set_cookie(request, response, session.id)
    return response


@router.post("/ui/sign-in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    key: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/ui/",
) -> Response:
    store = store_of(request.app.state)
    anonymous = store.get(request.cookies.get(COOKIE))
    if anonymous is None or not anonymous.csrf_ok(csrf):
        # Also when the page sat open for hours: a new form with a new token fixes it.
        raise PageError(403, "Form refused",
                        "The sign-in form has expired or did not come from this site. "
                        "Open the sign-in page again.")  # fmt: skip
    request.state.web_session = anonymous
    # Imported here: the API's package builds the application, which mounts these pages.
    from meldpunt.api.auth import principal_for_key
    from meldpunt.api.errors import ApiError

    client = request.client.host if request.client is not None else None
    try:  # the API's own check, so that guessing here is limited as it is there
        principal: Principal | None = principal_for_key(service_of(request), key.strip(), client)
    except ApiError as exc:
        if exc.status == 429:
            raise PageError(429, "Too many attempts", exc.message) from None
        principal = None
    if principal is None:
        return page(request, "sign_in.html", 401, next=_safe_next(next),
                    error="That key is unknown, revoked or expired.")  # fmt: skip
    store.drop(anonymous.id)  # a new id after sign-in: an id seen before it is worth nothing
    session = store.new(principal)
    landing = {Role.platform: "/ui/hits", Role.authority: "/ui/authority"}.get(
        Role(principal.role), "/ui/"
    )
    target = _safe_next(next) if next not in ("", "/ui/") else landing
    response = redirect(target)
    _set_cookie(request, response, session.id)
    return response


@router.get("/ui/sign-out", response_class=HTMLResponse)
def sign_out_form(request: Request, session: AnyUser) -> Response:
    return page(request, "sign_out.html")


@router.post("/ui/sign-out", response_class=HTMLResponse, dependencies=[CsrfChecked])
def sign_out(request: Request, session: AnyUser) -> Response:
    store_of(request.app.state).drop(session.id)
    response = redirect("/ui/sign-in")
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response
