"""Pages for admins: organisations, their API keys, subscriptions and distances, and the
probing alerts."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from meldpunt import checks, registry
from meldpunt.api.state import service_of
from meldpunt.checks.probing import list_alerts
from meldpunt.clock import now

from .auth import Admin, CsrfChecked, actor
from .render import PageRoute, fragment, is_htmx, page, redirect
from .sessions import store_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _org_path(name: str) -> str:
    return "/ui/orgs/" + quote(name, safe="")


@router.get("/ui/orgs", response_class=HTMLResponse)
def orgs(request: Request, session: Admin) -> Response:
    with service_of(request).sessions() as db:
        found = checks.list_orgs(db)
        stats = {s.org_id: s for s in checks.org_stats(db)}
        keys: dict[int, int] = {}
        for key in checks.list_keys(db):
            keys[key.org_id] = keys.get(key.org_id, 0) + int(key.active)
    return page(request, "orgs.html", orgs=found, stats=stats, active_keys=keys,
                kinds=checks.ORG_KINDS)  # fmt: skip


@router.post("/ui/orgs", response_class=HTMLResponse, dependencies=[CsrfChecked])
def create_org(
    request: Request,
    session: Admin,
    name: Annotated[str, Form(max_length=200)],
    kind: Annotated[str, Form(max_length=20)],
    contact_email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    name = name.strip()  # the organisation keeps its name without surrounding spaces
    try:
        with service_of(request).sessions() as db:
            checks.create_org(db, name, kind, contact_email=contact_email or None,
                              actor=actor(session))  # fmt: skip
            db.commit()
    except checks.InvalidInput as exc:
        session.flash(str(exc), "error")
        return redirect("/ui/orgs")
    session.flash(f"Organisation {name} created. Next: give it a key.")
    return redirect(_org_path(name))


@router.get("/ui/orgs/{name}", response_class=HTMLResponse)
def one_org(request: Request, session: Admin, name: str) -> Response:
    with service_of(request).sessions() as db:
        org = checks.get_org(db, name)
        keys = checks.list_keys(db, org.id)
        subscription = checks.get_subscription(db, org.id)
        (stats,) = checks.org_stats(db, org.id)
        blocklists = [s for s in registry.list_sets(db) if not s.is_allowlist]
    return page(request, "org.html", org=org, keys=keys, subscription=subscription, stats=stats,
                blocklists=blocklists, filters=sorted(registry.FILTERS), codes=registry.CODES,
                default_categories=registry.SUBSCRIBED_BY_DEFAULT,
                roles=checks.ROLES, org_path=_org_path(org.name))  # fmt: skip


@router.post("/ui/orgs/{name}/keys", response_class=HTMLResponse, dependencies=[CsrfChecked])
def create_key(
    request: Request,
    session: Admin,
    name: str,
    role: Annotated[str, Form(max_length=20)],
    label: Annotated[str, Form(max_length=200)] = "",
    expires_in_days: Annotated[int | None, Form(ge=1, le=3650)] = None,
) -> Response:
    expires = now() + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        with service_of(request).sessions() as db:
            info, key = checks.create_key(db, name, role, label=label or None, expires_at=expires,
                                          actor=actor(session))  # fmt: skip
            db.commit()
    except checks.InvalidInput as exc:
        session.flash(str(exc), "error")
        return redirect(_org_path(name))
    return page(request, "key_created.html", 201, info=info, key=key,
                org_path=_org_path(info.org_name))  # fmt: skip


@router.post("/ui/keys/{key_id}/revoke", response_class=HTMLResponse, dependencies=[CsrfChecked])
def revoke_key(request: Request, session: Admin, key_id: int) -> Response:
    with service_of(request).sessions() as db:
        info = checks.revoke_key(db, key_id, actor=actor(session))
        db.commit()
    service_of(request).key_cache.clear()  # the API's cache: the key stops working at once here
    store_of(request.app.state).drop_key(key_id)  # and so do its page sessions
    if is_htmx(request):
        return fragment(request, "_key_row.html", key=info)
    session.flash(f"Key {info.prefix}… revoked.")
    return redirect(_org_path(info.org_name))


@router.post("/ui/orgs/{name}/subscription", response_class=HTMLResponse,
             dependencies=[CsrfChecked])  # fmt: skip
def subscribe(
    request: Request,
    session: Admin,
    name: str,
    sets_mode: Annotated[str, Form(max_length=10)] = "all",
    sets: Annotated[list[str] | None, Form()] = None,
    categories_mode: Annotated[str, Form(max_length=10)] = "all",
    categories: Annotated[list[str] | None, Form()] = None,
) -> Response:
    chosen_sets = None if sets_mode == "all" else (sets or [])
    chosen_categories = None if categories_mode == "all" else (categories or [])
    try:
        with service_of(request).sessions() as db:
            checks.set_subscription(db, name, sets=chosen_sets, categories=chosen_categories,
                                    actor=actor(session))  # fmt: skip
            db.commit()
    except checks.InvalidInput as exc:
        session.flash(f"Subscription not changed: {exc}", "error")
        return redirect(_org_path(name))
    # this process's checks use it at once, others within their cache time
    service_of(request).subscriptions.clear()
    session.flash("Subscription saved; checks use it within seconds.")
    return redirect(_org_path(name))


@router.post("/ui/orgs/{name}/distances", response_class=HTMLResponse, dependencies=[CsrfChecked])
def distances(
    request: Request, session: Admin, name: str, show: Annotated[bool, Form()] = False
) -> Response:
    with service_of(request).sessions() as db:
        org = checks.set_show_distances(db, name, show, actor=actor(session))
        db.commit()
    service_of(request).key_cache.clear()  # this process at once, others within their cache time
    shown = "now show" if org.show_distances else "no longer show"
    session.flash(f"{org.name}'s check answers {shown} distances.")
    return redirect(_org_path(org.name))


@router.get("/ui/probing", response_class=HTMLResponse)
def probing(request: Request, session: Admin) -> Response:
    with service_of(request).sessions() as db:
        alerts = list_alerts(db, limit=200)
    return page(request, "probing.html", alerts=alerts, now=now())
