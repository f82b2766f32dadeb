"""Checking uploads (meldpunt's own API and HMA's lookup), and what platforms did with hits."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from meldpunt.checks import InvalidInput as ChecksInvalidInput
from meldpunt.checks import (
    NewHit,
    Principal,
    Role,
    check_public_url,
    get_hit,
    get_subscription,
    list_hits,
    overdue_hits,
    record_outcome,
)
from meldpunt.checks.probing import Observation, Suspicion, record_alert
from meldpunt.registry.matching import NO_MATCH, MatchAnswer
from meldpunt.registry.matching import Query as MatchQuery
from meldpunt.signals import InvalidSignal
from meldpunt.signals import types as signal_types
from meldpunt.text import text_problem

from .auth import PlatformKey, current_principal
from .errors import ApiError, ItemError
from .schemas import (
    CHECK_REQUEST,
    CheckItem,
    CheckResponse,
    HitOut,
    HmaMatch,
    OutcomeIn,
    RowId,
)
from .state import ServiceState, service_of
from .uploads import check_files, read_uploads

router = APIRouter()
log = logging.getLogger(__name__)

MULTIPART_BODY = {
    "requestBody": {
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/CheckRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "ref": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["file"],
                }
            },
        },
        "required": True,
    }
}


def _query_of(item: CheckItem) -> MatchQuery:
    values: dict[str, Any] = {}
    turns: list[str] = []
    quality = None
    for signal in item["signals"]:
        kind = signal_types.get(signal["type"])
        value = kind.normalize(signal["value"])
        if kind.name == "pdq":
            if "pdq" in values:
                turns.append(value)
                continue
            quality = signal.get("quality")
        elif kind.name not in ("md5", "sha1", "sha256"):
            raise InvalidSignal(f"{kind.name} signals cannot be checked")
        values[kind.name] = value
    estimate = item.get("orientations")
    return MatchQuery(**values, pdq_quality=quality, pdq_dihedral=tuple(turns), estimate=estimate)


def _best_per_set(answer: MatchAnswer) -> MatchAnswer:
    """One match per set for a checked item (the closest entry): near-duplicate entries of one
    picture in a list should give the platform one hit to act on, not dozens."""
    if len(answer.matches) < 2:
        return answer
    best: dict[int, Any] = {}
    for m in answer.matches:  # sorted by distance already
        best.setdefault(m.set_id, m)
    return replace(answer, matches=tuple(best.values()))


def _result(
    index: int,
    ref: str | None,
    *,
    matches: list[dict[str, Any]] | None = None,
    allowlisted: bool = False,
    notes: list[str] | None = None,
    error: ItemError | None = None,
) -> dict[str, Any]:
    return {
        "index": index,
        "ref": ref,
        "match": bool(matches),
        "matches": matches or [],
        "allowlisted": allowlisted,
        "notes": notes or [],
        "error": error.message if error else None,
        "error_code": error.code if error else None,
    }


def _no_match(index: int, ref: str | None) -> dict[str, Any]:
    """``_result(index, ref)``, built directly: most checked items match nothing."""
    return {
        "index": index,
        "ref": ref,
        "match": False,
        "matches": [],
        "allowlisted": False,
        "notes": [],
        "error": None,
        "error_code": None,
    }


def _refuse_unstorable_refs(
    queries: Sequence[MatchQuery | ItemError], refs: Sequence[str | None]
) -> Sequence[MatchQuery | ItemError]:
    """An item whose ref has control characters gets an error instead of being checked: a
    hit could not store the ref (PostgreSQL refuses NUL), and the rest of the batch should not
    fail with it."""
    if text_problem("".join(filter(None, refs))) is None:  # one scan for the usual case
        return queries
    refused: list[MatchQuery | ItemError] = []
    for query, ref in zip(queries, refs, strict=True):
        problem = None if not ref else text_problem(ref)
        refused.append(query if problem is None else ItemError("invalid_ref", f"ref {problem}"))
    return refused


# Up to this many items a check is matched on the event loop (a fraction of a millisecond);
# larger batches go to a worker thread, where the C search runs without the GIL.
INLINE_ITEMS = 16


def _refuse_if_throttled(state: ServiceState, principal: Principal) -> None:
    wait = state.probing.admit(principal.key_id)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "throttled",
            f"this key's checks looked like probing the lists and are slowed down; the hotline "
            f"has been told; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


def _observations(
    state: ServiceState,
    answers: Sequence[MatchAnswer | ItemError],
    queries: Sequence[MatchQuery | ItemError],
) -> list[Observation]:
    """The PDQ matches of a check, as the probing detector sees them."""
    found = [
        (query.pdq, m)
        for answer, query in zip(answers, queries, strict=True)
        if isinstance(answer, MatchAnswer) and isinstance(query, MatchQuery) and query.pdq
        for m in answer.matches
        if m.signal_type == "pdq"
    ]
    if not found:
        return []
    thresholds: dict[int, int] = state.follower.use(
        lambda matcher: {i: s.pdq_threshold for i, s in matcher.sets.items()}
    )
    return [
        Observation(pdq, m.set_id, m.entry, m.distance, thresholds.get(m.set_id, 0))
        for pdq, m in found
    ]


def _write_alert(state: ServiceState, suspicion: Suspicion) -> None:
    try:
        with state.sessions() as session:
            record_alert(session, suspicion)
            session.commit()
    except Exception:  # the throttle holds in memory; the check itself must not fail
        log.exception("writing the probing alert of key %s failed", suspicion.key_id)
    log.warning(
        "probing suspected: key %s of organisation %s (%s); throttled until %s",
        suspicion.key_id,
        suspicion.org_id,
        suspicion.reason,
        suspicion.throttled_until.isoformat(),
    )


def _unreviewed_sets(state: ServiceState) -> frozenset[int]:
    """The sets whose entries nobody at the hotline assessed (people's own submissions)."""
    return frozenset(
        state.follower.use(lambda matcher: [i for i, s in matcher.sets.items() if not s.reviewed])
    )


async def run_checks(
    state: ServiceState,
    principal: Principal,
    queries: Sequence[MatchQuery | ItemError],
    refs: Sequence[str | None],
    urls: Sequence[str | None],
    problems: Sequence[ItemError | None] = (),
) -> list[dict[str, Any]]:
    """Match, record the hits and the check, and answer (in ``CheckResult``'s shape) without
    revealing the lists: PDQ distances only to organisations an admin allowed them, and never
    in the answer that made the probing detector throttle the key. An item that is an ItemError
    is answered with it; ``problems`` (per item, optional) say why a query was checked only in
    part (an uploaded file without a PDQ hash)."""
    _refuse_if_throttled(state, principal)
    queries = _refuse_unstorable_refs(queries, refs)
    known, subscription = state.subscriptions.get(principal.org_id)
    if not known or subscription is None:
        with state.sessions() as session:
            subscription = get_subscription(session, principal.org_id)
        state.subscriptions.put(principal.org_id, subscription)

    def match_all() -> list[MatchAnswer | ItemError]:
        real = [q for q in queries if not isinstance(q, ItemError)]
        found = iter(
            state.follower.use(
                lambda matcher: matcher.match_many(
                    real,
                    categories=subscription.categories,
                    sets=subscription.set_ids,
                    min_quality=state.settings.pdq_min_quality,
                )
            )
        )
        return [q if isinstance(q, ItemError) else _best_per_set(next(found)) for q in queries]

    answers = match_all() if len(queries) <= INLINE_ITEMS else await run_in_threadpool(match_all)
    seen = _observations(state, answers, queries)
    # A batch of many matches (rare, and what probing looks like) is weighed off the event loop.
    watch = state.probing.observe
    suspicion = (
        watch(principal.key_id, principal.org_id, seen)
        if len(seen) <= INLINE_ITEMS
        else await run_in_threadpool(watch, principal.key_id, principal.org_id, seen)
    )
    if suspicion is not None:
        await run_in_threadpool(_write_alert, state, suspicion)
    show_distances = principal.show_distances and suspicion is None
    new_hits: list[NewHit] = []
    for answer, query, ref, url in zip(answers, queries, refs, urls, strict=True):
        if isinstance(answer, ItemError) or isinstance(query, ItemError):
            continue
        for m in answer.matches:
            value = query.matched_value(m.signal_type)
            new_hits.append(NewHit.from_match(m, value, platform_ref=ref, public_url=url))
    written: list[int] = await asyncio.wrap_future(state.writer.submit(principal.org_id, new_hits))
    hit_ids = iter(written)
    state.writer.count(principal.org_id, len(queries))
    state.metrics.checked(principal.org_name, len(queries), len(new_hits))
    # Plain dicts, serialised once: for a batch of 1,000, response models cost more than matching.
    results: list[dict[str, Any]] = []
    unreviewed = _unreviewed_sets(state) if new_hits else frozenset()
    for index, (answer, ref) in enumerate(zip(answers, refs, strict=True)):
        if answer is NO_MATCH:  # most items: the same answer, without per-item work
            results.append(_no_match(index, ref))
            continue
        if isinstance(answer, ItemError):
            results.append(_result(index, ref, error=answer))
            continue
        matches = [
            {
                "set": m.set,
                "category": m.category,
                "signal_type": m.signal_type,
                "way": str(m.way),
                "hit_id": next(hit_ids),
                "reviewed": m.set_id not in unreviewed,
            }
            for m in answer.matches
        ]
        if show_distances:
            for shown, m in zip(matches, answer.matches, strict=True):
                shown["distance"] = m.distance
        results.append(
            _result(
                index,
                ref,
                matches=matches,
                allowlisted=bool(answer.suppressed),
                notes=list(answer.notes),
            )
        )
    for result, problem in zip(results, problems, strict=False):
        if problem is not None:
            result.update(error=problem.message, error_code=problem.code)
    return results


def parse_check_json(
    raw: bytes,
) -> tuple[list[MatchQuery | ItemError], list[str | None], list[str | None]]:
    """A JSON check body as queries (or an item's error), refs and public URLs; ApiError 422
    when the body itself is not a valid check request."""
    try:
        body = CHECK_REQUEST.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ApiError(422, "invalid_request", problems) from None
    queries: list[MatchQuery | ItemError] = []
    refs: list[str | None] = []
    urls: list[str | None] = []
    for item in body["items"]:
        url = item.get("url")
        try:
            url = check_public_url(url) if url is not None else None
            queries.append(_query_of(item))
        except InvalidSignal as exc:
            queries.append(ItemError(exc.code, str(exc)))
        except ChecksInvalidInput as exc:
            queries.append(ItemError("invalid_url", str(exc)))
        refs.append(item.get("ref"))
        urls.append(url)
    return queries, refs, urls


# JSON bodies up to this size are parsed on the event loop (well under a millisecond); larger
# ones in a worker thread, at most ``max_parallel_parses`` at once, so that a 10 MB body neither
# stalls every other request nor multiplies its parsing memory by the number of senders.
INLINE_PARSE_BYTES = 64 * 1024


async def read_check_json(
    state: ServiceState, raw: bytes
) -> tuple[list[MatchQuery | ItemError], list[str | None], list[str | None]]:
    """``parse_check_json``, off the event loop for large bodies."""
    if len(raw) <= INLINE_PARSE_BYTES:
        return parse_check_json(raw)
    return await anyio.to_thread.run_sync(parse_check_json, raw, limiter=state.parse_limiter)


@router.post(
    "/v1/check",
    response_model=CheckResponse,
    tags=["checks"],
    openapi_extra=MULTIPART_BODY,
    summary="Check up to 1,000 items (hashes) or uploaded files against the registry",
)
async def check(request: Request, principal: PlatformKey) -> Response:
    state = service_of(request)
    state.limiter.take(principal.key_id)
    kind = request.headers.get("content-type", "")
    problems: list[ItemError | None] = []
    if kind.startswith("multipart/form-data"):
        uploads, refs = await read_uploads(request)
        checked = [c.as_item() for c in await run_in_threadpool(check_files, state, uploads)]
        queries: list[MatchQuery | ItemError] = [query for query, _ in checked]
        problems = [problem for _, problem in checked]
        urls: list[str | None] = [None] * len(uploads)
    else:
        queries, refs, urls = await read_check_json(state, await request.body())
    results = await run_checks(state, principal, queries, refs, urls, problems)
    return Response(orjson.dumps({"results": results}), media_type="application/json")


def hma_answer(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Check results in HMA's shape: matches grouped by bank (set), each a hit id and, for
    organisations allowed distances, the distance (HMA writes it as a string). Without that
    permission the field is left out rather than filled with a made-up value."""
    banks: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        for m in result["matches"]:
            shown: dict[str, Any] = {"bank_content_id": m["hit_id"]}
            if "distance" in m:
                shown["distance"] = str(m["distance"])
            banks.setdefault(m["set"], []).append(shown)
    return banks


MAX_SIGNAL, MAX_TYPE = 200, 40  # lengths of HMA lookup parameters


def query_of_signal(signal_type: str, value: str) -> MatchQuery:
    """The query of a single signal (HMA's lookup)."""
    return _query_of({"signals": [{"type": signal_type, "value": value}]})


@router.get(
    "/m/lookup",
    response_model=dict[str, list[HmaMatch]],
    response_model_exclude_none=True,
    tags=["hma"],
    summary="HMA-compatible lookup of one hash",
)
async def hma_lookup(
    request: Request,
    principal: PlatformKey,
    signal: Annotated[str, Query(max_length=MAX_SIGNAL)],
    signal_type: Annotated[str, Query(max_length=MAX_TYPE)] = "pdq",
) -> dict[str, list[dict[str, Any]]]:
    service_of(request).limiter.take(principal.key_id)
    query = query_of_signal(signal_type, signal)
    return hma_answer(await run_checks(service_of(request), principal, [query], [None], [None]))


@router.post(
    "/m/lookup",
    response_model=dict[str, list[HmaMatch]],
    response_model_exclude_none=True,
    tags=["hma"],
    summary="HMA-compatible lookup of an uploaded file",
)
async def hma_lookup_file(
    request: Request, principal: PlatformKey
) -> dict[str, list[dict[str, Any]]]:
    state = service_of(request)
    state.limiter.take(principal.key_id)
    uploads, _ = await read_uploads(request)
    checked = await run_in_threadpool(check_files, state, uploads[:1])
    if checked[0].query is None or checked[0].problem is not None:
        # HMA's answer has no place for an item's error: the request fails with it, as before
        problem = checked[0].problem
        assert problem is not None
        raise ApiError(problem.status, problem.code, problem.message)
    queries: list[MatchQuery | ItemError] = [checked[0].query]
    results = await run_checks(state, principal, queries, [None], [None])
    return hma_answer(results)


def _hit_out(hit: Any, set_names: dict[int, str], principal: Principal) -> HitOut:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return HitOut(
        id=hit.id,
        at=iso(hit.at) or "",
        set=set_names.get(hit.set_id),
        category=hit.category,
        signal_type=hit.signal_type,
        distance=hit.distance if principal.show_distances or principal.role != "platform" else None,
        ref=hit.platform_ref,
        url=hit.public_url,
        outcome=hit.outcome,
        outcome_at=iso(hit.outcome_at),
        report_id=hit.report_id,
        reason=hit.outcome_reason,
        overdue=hit.overdue,
        recheck_status=hit.recheck_status,
    )


def _set_names(request: Request) -> dict[int, str]:
    names: dict[int, str] = service_of(request).follower.use(
        lambda m: {i: s.name for i, s in m.sets.items()}
    )
    return names


@router.post(
    "/v1/hits/{hit_id}/outcome",
    response_model=HitOut,
    tags=["hits"],
    summary="Say what was done with a hit",
)
def hit_outcome(request: Request, hit_id: RowId, body: OutcomeIn, principal: PlatformKey) -> HitOut:
    with service_of(request).sessions() as session:
        hit = record_outcome(
            session,
            principal.org_id,
            hit_id,
            body.outcome,
            report_id=body.report_id,
            reason=body.reason,
            actor=f"key:{principal.key_id}",
        )
        session.commit()
    service_of(request).metrics.outcome(principal.org_name, body.outcome)
    return _hit_out(hit, _set_names(request), principal)


@router.get("/v1/hits/{hit_id}", response_model=HitOut, tags=["hits"])
def one_hit(request: Request, hit_id: RowId, principal: PlatformKey) -> HitOut:
    with service_of(request).sessions() as session:
        hit = get_hit(session, principal.org_id, hit_id)
    return _hit_out(hit, _set_names(request), principal)


@router.get(
    "/v1/hits",
    response_model=list[HitOut],
    tags=["hits"],
    summary="Your organisation's hits, newest first",
)
def hits(
    request: Request,
    principal: Annotated[Principal, Depends(current_principal)],
    overdue: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[HitOut]:
    if principal.role not in (Role.platform, Role.admin):
        raise ApiError(403, "forbidden", "this route is for platform and admin keys")
    org = principal.org_id if principal.role == Role.platform else None
    with service_of(request).sessions() as session:
        found = overdue_hits(session, org) if overdue else list_hits(session, org, limit=limit)
    names = _set_names(request)
    return [_hit_out(h, names, principal) for h in found[:limit]]
