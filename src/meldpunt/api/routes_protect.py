"""Self-hashing (``docs/selfhash.md``): a person's own pictures, hashed in their browser on the
page ``/protect``; only the hashes arrive here. No key: the case number and the PIN the person
chose are the only keys to a case, and they travel in the body (never in an address that logs
keep). Each address may make ``selfhash_per_hour`` of these requests an hour.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.registry import selfcases
from meldpunt.registry.matching import Query as MatchQuery
from meldpunt.registry.selfcases import CaseView, Picture
from meldpunt.text import OneLine

from .errors import ApiError
from .state import ServiceState, service_of

router = APIRouter(tags=["self-hashing"])

PDQ = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
MD5 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")]
Pin = Annotated[OneLine, Field(max_length=200)]
Number = Annotated[str, Path(max_length=40)]

UNDER_18 = (
    "Pictures of a person under 18 are a matter for the hotline: please report where you saw "
    "them at /report. We will act on them, and you do not need to send the pictures."
)


class PictureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pdq: PDQ
    quality: int = Field(ge=0, le=100)
    md5: MD5 | None = None
    orientations: list[PDQ] = Field(default_factory=list, max_length=7)


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Strict: a declaration is true or false, never "yes" or 1.
    adult: StrictBool = Field(description="The person is 18 or older")
    own_pictures: StrictBool = Field(description="The pictures are of the person sending them")
    pin: Pin
    pictures: list[PictureIn] = Field(max_length=1000)


class PinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: Pin


class PicturesIn(PinIn):
    pictures: list[PictureIn] = Field(max_length=1000)


class PictureOut(BaseModel):
    pdq: str
    md5: str | None
    status: str
    added_at: datetime


class CaseOut(BaseModel):
    number: str
    created_at: datetime
    withdrawn: bool
    pictures: list[PictureOut]


class AddressBudget:
    """``per_hour`` requests per client address, in bursts up to as many."""

    def __init__(self, per_hour: float, max_addresses: int = 100_000) -> None:
        self.per_hour, self.max_addresses = per_hour, max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, address: str) -> None:
        at, rate = clock.monotonic(), self.per_hour / 3600
        with self._lock:
            tokens, then = self._buckets.get(address, (self.per_hour, at))
            tokens = min(self.per_hour, tokens + (at - then) * rate)
            if tokens < 1:
                wait = max(1, math.ceil((1 - tokens) / rate))
                raise ApiError(
                    429,
                    "rate_limited",
                    f"too many requests from this address; try again in "
                    f"{math.ceil(wait / 60)} minutes",
                    headers={"Retry-After": str(wait)},
                )
            self._buckets[address] = (tokens - 1, at)
            self._buckets.move_to_end(address)
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)


_budget_lock = threading.Lock()


def _admit(request: Request) -> ServiceState:
    state = service_of(request)
    app_state = request.app.state
    budget = getattr(app_state, "selfhash_budget", None)
    if budget is None:
        with _budget_lock:
            budget = getattr(app_state, "selfhash_budget", None)
            if budget is None:
                per_hour = state.hotline.settings.selfhash_per_hour
                budget = app_state.selfhash_budget = AddressBudget(per_hour)
    budget.take(_address(request.client.host if request.client else "unknown"))
    return state


def _address(host: str) -> str:
    """Whom a request counts against: its IPv4 address, or its IPv6 address's /64 network (one
    connection's share of addresses, which a single caller could otherwise cycle through)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _pictures(items: list[PictureIn]) -> list[Picture]:
    return [
        Picture(
            p.pdq.lower(),
            p.quality,
            p.md5.lower() if p.md5 else None,
            tuple(o.lower() for o in p.orientations),
        )
        for p in items
    ]


def _allowlisted(state: ServiceState) -> Callable[[Picture], bool]:
    def check(picture: Picture) -> bool:
        query = MatchQuery(md5=picture.md5, pdq=picture.pdq, pdq_dihedral=picture.orientations)
        answer = state.follower.use(lambda matcher: matcher.match(query, min_quality=0))
        return bool(answer.allowlisted)

    return check


def _out(view: CaseView) -> CaseOut:
    return CaseOut(
        number=view.number,
        created_at=view.created_at,
        withdrawn=view.withdrawn,
        pictures=[
            PictureOut(pdq=p.pdq, md5=p.md5, status=p.status, added_at=p.added_at)
            for p in view.pictures
        ],
    )


def _answer(state: ServiceState, work: Callable[[Session], CaseView]) -> CaseOut:
    """Run ``work`` in one transaction of its own and answer with the case it gives."""
    with state.sessions() as session:
        view = work(session)
        session.commit()
    return _out(view)


def _limits(state: ServiceState) -> dict[str, Any]:
    """What bounds the pictures a request adds: the cap per case, the allow-lists."""
    return {
        "max_pictures": state.hotline.settings.selfhash_max_pictures,
        "allowlisted": _allowlisted(state),
    }


@router.post("/v1/protect/cases", status_code=201, summary="Open a case with pictures' hashes")
def open_case(request: Request, body: CaseIn) -> CaseOut:
    state = _admit(request)
    if not body.adult:
        raise ApiError(400, "under_18", UNDER_18)
    if not body.own_pictures:
        raise ApiError(
            400,
            "not_own_pictures",
            "Only the person in the pictures may ask for them to be hashed here. To "
            "report pictures of someone else, use /report.",
        )
    pictures = _pictures(body.pictures)
    return _answer(state, lambda s: selfcases.open_case(s, body.pin, pictures, **_limits(state)))


@router.post("/v1/protect/cases/{number}", summary="See a case (with its PIN)")
def view_case(request: Request, number: Number, body: PinIn) -> CaseOut:
    state = _admit(request)
    return _answer(state, lambda s: selfcases.view_case(s, number, body.pin))


@router.post("/v1/protect/cases/{number}/pictures", summary="Add pictures' hashes to a case")
def add_pictures(request: Request, number: Number, body: PicturesIn) -> CaseOut:
    state = _admit(request)
    pictures = _pictures(body.pictures)
    return _answer(
        state, lambda s: selfcases.add_pictures(s, number, body.pin, pictures, **_limits(state))
    )


@router.post("/v1/protect/cases/{number}/withdraw", summary="Withdraw a case: its hashes go")
def withdraw_case(request: Request, number: Number, body: PinIn) -> CaseOut:
    state = _admit(request)
    return _answer(state, lambda s: selfcases.withdraw_case(s, number, body.pin))
