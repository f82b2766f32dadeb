"""The authority's pages (roles ``authority`` and ``admin``): ``/ui/authority`` (escalations by
hoster with "open case", cases, orders with their status, deadline and penalty payments, fines),
a case (its items with their timelines, the order and fine forms), an order (compliance per
URL, penalty payments, withdraw and publish), a hoster's duty-of-care record
(``/ui/authority/hosters/{asn}``; ``/ui/hosters/{asn}`` is the analysts' view of its items).
Without sign-in: the public decisions (``/decisions``) and the order behind the signed link in
its mail (``/order/{token}``), where the hoster acknowledges it. No page shows media."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from meldpunt.api.state import service_of
from meldpunt.authority import cases, fines, links, orders, publication, records
from meldpunt.authority.delivery import document_of
from meldpunt.authority.document import local_time, utc_time
from meldpunt.authority.errors import InvalidInput
from meldpunt.authority.hosters import check_asn
from meldpunt.authority.vocabulary import REVIEW_OUTCOMES
from meldpunt.checks import Role
from meldpunt.store.models import Order

from .auth import CsrfChecked, actor, role
from .render import PageError, PageRoute, done, env, page, redirect
from .sessions import WebSession

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Authority = Annotated[WebSession, Depends(role(Role.authority, Role.admin))]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
PAGE = 100


def _iso_when(value: str | datetime | None) -> Markup:
    if value is None or value == "":
        return Markup("—")
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return Markup('<time datetime="{}">{}</time>').format(
        moment.isoformat(), moment.strftime("%Y-%m-%d %H:%M UTC")
    )


def _euros(cents: int | None) -> str:
    return "—" if cents is None else f"€{cents / 100:,.2f}"


env.filters["isowhen"] = _iso_when
env.filters["euros"] = _euros


def _optional_float(value: str, what: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a number") from None


def _ids(values: list[str]) -> list[int]:
    found = []
    for value in values:
        for part in value.replace(" ", "").split(","):
            if part:
                if not part.isdigit():
                    raise InvalidInput(f"{part[:20]!r} is not an item id")
                found.append(int(part))
    return found


@router.get("/ui/authority", response_class=HTMLResponse)
def overview(request: Request, session: Authority) -> Response:
    with service_of(request).sessions() as db:
        groups = [g.plain() for g in cases.escalations(db)]
        found_cases = cases.list_cases(db, limit=PAGE)
        found_orders = orders.list_orders(db, limit=PAGE)
        found_fines = fines.list_fines(db, limit=PAGE)
    return page(request, "authority.html", groups=groups, cases=found_cases,
                orders=found_orders, fines=found_fines)  # fmt: skip


@router.post("/ui/authority/cases", response_class=HTMLResponse, dependencies=[CsrfChecked])
def open_case(
    request: Request,
    session: Authority,
    items: Annotated[list[str], Form(max_length=1000)] = [],  # noqa: B006
    url: Annotated[str, Form(max_length=2048)] = "",
    asn: Annotated[str, Form(max_length=12)] = "",
    title: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    number = check_asn(asn) if asn.strip() else None
    org = session.principal.org_id if session.principal else None
    with service_of(request).sessions() as db:
        case = cases.open_case(db, actor=actor(session), item_ids=_ids(items) or None,
                               url=url.strip() or None, asn=number, title=title or None,
                               org_id=org)  # fmt: skip
        db.commit()
        session.flash(f"Case {case.ref} opened.")
        return done(request, f"/ui/authority/cases/{case.id}")


@router.get("/ui/authority/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, session: Authority, case_id: RowId) -> Response:
    settings = service_of(request).hotline.settings
    with service_of(request).sessions() as db:
        view = cases.get_case(db, case_id)
    return page(request, "authority_case.html", case=view, settings=settings)


@router.post(
    "/ui/authority/cases/{case_id}/orders", response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)  # fmt: skip
def issue(
    request: Request,
    session: Authority,
    case_id: RowId,
    reasons: Annotated[str, Form(max_length=20_000)],
    items: Annotated[list[str], Form(max_length=1000)] = [],  # noqa: B006
    hours: Annotated[str, Form(max_length=20)] = "",
    legal_basis: Annotated[str, Form(max_length=2000)] = "",
    penalty: Annotated[str, Form(max_length=20)] = "",
    period: Annotated[str, Form(max_length=20)] = "",
    cap: Annotated[str, Form(max_length=20)] = "",
    public: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    settings = service_of(request).hotline.settings
    with service_of(request).sessions() as db:
        order = orders.issue_order(
            db, settings, case_id=case_id, actor=actor(session), reasons=reasons,
            item_ids=_ids(items) or None, hours=_optional_float(hours, "the hours"),
            legal_basis=legal_basis or None,
            penalty_euros=_optional_float(penalty, "the penalty payment"),
            penalty_period_hours=_optional_float(period, "the penalty period"),
            penalty_cap_euros=_optional_float(cap, "the penalty cap"), public=bool(public),
        )  # fmt: skip
        db.commit()
        session.flash(f"Order {order.ref} issued; the worker mails it now.")
        return done(request, f"/ui/authority/orders/{order.id}")


@router.post(
    "/ui/authority/cases/{case_id}/close", response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)  # fmt: skip
def close(request: Request, session: Authority, case_id: RowId) -> Response:
    with service_of(request).sessions() as db:
        case = cases.close_case(db, case_id, actor=actor(session))
        db.commit()
        session.flash(f"Case {case.ref} closed.")
    return done(request, f"/ui/authority/cases/{case_id}")


@router.get("/ui/authority/orders/{order_id}", response_class=HTMLResponse)
def order_page(request: Request, session: Authority, order_id: RowId) -> Response:
    with service_of(request).sessions() as db:
        view = orders.get_order(db, order_id)
    return page(request, "authority_order.html", order=view)


@router.post(
    "/ui/authority/orders/{order_id}/{action}", response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)  # fmt: skip
def order_action(request: Request, session: Authority, order_id: RowId, action: str) -> Response:
    with service_of(request).sessions() as db:
        if action == "withdraw":
            order = orders.withdraw_order(db, order_id, actor=actor(session))
        elif action == "publish":
            order = orders.publish_order(db, order_id, actor=actor(session))
        else:
            raise PageError(404, "No such action", "An order is withdrawn or published.")
        db.commit()
        session.flash(f"Order {order.ref}: {action} done.")
    return done(request, f"/ui/authority/orders/{order_id}")


@router.post("/ui/authority/fines", response_class=HTMLResponse, dependencies=[CsrfChecked])
def fine(
    request: Request,
    session: Authority,
    reasons: Annotated[str, Form(max_length=20_000)],
    legal_basis: Annotated[str, Form(max_length=2000)],
    case_id: Annotated[int, Form(ge=1, le=2**63 - 1)],
    amount: Annotated[str, Form(max_length=20)] = "",
    share: Annotated[str, Form(max_length=20)] = "",
    public: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    settings = service_of(request).hotline.settings
    with service_of(request).sessions() as db:
        found = fines.impose_fine(
            db, settings, actor=actor(session), reasons=reasons, legal_basis=legal_basis,
            amount_euros=_optional_float(amount, "the amount"),
            share=_optional_float(share, "the share"), case_id=case_id, public=bool(public),
        )  # fmt: skip
        db.commit()
        session.flash(f"Fine {found.ref} decided: {_euros(found.amount_cents)}.")
    return done(request, f"/ui/authority/cases/{case_id}")


@router.get("/ui/authority/hosters/{asn}", response_class=HTMLResponse)
def hoster_record(
    request: Request, session: Authority, asn: Annotated[int, Path(ge=1, le=2**32 - 1)]
) -> Response:
    with service_of(request).sessions() as db:
        record = records.hoster_record(db, asn)
    return page(request, "authority_hoster.html", record=record, outcomes=REVIEW_OUTCOMES)


# --- without sign-in ----------------------------------------------------------------------------


@router.get("/decisions", response_class=HTMLResponse)
def decisions(request: Request, offset: int = 0) -> Response:
    offset = max(0, min(offset, publication.MAX_OFFSET))
    with service_of(request).sessions() as db:
        found, total = publication.public_decisions(db, limit=50, offset=offset)
    name = service_of(request).hotline.settings.authority_name
    return page(request, "decisions.html", decisions=found, total=total, offset=offset,
                page_size=50, authority=name)  # fmt: skip


def _order_of(request: Request, token: str) -> Order:
    hotline = service_of(request).hotline
    order_id = links.read_token(hotline.link_key, token)
    with service_of(request).sessions() as db:
        order = db.get(Order, order_id)
        if order is None:
            raise PageError(404, "Not found", "No order has that link.")
        db.expunge(order)
        return order


@router.get("/order/{token}", response_class=HTMLResponse)
def order_document(request: Request, token: str) -> Response:
    order_id = _order_of(request, token).id
    settings = service_of(request).hotline.settings
    with service_of(request).sessions() as db:
        order = db.get(Order, order_id)
        assert order is not None
        doc = document_of(db, order, None, settings.authority_name)
        acknowledged = order.acknowledged_at
        status = order.status
    return page(request, "order_document.html", doc=doc, token=token, acknowledged=acknowledged,
                order_status=status, deadline_utc=utc_time(doc.deadline_at),
                deadline_local=local_time(doc.deadline_at))  # fmt: skip


@router.post("/order/{token}", response_class=HTMLResponse)
def acknowledge(
    request: Request, token: str, name: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    order_id = _order_of(request, token).id
    who = " ".join(name.split())[:150]
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in who):
        raise PageError(422, "The name was not understood", "Write your name in plain text.")
    with service_of(request).sessions() as db:
        orders.acknowledge(db, order_id, actor=f"link:{who}" if who else "link", via="link")
        db.commit()
    return redirect(f"/order/{token}")
