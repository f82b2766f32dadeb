"""Admin pages of the exchange: partners, their rules, and how far behind each followed set is
(change numbers and time) with its last failure; adding a partner, changing its key, pulling
now (``docs/exchange.md``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from meldpunt import exchange, registry
from meldpunt.api.state import service_of
from meldpunt.exchange import ExchangeError
from meldpunt.registry import RegistryError

from .auth import Admin, CsrfChecked, actor
from .render import PageRoute, page, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _words(value: str) -> list[str]:
    return [v.strip() for v in value.replace("\n", ",").split(",") if v.strip()]


def _path(name: str) -> str:
    return "/ui/partners/" + quote(name, safe="")


@router.get("/ui/partners", response_class=HTMLResponse)
def partners(request: Request, session: Admin) -> Response:
    state = service_of(request)
    with state.sessions() as db:
        found = exchange.list_partners(db)
        sets = registry.list_sets(db)
    key = exchange.instance_key(state.hotline.settings.data_dir)
    return page(request, "partners.html", partners=found, sets=sets, key=key)


@router.post("/ui/partners", response_class=HTMLResponse, dependencies=[CsrfChecked])
def add_partner(
    request: Request,
    session: Admin,
    name: Annotated[str, Form(max_length=200)],
    url: Annotated[str, Form(max_length=2000)],
    public_key: Annotated[str, Form(max_length=200)],
    send: Annotated[str, Form(max_length=10_000)] = "",
    receive: Annotated[str, Form(max_length=10_000)] = "",
    token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        with service_of(request).sessions() as db:
            info, issued = exchange.add_partner(
                db,
                name,
                url=url,
                public_key=public_key,
                send_sets=_words(send),
                receive=[exchange.parse_receive(r) for r in _words(receive)],
                remote_token=token.strip() or None,
                actor=actor(session),
            )
            db.commit()
    except (ExchangeError, RegistryError) as exc:
        session.flash(str(exc), "error")
        return redirect("/ui/partners")
    if issued:
        session.flash(f"Partner {info.name} added. Give it this token (shown once): {issued}")
    else:
        session.flash(f"Partner {info.name} added.")
    return redirect(_path(info.name))


@router.get("/ui/partners/{name}", response_class=HTMLResponse)
def one_partner(request: Request, session: Admin, name: str) -> Response:
    with service_of(request).sessions() as db:
        info = exchange.get_partner(db, name)
    return page(request, "partner.html", partner=info, partner_path=_path(info.name))


@router.post("/ui/partners/{name}/key", response_class=HTMLResponse, dependencies=[CsrfChecked])
def set_key(
    request: Request,
    session: Admin,
    name: str,
    public_key: Annotated[str, Form(max_length=200)],
) -> Response:
    try:
        with service_of(request).sessions() as db:
            exchange.update_partner(db, name, public_key=public_key, actor=actor(session))
            db.commit()
    except ExchangeError as exc:
        session.flash(str(exc), "error")
    else:
        session.flash("The new key is set: the partner's pages verify with it from now on.")
    return redirect(_path(name))


@router.post("/ui/partners/{name}/pull", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def pull_now(request: Request, session: Admin, name: str) -> Response:
    context = service_of(request).hotline
    policy = exchange.partner_policy(context.fetch_policy)
    try:
        results = await run_in_threadpool(exchange.pull, context.sessions, name, policy)
    except ExchangeError as exc:
        session.flash(str(exc), "error")
        return redirect(_path(name))
    for r in results:
        if r.error:
            session.flash(f"{r.remote_set}: {r.error}", "error")
        else:
            session.flash(f"{r.remote_set}: {r.changes} changes applied, at {r.after} of {r.head}.")
    return redirect(_path(name))
