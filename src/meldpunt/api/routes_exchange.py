"""Partners' feeds (``docs/exchange.md``): a set's numbered changes, page by page, signed.

A partner reads with the token ``meldpunt partners add`` issued to it; an API key of any role
is not a partner's token (403). The instance's public key is public.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from meldpunt.exchange.feeds import DEFAULT_PAGE, MAX_PAGE, build_page
from meldpunt.exchange.keys import instance_key
from meldpunt.exchange.partners import partner_for_token

from .errors import ApiError
from .state import service_of

router = APIRouter(tags=["exchange"])


@router.get(
    "/v1/feeds/{set_name}",
    summary="A set's changes after a change number, signed (for partners)",
    response_class=Response,
    responses={
        200: {
            "content": {"application/gzip": {}},
            "description": "gzip: a signature line, then the page's JSON",
        }
    },
)
def feed(
    request: Request,
    set_name: Annotated[str, Path(max_length=200)],
    after: Annotated[int, Query(ge=0, le=2**62, description="The last change number applied")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> Response:
    state = service_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "a partner's token is required (Bearer)")
    address = request.client.host if request.client else "unknown"
    state.auth_failures.check(address)
    with state.sessions() as session:
        partner = partner_for_token(session, token.strip())
        if partner is None:
            state.auth_failures.failed(address)
            raise ApiError(
                403, "forbidden", "feeds are for partners, with the token issued to them"
            )
        key = instance_key(state.hotline.settings.data_dir)
        body = build_page(session, key, partner, set_name, after=after, limit=limit)
    return Response(body, media_type="application/gzip", headers={"Cache-Control": "no-store"})


@router.get("/v1/exchange/key", summary="This instance's public key (verifies its feeds)")
def public_key(request: Request) -> dict[str, str]:
    key = instance_key(service_of(request).hotline.settings.data_dir)
    return {"public_key": key.public, "fingerprint": key.fingerprint, "algorithm": "ed25519"}
