"""Routes for analysts (sets and entries) and admins (organisations, keys, subscriptions)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from meldpunt import registry
from meldpunt.checks import (
    OrgKind,
    Principal,
    Role,
    create_key,
    create_org,
    list_keys,
    list_orgs,
    org_stats,
    revoke_key,
    set_show_distances,
    set_subscription,
)
from meldpunt.checks.probing import list_alerts
from meldpunt.clock import now
from meldpunt.text import FreeText, NameText, OneLine

from .auth import AdminKey, AnalystKey, current_principal
from .errors import ApiError
from .schemas import RowId
from .state import service_of
from .uploads import add_picture_form, read_picture_form

router = APIRouter()


def _plain(value: Any) -> dict[str, Any]:
    data = asdict(value)
    return {
        k: (v.isoformat() if hasattr(v, "isoformat") else sorted(v) if isinstance(v, frozenset)
            else v)
        for k, v in data.items()
    }  # fmt: skip


# use_enum_values: the schemas list the domain's words, the routes get plain strings
class SetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    name: NameText
    kind: registry.SetKind = registry.SetKind.blocklist
    description: FreeText = Field("", max_length=2000)
    source_org: OneLine | None = Field(None, max_length=200)
    default_category: OneLine | None = Field(None, max_length=100)
    pdq_threshold: int = Field(31, ge=0, le=64)


class SignalPair(BaseModel):
    type: OneLine = Field(max_length=40)
    value: OneLine = Field(max_length=200)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signals: list[SignalPair] = Field(min_length=1, max_length=16)
    category: OneLine | None = Field(None, max_length=100)
    category_scheme: OneLine | None = Field(None, max_length=40)
    reference: OneLine | None = Field(None, max_length=500)
    note: FreeText | None = Field(None, max_length=2000)


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: FreeText = Field(
        min_length=1, max_length=2000, description="Why the entry is taken back"
    )


class OrgIn(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    name: NameText
    kind: OrgKind
    contact_email: OneLine | None = Field(None, max_length=320)


class OrgChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    show_distances: bool = Field(
        description="Show PDQ distances in this organisation's check answers. Distances help "
        "recover listed hashes: allow them only to organisations you trust with that."
    )


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    role: Role
    label: NameText | None = None
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sets: list[NameText] | None = Field(None, max_length=1000)
    categories: list[Annotated[OneLine, Field(max_length=100)]] | None = Field(
        None, max_length=1000
    )


@router.get("/v1/sets", tags=["registry"])
def sets(request: Request, principal: AnalystKey) -> list[dict[str, Any]]:
    with service_of(request).sessions() as session:
        return [_plain(s) for s in registry.list_sets(session)]


@router.post("/v1/sets", tags=["registry"], status_code=201)
def new_set(request: Request, body: SetIn, principal: AnalystKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        created = registry.create_set(
            session,
            body.name,
            kind=body.kind,
            description=body.description,
            source_org=body.source_org,
            default_category=body.default_category,
            pdq_threshold=body.pdq_threshold,
            actor=f"key:{principal.key_id}",
        )
        session.commit()
        return _plain(created)


@router.post("/v1/sets/{name}/items", tags=["registry"], status_code=201)
def new_item(request: Request, name: str, body: ItemIn, principal: AnalystKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        result = registry.add_item(
            session,
            name,
            [(s.type, s.value) for s in body.signals],
            category=body.category,
            category_scheme=body.category_scheme,
            reference=body.reference,
            note=body.note,
            actor=f"key:{principal.key_id}",
        )
        session.commit()
        return {"outcome": result.outcome, "item": _plain(result.item)}


PICTURES_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "category": {
                            "type": "string",
                            "maxLength": 100,
                            "description": "the entries' category (default: the set's)",
                        },
                    },
                    "required": ["file"],
                }
            },
        },
        "required": True,
    }
}


@router.post(
    "/v1/sets/{name}/pictures",
    tags=["registry"],
    status_code=201,
    summary="Add entries from pictures (multipart files): every signal derived from pixels, "
    "the pictures not kept",
    openapi_extra=PICTURES_BODY,
)
async def new_pictures(request: Request, name: str, principal: AnalystKey) -> dict[str, Any]:
    form = await read_picture_form(request)
    state, actor = service_of(request), f"key:{principal.key_id}"
    outcomes = await run_in_threadpool(add_picture_form, state, name, form, actor)
    return {"pictures": [asdict(o) for o in outcomes]}


class WaysIn(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    off: list[registry.MatchWay] = Field(default_factory=list, max_length=10)
    on: list[registry.MatchWay] = Field(default_factory=list, max_length=10)


@router.put(
    "/v1/sets/{name}/ways",
    tags=["registry"],
    summary="Turn ways of matching off or on for a set (orientation, trimmed, verified)",
)
def set_ways(request: Request, name: str, body: WaysIn, principal: AnalystKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        info = registry.set_ways(session, name, off=body.off, on=body.on,
                                 actor=f"key:{principal.key_id}")  # fmt: skip
        session.commit()
        return _plain(info)


@router.post(
    "/v1/sets/{name}/items/{item_id}/withdraw",
    tags=["registry"],
    summary="Withdraw one entry: it stops matching, stays on record, the reason is audited",
)
def withdraw_item(
    request: Request, name: str, item_id: RowId, body: WithdrawIn, principal: AnalystKey
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        item = registry.withdraw_item(
            session, item_id, reason=body.reason, hash_set=name, actor=f"key:{principal.key_id}"
        )
        session.commit()
        return _plain(item)


@router.get("/v1/orgs", tags=["admin"])
def orgs(request: Request, principal: AdminKey) -> list[dict[str, Any]]:
    with service_of(request).sessions() as session:
        return [_plain(o) for o in list_orgs(session)]


@router.post("/v1/orgs", tags=["admin"], status_code=201)
def new_org(request: Request, body: OrgIn, principal: AdminKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        org = create_org(
            session,
            body.name,
            body.kind,
            contact_email=body.contact_email,
            actor=f"key:{principal.key_id}",
        )
        session.commit()
        return _plain(org)


@router.patch("/v1/orgs/{name}", tags=["admin"], summary="Allow or stop distances in answers")
def change_org(request: Request, name: str, body: OrgChange, principal: AdminKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        org = set_show_distances(
            session, name, body.show_distances, actor=f"key:{principal.key_id}"
        )
        session.commit()
    service_of(request).key_cache.clear()  # other processes notice within the cache's seconds
    return _plain(org)


@router.get(
    "/v1/probing-alerts",
    tags=["admin"],
    summary="Keys whose checks looked like probing the lists, newest first",
)
def probing_alerts(
    request: Request, principal: AdminKey, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    with service_of(request).sessions() as session:
        return [_plain(alert) for alert in list_alerts(session, limit=limit)]


@router.post(
    "/v1/orgs/{name}/keys",
    tags=["admin"],
    status_code=201,
    summary="Create a key; its value is in this answer only",
)
def new_key(request: Request, name: str, body: KeyIn, principal: AdminKey) -> dict[str, Any]:
    expires = now() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with service_of(request).sessions() as session:
        info, key = create_key(
            session,
            name,
            body.role,
            label=body.label,
            expires_at=expires,
            actor=f"key:{principal.key_id}",
        )
        session.commit()
        return {**_plain(info), "key": key}


@router.get("/v1/keys", tags=["admin"])
def keys(request: Request, principal: AdminKey) -> list[dict[str, Any]]:
    with service_of(request).sessions() as session:
        return [_plain(k) for k in list_keys(session)]


@router.delete("/v1/keys/{key_id}", tags=["admin"])
def revoke(request: Request, key_id: RowId, principal: AdminKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        info = revoke_key(session, key_id, actor=f"key:{principal.key_id}")
        session.commit()
    service_of(request).key_cache.clear()  # other processes notice within the cache's seconds
    return _plain(info)


@router.put("/v1/orgs/{name}/subscription", tags=["admin"])
def subscribe(
    request: Request, name: str, body: SubscriptionIn, principal: AdminKey
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        sub = set_subscription(
            session,
            name,
            sets=body.sets,
            categories=body.categories,
            actor=f"key:{principal.key_id}",
        )
        session.commit()
        data = _plain(sub)
    return {k: sorted(v) if isinstance(v, (set, frozenset)) else v for k, v in data.items()}


@router.get("/v1/stats", tags=["hits"], summary="Checks, hits and outcomes per organisation")
def stats(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> list[dict[str, Any]]:
    if principal.role == Role.analyst:
        raise ApiError(403, "forbidden", "this route is for platform and admin keys")
    org = principal.org_id if principal.role == Role.platform else None
    service_of(request).writer.flush_counts()
    with service_of(request).sessions() as session:
        return [_plain(s) for s in org_stats(session, org)]
