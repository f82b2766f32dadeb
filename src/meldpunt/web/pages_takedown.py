"""Pages of attribution for analysts: the abuse-contact directory, the "contact needed" queue,
a hoster's items and the forward records of material hosted abroad."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from meldpunt.api.schemas import RowId
from meldpunt.api.state import service_of
from meldpunt.reports.errors import Conflict, InvalidInput
from meldpunt.reports.vocabulary import ITEM_STATES
from meldpunt.takedown import attribution, directory, forwards, listing
from meldpunt.takedown.vocabulary import CONTACT_KINDS

from .auth import Analyst, CsrfChecked, actor
from .render import PageError, PageRoute, done, fragment, is_htmx, page, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def _download(text: str, name: str, fmt: str) -> Response:
    disposition = f'attachment; filename="{name}.{fmt}"'
    return Response(text, media_type=FORMATS[fmt], headers={"Content-Disposition": disposition})


def _format(value: str) -> str:
    if value not in FORMATS:
        raise PageError(400, "Unknown format", f"Exports are csv or json, not {value!r}.")
    return value


# --- the directory -------------------------------------------------------------------------------


@router.get("/ui/contacts", response_class=HTMLResponse)
def contacts(request: Request, session: Analyst) -> Response:
    with service_of(request).sessions() as db:
        found = directory.list_contacts(db)
    settings = service_of(request).hotline.settings
    return page(request, "contacts.html", contacts=found, kinds=CONTACT_KINDS,
                group_seconds=settings.takedown_group_seconds)  # fmt: skip


def _contact_fields(
    email: str, asn: str, org: str, domain: str, country: str, kind: str, group_seconds: str,
    hold_weekends: bool, organisation: str, note: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "email": email or None, "asn": asn or None, "org": org or None,
        "domain": domain or None, "country": country or None, "kind": kind,
        "hold_weekends": hold_weekends, "organisation": organisation or None, "note": note or None,
        "group_seconds": group_seconds.strip() or None,
    }  # fmt: skip


Text = Annotated[str, Form(max_length=2000)]


@router.post("/ui/contacts", response_class=HTMLResponse, dependencies=[CsrfChecked])
def add_contact(
    request: Request,
    session: Analyst,
    name: Annotated[str, Form(max_length=200)],
    email: Text = "",
    asn: Text = "",
    org: Text = "",
    domain: Text = "",
    country: Text = "",
    kind: Annotated[str, Form(max_length=20)] = "hoster",
    group_seconds: Text = "",
    hold_weekends: Annotated[bool, Form()] = False,
    approved: Annotated[bool, Form()] = False,
    organisation: Text = "",
    note: Text = "",
) -> Response:
    fields = _contact_fields(email, asn, org, domain, country, kind, group_seconds,
                             hold_weekends, organisation, note)  # fmt: skip
    try:
        with service_of(request).sessions() as db:
            info = directory.add_contact(db, name, actor=actor(session), approved=approved,
                                         **fields)  # fmt: skip
            db.commit()
    except (InvalidInput, Conflict) as exc:
        session.flash(f"Contact not added: {exc}", "error")
        return redirect("/ui/contacts")
    session.flash(f"Contact {info.name} added{'' if info.approved else ' (not approved yet)'}.")
    return redirect("/ui/contacts")


@router.get("/ui/contacts/export")
def export_contacts(request: Request, session: Analyst, format: str = "csv") -> Response:
    fmt = _format(format)
    with service_of(request).sessions() as db:
        text = directory.export_contacts(db, fmt)
    return _download(text, "abuse-contacts", fmt)


@router.get("/ui/contacts/{contact_id}", response_class=HTMLResponse)
def one_contact(request: Request, session: Analyst, contact_id: RowId) -> Response:
    with service_of(request).sessions() as db:
        info = directory.get_contact(db, contact_id)
    return page(request, "contact.html", contact=info, kinds=CONTACT_KINDS)


@router.post("/ui/contacts/{contact_id}", response_class=HTMLResponse, dependencies=[CsrfChecked])
def edit_contact(
    request: Request,
    session: Analyst,
    contact_id: RowId,
    name: Annotated[str, Form(max_length=200)],
    email: Text = "",
    asn: Text = "",
    org: Text = "",
    domain: Text = "",
    country: Text = "",
    kind: Annotated[str, Form(max_length=20)] = "hoster",
    group_seconds: Text = "",
    hold_weekends: Annotated[bool, Form()] = False,
    organisation: Text = "",
    note: Text = "",
) -> Response:
    fields = _contact_fields(email, asn, org, domain, country, kind, group_seconds,
                             hold_weekends, organisation, note)  # fmt: skip
    if fields["group_seconds"] is None:
        fields.pop("group_seconds")
    try:
        with service_of(request).sessions() as db:
            info = directory.update_contact(db, contact_id, actor=actor(session), name=name,
                                            **fields)  # fmt: skip
            db.commit()
    except (InvalidInput, Conflict) as exc:
        session.flash(f"Not saved: {exc}", "error")
        return redirect(f"/ui/contacts/{contact_id}")
    session.flash(f"Contact {info.name} saved.")
    return redirect(f"/ui/contacts/{contact_id}")


@router.post("/ui/contacts/{contact_id}/approve", response_class=HTMLResponse,
             dependencies=[CsrfChecked])  # fmt: skip
def approve_contact(
    request: Request, session: Analyst, contact_id: RowId, approved: Annotated[bool, Form()] = True
) -> Response:
    try:
        with service_of(request).sessions() as db:
            info = directory.approve_contact(db, contact_id, actor=actor(session),
                                             approved=approved)  # fmt: skip
            db.commit()
    except InvalidInput as exc:
        session.flash(f"Not approved: {exc}", "error")
        return redirect("/ui/contacts")
    if is_htmx(request):
        return fragment(request, "_contact_row.html", c=info)
    state = "approved: notices go to it" if info.approved else "no longer approved"
    session.flash(f"{info.name} is {state}.")
    return redirect("/ui/contacts")


# --- the queue of items without a contact --------------------------------------------------------


@router.get("/ui/contact-needed", response_class=HTMLResponse)
def contact_needed(request: Request, session: Analyst) -> Response:
    with service_of(request).sessions() as db:
        waiting = listing.contact_needed(db)
    return page(request, "contact_needed.html", waiting=waiting)


@router.post("/ui/contact-needed/{item_id}/retry", response_class=HTMLResponse,
             dependencies=[CsrfChecked])  # fmt: skip
def retry(request: Request, session: Analyst, item_id: RowId) -> Response:
    with service_of(request).sessions() as db:
        attribution.retry_attribution(db, item_id, actor=actor(session))
        db.commit()
    session.flash(f"Item {item_id} is attributed again within moments.")
    return done(request, "/ui/contact-needed")


# --- a hoster's items ----------------------------------------------------------------------------


@router.get("/ui/hosters/{asn}", response_class=HTMLResponse)
def hoster(request: Request, session: Analyst, asn: int, state: str | None = None) -> Response:
    if state is not None and state not in ITEM_STATES:
        raise PageError(400, "Unknown state", f"{state!r} is not a state of an item.")
    if not 0 < asn < 2**32:
        raise PageError(404, "Not found", f"{asn} is not an AS number.")
    with service_of(request).sessions() as db:
        view = listing.hoster(db, asn, state=state)
    return page(request, "hoster.html", view=view, state=state)


# --- forward records -----------------------------------------------------------------------------


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PageError(400, "Not a date", f"{value[:40]!r} is not a date (2025-03-01).") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/ui/forwards", response_class=HTMLResponse)
def forward_records(request: Request, session: Analyst, since: str | None = None) -> Response:
    moment = _since(since)
    with service_of(request).sessions() as db:
        records = forwards.list_forwards(db, moment, limit=500)
    return page(request, "forwards.html", records=records, since=since or "")


@router.get("/ui/forwards/export")
def export_forwards(
    request: Request, session: Analyst, format: str = "json", since: str | None = None
) -> Response:
    fmt = _format(format)
    moment = _since(since)
    with service_of(request).sessions() as db:
        text = forwards.export_forwards(db, moment, fmt)
    return _download(text, "forwards", fmt)
