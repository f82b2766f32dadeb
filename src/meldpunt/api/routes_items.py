"""The hotline's items for analysts: the queue, an item's record and timeline, grades, the
police's word, and a blurred preview of an item's picture (``docs/hotline-grading.md``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from meldpunt.reports import queue
from meldpunt.reports.preview import preview_item
from meldpunt.reports.vocabulary import Grade, ItemState
from meldpunt.text import OneLine

from .auth import AnalystKey
from .schemas import RowId
from .state import service_of

router = APIRouter(tags=["hotline"])


class GradeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    grade: Grade
    category: OneLine | None = Field(
        None,
        max_length=100,
        description="For illegal and police grades: one of " + ", ".join(queue.ILLEGAL_CATEGORIES),
    )


def _actor(principal: Any) -> str:
    return f"key:{principal.key_id}"


@router.get("/v1/items", summary="Items by state (default: the queue), newest first")
def list_items(
    request: Request,
    principal: AnalystKey,
    state: ItemState = ItemState.queued,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        found = queue.queue(session, state=state, limit=limit, before=before)
        rows = [queue.summary(item) for item in found]
    return {"items": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/v1/items/{item_id}", summary="An item: hashes, grade, attribution, timeline")
def one_item(request: Request, item_id: RowId, principal: AnalystKey) -> dict[str, Any]:
    with service_of(request).sessions() as session:
        return queue.describe(session, item_id)


@router.post("/v1/items/{item_id}/grade", summary="Grade an item of the queue")
def grade_item(
    request: Request, item_id: RowId, body: GradeIn, principal: AnalystKey
) -> dict[str, Any]:
    service = service_of(request)
    with service.sessions() as session:
        queue.grade(session, item_id, str(body.grade), body.category, actor=_actor(principal),
                    settings=service.hotline.settings)  # fmt: skip
        session.commit()
        return queue.describe(session, item_id)


@router.post(
    "/v1/items/{item_id}/police-cleared",
    summary="The police gave their word: the item graded 'police' goes on to its notice",
)
def police_cleared(request: Request, item_id: RowId, principal: AnalystKey) -> dict[str, Any]:
    service = service_of(request)
    with service.sessions() as session:
        queue.police_cleared(session, item_id, actor=_actor(principal),
                             settings=service.hotline.settings)  # fmt: skip
        session.commit()
        return queue.describe(session, item_id)


@router.get(
    "/v1/items/{item_id}/preview",
    summary="The item's picture fetched again, small and blurred (JPEG, never stored)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def preview(request: Request, item_id: RowId, principal: AnalystKey) -> Response:
    data = await run_in_threadpool(preview_item, service_of(request).hotline, item_id)
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return Response(data, media_type="image/jpeg", headers=headers)
