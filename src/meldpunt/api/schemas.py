"""The API's request and response bodies (they are also its OpenAPI schema)."""

from __future__ import annotations

import json
from typing import Annotated, Any, NotRequired

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from meldpunt.checks import Outcome
from meldpunt.registry.vocabulary import MatchWay
from meldpunt.text import FreeText, OneLine

MAX_BATCH = 1_000
MAX_SIGNALS, MAX_TYPE, MAX_VALUE = 16, 40, 200  # per item; lengths of a signal's type and value
MAX_REF, MAX_URL = 500, 2_000

# Ids are 64-bit database keys: a larger number in a path is refused (422), not looked up.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


# The check request is validated for every upload a platform checks: typed dicts validated by
# one TypeAdapter cost a third of what model instances do (1,000 items: 2.8 ms against 8.4 ms).
@with_config(ConfigDict(extra="forbid"))
class SignalIn(TypedDict):
    type: Annotated[
        str, Field(max_length=MAX_TYPE, description="md5, sha1, sha256 or pdq", examples=["pdq"])
    ]
    value: Annotated[str, Field(max_length=MAX_VALUE, description="The hash, hex encoded")]
    quality: NotRequired[
        Annotated[int | None, Field(ge=0, le=100, description="PDQ quality, when known")]
    ]


@with_config(ConfigDict(extra="forbid"))
class CheckItem(TypedDict):
    signals: Annotated[
        list[SignalIn],
        Field(
            min_length=1,
            max_length=MAX_SIGNALS,
            description="The signals of one picture. Several PDQ values are taken as "
            "orientations of it.",
        ),
    ]
    orientations: NotRequired[
        Annotated[
            bool | None,
            Field(
                description="For a PDQ hash sent alone: also search the 7 turned and mirrored "
                "versions estimated from it (left out: the service's setting, on by default). "
                "Several PDQ values in one item are taken as its orientations instead."
            ),
        ]
    ]
    ref: NotRequired[
        Annotated[
            str | None,
            Field(
                max_length=MAX_REF,
                description="Your id for the content, one line (an item whose ref has control "
                "characters gets an error)",
            ),
        ]
    ]
    url: NotRequired[
        Annotated[str | None, Field(max_length=MAX_URL, description="Where the content is public")]
    ]


@with_config(ConfigDict(extra="forbid"))
class CheckRequest(TypedDict):
    items: Annotated[list[CheckItem], Field(min_length=1, max_length=MAX_BATCH)]


CHECK_REQUEST: TypeAdapter[CheckRequest] = TypeAdapter(CheckRequest)


def largest_check_request() -> bytes:
    """The largest valid check request, as compact JSON with ASCII text: every limit above at
    its maximum (about 7 MB)."""
    signal = {"type": "t" * MAX_TYPE, "value": "f" * MAX_VALUE, "quality": 100}
    item = {
        "signals": [signal] * MAX_SIGNALS,
        "orientations": False,
        "ref": "r" * MAX_REF,
        "url": "u" * MAX_URL,
    }
    return json.dumps({"items": [item] * MAX_BATCH}, separators=(",", ":")).encode()


def json_body_limit() -> int:
    """The size limit of a JSON request body: the largest valid check request with half again
    as much room (indentation, text outside ASCII), rounded up to whole MiB; anything larger
    cannot be a valid request, so it is refused before it is read in full."""
    mib = 1024 * 1024
    return -(-len(largest_check_request()) * 3 // 2 // mib) * mib


def check_request_schemas() -> dict[str, Any]:
    """The JSON schemas of the check request and its parts, for the OpenAPI components."""
    schema = CHECK_REQUEST.json_schema(ref_template="#/components/schemas/{model}")
    parts: dict[str, Any] = schema.pop("$defs", {})
    return {**parts, "CheckRequest": schema}


DISTANCE_NOTE = (
    "The PDQ distance (0 for digests): only for organisations an admin allowed distances; "
    "left out otherwise"
)


class MatchOut(BaseModel):
    set: str
    category: str
    signal_type: str
    way: MatchWay = Field(
        MatchWay.plain,
        description="How the match was found: plain, orientation (a turned or mirrored "
        "version), trimmed (without a border), verified (local features in one placement: "
        "crops, overlays, small rotations)",
    )
    distance: int | None = Field(None, description=DISTANCE_NOTE)
    hit_id: int = Field(description="The hit's id: random, for outcomes and GET /v1/hits/{id}")
    reviewed: bool = Field(
        True,
        description="False: the entry was submitted by the person pictured and not assessed by "
        "the hotline (non-consensual intimate images); review the upload before acting",
    )


class CheckResult(BaseModel):
    index: int
    ref: str | None = None
    match: bool
    matches: list[MatchOut] = []
    allowlisted: bool = Field(False, description="A known false positive overrode matches")
    notes: list[str] = []
    error: str | None = Field(None, description="Why the item could not be checked (in full)")
    error_code: str | None = Field(
        None,
        description="The error's stable code: invalid_signal, invalid_url; for files "
        "file_too_large, not_an_image, corrupt_image, image_too_large, unreadable",
    )


class CheckResponse(BaseModel):
    results: list[CheckResult]


class OutcomeIn(BaseModel):
    # use_enum_values: the schema lists the domain's words, the route gets plain strings
    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    outcome: Outcome
    report_id: OneLine | None = Field(None, max_length=200)
    reason: FreeText | None = Field(None, max_length=2000)


class HitOut(BaseModel):
    id: int
    at: str
    set: str | None
    category: str
    signal_type: str
    distance: int | None = Field(description=DISTANCE_NOTE.replace("left out", "null"))
    ref: str | None
    url: str | None
    outcome: str | None
    outcome_at: str | None
    report_id: str | None
    reason: str | None
    overdue: bool
    recheck_status: str | None


class HmaMatch(BaseModel):
    bank_content_id: int = Field(description="meldpunt's hit id (report outcomes with it)")
    distance: str | None = Field(None, description=DISTANCE_NOTE)
