"""Routes of notice-and-takedown for analysts: the forward records of material hosted abroad."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from meldpunt.takedown.forwards import list_forwards

from .auth import AnalystKey
from .state import service_of

router = APIRouter()


@router.get("/v1/forwards", tags=["takedown"], summary="Forward records of material hosted abroad")
def forwards(
    request: Request,
    principal: AnalystKey,
    since: Annotated[
        datetime | None, Query(description="Only records made at or after (ISO 8601; UTC if bare)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """The records the hotline forwards to the hosting countries' hotlines (hosting country,
    address, AS number, network owner, classification, what happened since), oldest first, in
    the shape of ``meldpunt forwards export --format json``."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    state = service_of(request)
    with state.sessions() as session:
        records = list_forwards(session, since, limit=limit)
    return {
        "reported_by": state.hotline.settings.hotline_name,
        "since": None if since is None else since.isoformat(),
        "forwards": records,
    }
