"""The authority's routes: escalations, cases, orders, fines and the duty-of-care record (role
``authority``, and ``admin``); hosters' own orders and their acknowledgement (role ``hoster``:
the orders to abuse contacts that name the key's organisation, another's is 403); and the public
decisions (no key). The domain is ``meldpunt.authority`` (``docs/authority.md``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from meldpunt.authority import cases, delivery, fines, orders, publication, records
from meldpunt.authority.common import MAX_IDS, MAX_LEGAL_BASIS, MAX_REASONS
from meldpunt.authority.errors import InvalidInput
from meldpunt.authority.vocabulary import CaseState, OrderStatus, ReviewOutcome
from meldpunt.checks import Principal, Role
from meldpunt.reports.items import MAX_URL
from meldpunt.text import FreeText, OneLine

from .auth import require
from .schemas import RowId
from .state import service_of

__all__ = ["router"]

router = APIRouter(tags=["authority"])

AuthorityKey = Annotated[Principal, Depends(require(Role.authority, Role.admin))]
OrderReader = Annotated[Principal, Depends(require(Role.authority, Role.admin, Role.hoster))]
HosterKey = Annotated[Principal, Depends(require(Role.hoster))]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10**6)]
Asn = Annotated[int, Query(ge=1, le=2**32 - 1)]
Ids = Annotated[list[Annotated[int, Field(ge=1, le=2**63 - 1)]], Field(max_length=MAX_IDS)]
Euros = Annotated[float, Field(ge=0, le=10**13, allow_inf_nan=False)]


def actor(principal: Principal) -> str:
    return f"{principal.role}:{principal.org_name}"


# --- schemas --------------------------------------------------------------------------------------


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: Ids | None = Field(None, description="Escalated items of one hoster")
    url: OneLine | None = Field(
        None, max_length=MAX_URL, description="A URL the authority reports itself (the hotline "
        "fetches, grades, attributes and re-checks it)")  # fmt: skip
    contact_id: int | None = Field(None, ge=1, le=2**31, description="A hoster's abuse contact")
    asn: int | None = Field(None, ge=1, le=2**32 - 1, description="A hoster's AS number")
    title: OneLine | None = Field(None, max_length=300)
    note: FreeText | None = Field(None, max_length=10_000)


class ItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: Ids = Field(min_length=1)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: FreeText | None = Field(None, max_length=10_000)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: int = Field(ge=1, le=2**63 - 1)
    items: Ids | None = Field(None, description="The case's items to list (default: all online)")
    hours: float | None = Field(
        None, gt=0, le=24 * 365, allow_inf_nan=False,
        description="Hours until the deadline (default authority_order_hours; at most "
        "authority_max_order_hours)")  # fmt: skip
    legal_basis: FreeText | None = Field(None, max_length=MAX_LEGAL_BASIS)
    reasons: FreeText = Field(min_length=1, max_length=MAX_REASONS)
    penalty_euros: Euros | None = None
    penalty_period_hours: float | None = Field(None, gt=0, le=24 * 366, allow_inf_nan=False)
    penalty_cap_euros: Euros | None = None
    public: bool = False
    recipient: OneLine | None = Field(None, max_length=320)


class FineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: int | None = Field(None, ge=1, le=2**63 - 1)
    contact_id: int | None = Field(None, ge=1, le=2**31)
    asn: int | None = Field(None, ge=1, le=2**32 - 1)
    amount_euros: Euros | None = None
    share: float | None = Field(None, gt=0, le=1, allow_inf_nan=False,
                                description="A share of the recorded yearly turnover")  # fmt: skip
    legal_basis: FreeText = Field(min_length=1, max_length=MAX_LEGAL_BASIS)
    reasons: FreeText = Field(min_length=1, max_length=MAX_REASONS)
    public: bool = False


class ReviewIn(BaseModel):
    """Record an objection or appeal (no outcome), or decide it (an outcome)."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    outcome: ReviewOutcome | None = None
    amount_euros: Euros | None = Field(None, description="The new amount of a reduced fine")
    note: FreeText | None = Field(None, max_length=10_000)


# --- escalations and cases ------------------------------------------------------------------------


@router.get("/v1/escalations", summary="Escalated items no open case holds, by hoster")
def get_escalations(request: Request, principal: AuthorityKey) -> list[dict[str, Any]]:
    with service_of(request).sessions() as session:
        return [group.plain() for group in cases.escalations(session)]


@router.get("/v1/cases", summary="Cases, newest first")
def get_cases(
    request: Request,
    principal: AuthorityKey,
    state: CaseState | None = None,
    asn: Asn | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    with service_of(request).sessions() as session:
        return cases.list_cases(session, state=state, asn=asn, limit=limit, offset=offset)


@router.post("/v1/cases", status_code=201, summary="Open a case: escalated items, a URL, a hoster")
def post_case(request: Request, body: CaseIn, principal: AuthorityKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        case = cases.open_case(
            session,
            actor=actor(principal),
            item_ids=body.items,
            url=body.url,
            contact_id=body.contact_id,
            asn=body.asn,
            title=body.title,
            note=body.note,
            org_id=principal.org_id,
        )
        session.commit()
        return cases.get_case(session, case.id).plain()


@router.get("/v1/cases/{case_id}", summary="A case with its items and their timelines")
def get_case(request: Request, case_id: RowId, principal: AuthorityKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        return cases.get_case(session, case_id).plain()


@router.post("/v1/cases/{case_id}/items", summary="Add items of the case's hoster")
def post_case_items(
    request: Request, case_id: RowId, body: ItemsIn, principal: AuthorityKey
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        cases.add_items(session, case_id, body.items, actor=actor(principal))
        session.commit()
        return cases.get_case(session, case_id).plain()


@router.post("/v1/cases/{case_id}/close", summary="Close a case whose orders are final")
def post_case_close(
    request: Request, case_id: RowId, body: NoteIn, principal: AuthorityKey
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        cases.close_case(session, case_id, actor=actor(principal), note=body.note)
        session.commit()
        return cases.get_case(session, case_id).plain()


# --- orders ---------------------------------------------------------------------------------------


@router.get("/v1/orders", summary="Orders: a hoster's own, or every order for the authority")
def get_orders(
    request: Request,
    principal: OrderReader,
    status: OrderStatus | None = None,
    case_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    asn: Asn | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    org = principal.org_id if principal.role == Role.hoster else None
    with service_of(request).sessions() as session:
        return orders.list_orders(session, status=status, org_id=org, case_id=case_id, asn=asn,
                                  limit=limit, offset=offset)  # fmt: skip


@router.post("/v1/orders", status_code=201, summary="Issue an order to a case's hoster")
def post_order(request: Request, body: OrderIn, principal: AuthorityKey) -> dict[str, Any]:
    service = service_of(request)
    with service.sessions() as session:
        order = orders.issue_order(
            session,
            service.hotline.settings,
            case_id=body.case_id,
            actor=actor(principal),
            reasons=body.reasons,
            item_ids=body.items,
            hours=body.hours,
            legal_basis=body.legal_basis,
            penalty_euros=body.penalty_euros,
            penalty_period_hours=body.penalty_period_hours,
            penalty_cap_euros=body.penalty_cap_euros,
            public=body.public,
            recipient=body.recipient,
        )
        session.commit()
        return orders.get_order(session, order.id)


@router.get("/v1/orders/{order_id}", summary="An order: compliance per URL, penalty payments")
def get_order(request: Request, order_id: RowId, principal: OrderReader) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        if principal.role == Role.hoster:
            orders.check_hoster(session, order_id, principal.org_id)
        return orders.get_order(session, order_id)


@router.post("/v1/orders/{order_id}/acknowledge", summary="A hoster acknowledges its order")
def post_acknowledge(request: Request, order_id: RowId, principal: HosterKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        orders.check_hoster(session, order_id, principal.org_id)
        session.commit()  # end the read: the acknowledgement takes the write lock first
        orders.acknowledge(session, order_id, actor=f"hoster:{principal.org_name}", via="api")
        session.commit()
        return orders.get_order(session, order_id)


@router.post("/v1/orders/{order_id}/withdraw", summary="Withdraw a running order")
def post_withdraw(
    request: Request, order_id: RowId, body: NoteIn, principal: AuthorityKey
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        orders.withdraw_order(session, order_id, actor=actor(principal), note=body.note)
        session.commit()
        return orders.get_order(session, order_id)


@router.post("/v1/orders/{order_id}/publish", summary="Publish an order on /decisions")
def post_publish(request: Request, order_id: RowId, principal: AuthorityKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        orders.publish_order(session, order_id, actor=actor(principal))
        session.commit()
        return orders.get_order(session, order_id)


@router.post("/v1/orders/{order_id}/resend", summary="Mail an order again after delivery failed")
def post_resend(request: Request, order_id: RowId, principal: AuthorityKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        delivery.resend(session, order_id, actor=actor(principal))
        session.commit()
        return orders.get_order(session, order_id)


# --- fines ----------------------------------------------------------------------------------------


@router.get("/v1/fines", summary="Fines, newest first")
def get_fines(
    request: Request, principal: AuthorityKey, asn: Asn | None = None, limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:  # fmt: skip
    with service_of(request).sessions() as session:
        return fines.list_fines(session, asn=asn, limit=limit, offset=offset)


@router.post("/v1/fines", status_code=201, summary="Decide a fine (an amount or a turnover share)")
def post_fine(request: Request, body: FineIn, principal: AuthorityKey) -> dict[str, Any]:
    service = service_of(request)
    with service.sessions() as session:
        fine = fines.impose_fine(
            session,
            service.hotline.settings,
            actor=actor(principal),
            reasons=body.reasons,
            legal_basis=body.legal_basis,
            amount_euros=body.amount_euros,
            share=body.share,
            case_id=body.case_id,
            contact_id=body.contact_id,
            asn=body.asn,
            public=body.public,
        )
        session.commit()
        return fines.fine_summary(fine)


@router.get("/v1/fines/{fine_id}", summary="A fine with its objection and appeal")
def get_fine(request: Request, fine_id: RowId, principal: AuthorityKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        return fines.get_fine(session, fine_id)


@router.post("/v1/fines/{fine_id}/objection", summary="Record an objection, or decide it")
def post_objection(
    request: Request, fine_id: RowId, body: ReviewIn, principal: AuthorityKey
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        if body.outcome is None:
            if body.amount_euros is not None:
                raise InvalidInput("an amount belongs to a decision (give the outcome)")
            fine = fines.record_objection(session, fine_id, actor=actor(principal), note=body.note)
        else:
            fine = fines.decide_objection(session, fine_id, str(body.outcome),
                                          actor=actor(principal),
                                          amount_euros=body.amount_euros)  # fmt: skip
        session.commit()
        return fines.fine_summary(fine)


@router.post("/v1/fines/{fine_id}/appeal", summary="Record an appeal, or decide it")
def post_appeal(
    request: Request, fine_id: RowId, body: ReviewIn, principal: AuthorityKey
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        if body.outcome is None:
            if body.amount_euros is not None:
                raise InvalidInput("an amount belongs to a decision (give the outcome)")
            fine = fines.record_appeal(session, fine_id, actor=actor(principal), note=body.note)
        else:
            fine = fines.decide_appeal(session, fine_id, str(body.outcome),
                                       actor=actor(principal),
                                       amount_euros=body.amount_euros)  # fmt: skip
        session.commit()
        return fines.fine_summary(fine)


@router.post("/v1/fines/{fine_id}/publish", summary="Publish a fine on /decisions")
def post_fine_publish(request: Request, fine_id: RowId, principal: AuthorityKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        fine = fines.publish_fine(session, fine_id, actor=actor(principal))
        session.commit()
        return fines.fine_summary(fine)


# --- hosters and the public -----------------------------------------------------------------------


@router.get("/v1/hosters/{asn}/record", summary="A hoster's duty-of-care record")
def get_record(
    request: Request,
    asn: Annotated[int, Path(ge=1, le=2**32 - 1)],
    principal: AuthorityKey,
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        return records.hoster_record(session, asn).plain()


@router.get("/v1/public/decisions", summary="The decisions the authority published (no key)")
def get_public_decisions(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=publication.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=publication.MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        found, total = publication.public_decisions(session, limit=limit, offset=offset)
        return {
            "total": total,
            "limit": limit,
            "offset": offset,
            "decisions": [d.plain() for d in found],
        }
