"""Fetching and grading: the worker's first hotline step (``run_fetches``).

An item in state ``received`` whose ``due_at`` has come is claimed (``items.claim``, a lease on
``due_at``), fetched through the safe fetcher outside any transaction (a small thread pool, so
that one slow host does not hold the others), and the batch's results recorded in one short
transaction (a savepoint per item, so that one item's trouble loses nobody else's result):

* **media** (a picture, a video, anything that is not a page): MD5, SHA-1 and SHA-256 of the
  bytes, and for a picture its PDQ hash with the eight orientation hashes, computed in memory
  under the image limits (the bytes are never written anywhere and are let go after hashing).
  Then the registry's matcher (set thresholds, allow-lists and set states apply as for the
  check service): a blocklist match of an illegal category grades the item **illegal**
  automatically (``graded_by = "match"``, the set, entry and distance kept, the audit event
  names them) and it moves to ``ready``; anything else is **new** and waits in the analysts'
  queue (``queued``). A match of a category that is not illegal (``uncategorised``,
  ``child_exploitive``, ...) is no ground for a notice: the item is queued with the match
  noted. Videos are matched by their digests only (no video PDQ).
* **an HTML page**: its picture and video links (``links.media_links``) become child items
  (``parent_id``, the page's kind), at most ``hotline_max_children``; a page found on a page
  is never expanded (depth 1). A page with media waits in the queue itself, because only an
  analyst can say whether the page as a whole is to be noticed (its pictures are graded on
  their own); a page without media is ``ignored``.
* **failures**: refused URLs (inside the network, a bad scheme), 404/410 and names that do not
  resolve fail at once (state ``failed``, event ``fetch_failed``); other failures are tried
  again after ``hotline_fetch_retry_minutes``, doubling, ``hotline_fetch_attempts`` times in
  all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.config import Settings
from meldpunt.registry.categories import CODES
from meldpunt.registry.matching import Match, MatchAnswer, Query, picture_query
from meldpunt.registry.pictures import entry_of_query, pixel_signals_json
from meldpunt.reports import items
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.fetcher import (
    FetchError,
    FetchPolicy,
    FetchRefused,
    FetchResult,
    FetchUnresolvable,
    fetch,
)
from meldpunt.reports.links import media_links, sniff
from meldpunt.reports.vocabulary import Event, ItemState, Media
from meldpunt.signals import HashOptions, ImageLimits, digest_bytes
from meldpunt.signals.hashing import QUERY
from meldpunt.store.models import UrlItem

__all__ = ["FETCH_THREADS", "hash_options", "run_fetches"]

log = logging.getLogger(__name__)

#: Fetches of one batch that run at once.
FETCH_THREADS = 4
ACTOR = "worker"


def hash_options(settings: Settings) -> HashOptions:
    """How fetched pictures are hashed: with their orientation hashes, under the image limits;
    the fetch threads share the decoding budget, so a batch of large pictures together never
    needs more memory than ``decode_budget_bytes`` (a larger one keeps its digests, no PDQ)."""
    return HashOptions(
        dihedral=True,
        exif_transpose=settings.exif_transpose,
        min_quality=settings.pdq_min_quality,
        trim=settings.pdq_trim,
        features=QUERY if settings.match_features else 0,
        limits=ImageLimits(
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            max_decode_bytes=settings.decode_budget_bytes // FETCH_THREADS,
        ),
    )


@dataclass(frozen=True)
class _Job:
    id: int
    url: str
    kind: str
    parent_id: int | None
    attempts: int
    lease: datetime | None


@dataclass
class _Outcome:
    """What one fetch gave, without the bytes."""

    job: _Job
    failure: str | None = None
    permanent: bool = False
    status: int | None = None
    final_url: str | None = None
    content_type: str | None = None
    size: int | None = None
    media: Media | None = None
    query: Query | None = None
    notes: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


def _fetch_one(job: _Job, policy: FetchPolicy, options: HashOptions, cap: int) -> _Outcome:
    """Fetch and hash one item (in a pool thread; touches no database)."""
    try:
        result = fetch(job.url, policy)
        return _examine(job, result, options, cap)
    except FetchRefused as exc:
        return _Outcome(job, str(exc), permanent=True)
    except FetchUnresolvable as exc:
        return _Outcome(job, str(exc), permanent=True)
    except FetchError as exc:
        return _Outcome(job, str(exc))
    except Exception as exc:  # a bug or a surprise, fetching or examining what came, must
        # not end the whole batch: the other items' results would wait for their lease to end
        log.exception("fetching item %s failed", job.id)
        return _Outcome(job, f"fetching failed: {type(exc).__name__}")


def _examine(job: _Job, result: FetchResult, options: HashOptions, cap: int) -> _Outcome:
    out = _Outcome(job, status=result.status, final_url=result.final_url,
                   content_type=(result.content_type or "")[:200] or None,
                   size=result.size)  # fmt: skip
    if result.status in (404, 410):
        out.failure, out.permanent = f"HTTP {result.status} from {result.final_url}", True
        return out
    if not 200 <= result.status < 300:
        out.failure = f"HTTP {result.status} from {result.final_url}"
        return out
    if result.error:
        out.failure = result.error
        return out
    body = result.body
    if not body:
        out.failure = f"an empty answer from {result.final_url}"
        return out
    out.media = sniff(body, result.content_type)
    if out.media == Media.page:
        if job.parent_id is None:
            out.links = media_links(body, result.content_type, result.final_url, cap)
        return out
    if result.truncated:
        # A part of the file hashes to nothing anyone knows: an analyst decides.
        out.notes.append(
            f"larger than the fetcher's limit ({result.size:,} bytes read): not hashed"
        )
        return out
    if out.media == Media.video:
        out.query = Query.of_signals(digest_bytes(body), None)
        out.notes.append("a video: matched by its digests (no video PDQ)")
        return out
    query, problem = picture_query(body, options)
    out.query = query
    if query.pdq is not None:
        out.media = Media.image
    elif problem is not None and out.media == Media.image:
        out.notes.append(f"no PDQ hash: {problem}")
    return out


def _retry_delay(settings: Settings, attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed fetch: doubling from the setting, at most a day
    past the doubling's first few steps (``2**attempts`` would overflow a timedelta)."""
    minutes = settings.hotline_fetch_retry_minutes * 2 ** min(attempts - 1, 30)
    return timedelta(minutes=min(minutes, 24 * 60.0 * 7))


def _illegal(answer: MatchAnswer) -> Match | None:
    """The best blocklist match whose category is illegal material (matches come best first)."""
    for match in answer.matches:
        code = CODES.get(match.category)
        if code is not None and code.illegal:
            return match
    return None


def _match_details(match: Match) -> dict[str, Any]:
    return {
        "set": match.set,
        "set_id": match.set_id,
        "entry": match.entry,
        "category": match.category,
        "signal_type": match.signal_type,
        "distance": match.distance,
        "way": str(match.way),
    }


def _fetched_details(out: _Outcome) -> dict[str, Any]:
    details: dict[str, Any] = {
        "status": out.status,
        "final_url": out.final_url,
        "content_type": out.content_type,
        "size": out.size,
        "media": str(out.media) if out.media else None,
    }
    if out.query is not None:
        details["sha256"] = out.query.sha256
        details["pdq_quality"] = out.query.pdq_quality
    if out.notes:
        details["notes"] = out.notes
    return details


def _record_failure(
    session: Session, item: UrlItem, out: _Outcome, settings: Settings, now: datetime
) -> items.Note | None:
    assert out.failure is not None
    item.attempts = (item.attempts or 0) + 1
    item.last_error = out.failure[:2000]
    if out.permanent or item.attempts >= settings.hotline_fetch_attempts:
        details = {"reason": out.failure[:500], "attempts": item.attempts}
        return items.move(session, item, ItemState.failed, actor=ACTOR,
                          event=Event.fetch_failed, details=details)  # fmt: skip
    retry_at = now + _retry_delay(settings, item.attempts)
    item.due_at, item.updated_at = retry_at, now
    details = {"reason": out.failure[:500], "attempts": item.attempts,
               "retry_at": retry_at.isoformat()}  # fmt: skip
    return items.Note(item.id, Event.fetch_failed, ACTOR, details, audited=False)


def _record_hashes(item: UrlItem, out: _Outcome, now: datetime, *, new: bool = False) -> None:
    item.media = str(out.media) if out.media else None
    item.content_type = out.content_type
    item.size = out.size
    item.first_seen_at = item.first_seen_at or now
    item.last_seen_at = now
    item.last_error = None
    item.attempts = (item.attempts or 0) + 1
    query = out.query
    if query is not None:
        item.md5, item.sha1, item.sha256 = query.md5, query.sha1, query.sha256
        item.pdq, item.pdq_quality = query.pdq, query.pdq_quality
        # new material may become an entry of the hotline's set: keep what its pixels gave
        kept = entry_of_query(query) if new and query.local_features is not None else None
        item.picture_signals = pixel_signals_json(kept) if kept is not None else None


def _record_page(session: Session, item: UrlItem, out: _Outcome, cap: int) -> list[items.Note]:
    notes = []
    created = linked = 0
    for url in out.links[:cap]:
        child, new = items.open_item(session, url, kind=item.kind, actor=ACTOR, parent_id=item.id)
        if child.id == item.id:
            continue
        if new:
            created += 1
            notes.append(items.Note(child.id, Event.received, ACTOR, {"page": item.id}))
        else:
            linked += 1
            notes.append(items.Note(child.id, Event.linked, ACTOR, {"page": item.id}))
    details = {**_fetched_details(out), "children": created, "linked": linked,
               "links": len(out.links)}  # fmt: skip
    if item.parent_id is not None:
        details["reason"] = "a page found on a page is not followed (depth 1)"
        note = items.move(session, item, ItemState.ignored, actor=ACTOR, event=Event.fetched,
                          details=details)  # fmt: skip
    elif created + linked == 0:
        details["reason"] = (
            "a page without pictures or videos"
            if cap > 0
            else "pages' pictures and videos are not followed (hotline_max_children is 0)"
        )
        note = items.move(session, item, ItemState.ignored, actor=ACTOR, event=Event.fetched,
                          details=details)  # fmt: skip
    else:  # the page itself waits for an analyst; its media are items of their own
        note = items.move(session, item, ItemState.queued, actor=ACTOR, event=Event.fetched,
                          details=details)  # fmt: skip
    assert note is not None
    return [note, *notes]


def _record_media(
    session: Session, item: UrlItem, out: _Outcome, answer: MatchAnswer | None, now: datetime
) -> list[items.Note]:
    fetched = _fetched_details(out)
    match = _illegal(answer) if answer is not None else None
    if answer is not None and answer.matches and match is None:
        fetched["matches_not_illegal"] = [_match_details(m) for m in answer.matches[:5]]
    if answer is not None and answer.suppressed:
        fetched["allowlisted"] = [_match_details(m) for m in answer.allowlisted[:5]]
    notes = [items.Note(item.id, Event.fetched, ACTOR, fetched)]
    if match is None:
        items.move(session, item, ItemState.queued, actor=ACTOR)
        return notes
    item.grade, item.category = "illegal", match.category
    item.graded_by, item.graded_at = "match", now
    item.match_set_id, item.match_entry_id = match.set_id, match.entry
    item.match_distance = match.distance
    graded = items.move(session, item, ItemState.ready, actor=ACTOR, event=Event.graded,
                        details={"grade": "illegal", "graded_by": "match",
                                 **_match_details(match)},
                        due_at=now)  # fmt: skip
    assert graded is not None
    return [*notes, graded]


def _record_one(
    session: Session, item: UrlItem, out: _Outcome, answer: MatchAnswer | None, settings: Settings
) -> list[items.Note]:
    """Write one outcome on its item; returns the item's timeline notes."""
    now = clock.now()
    if out.failure is not None:
        note = _record_failure(session, item, out, settings, now)
        return [note] if note is not None else []
    _record_hashes(item, out, now, new=out.media != Media.page and not (answer and answer.known))
    if out.media == Media.page:
        return _record_page(session, item, out, settings.hotline_max_children)
    return _record_media(session, item, out, answer, now)


def _record(
    context: HotlineContext, outcomes: Sequence[_Outcome], answers: dict[int, MatchAnswer]
) -> int:
    """Record a batch's outcomes in one short transaction, each item in a savepoint of its own
    (one item's trouble must not lose the others' results: it stays claimed and is fetched
    again when its lease ends). An item no longer this worker's (its lease ended and another
    worker took it, or it was changed meanwhile) is left alone. Returns how many were recorded.

    One transaction for the batch, not one per item: each commit takes SQLite's write lock and
    the audit chain's lock again, which made recording half the cost of the whole step."""
    settings = context.settings
    done = 0
    with context.sessions() as session, session.begin():
        items.begin_write(session)
        query = (
            select(UrlItem)
            .where(UrlItem.id.in_([out.job.id for out in outcomes]))
            .order_by(UrlItem.id)  # locked in id order: two workers never deadlock
        )
        if session.connection().dialect.name == "postgresql":
            query = query.with_for_update()
        rows = {r.id: r for r in session.scalars(query.execution_options(populate_existing=True))}
        notes: list[items.Note] = []
        for out in outcomes:
            item = rows.get(out.job.id)
            if item is None or item.state != ItemState.received or item.due_at != out.job.lease:
                continue
            try:
                with session.begin_nested():
                    found = _record_one(session, item, out, answers.get(out.job.id), settings)
            except Exception:  # one item's trouble must not lose the others' results
                log.exception("recording the fetch of item %s failed; it is fetched again", item.id)
                continue
            notes.extend(found)
            done += 1
        items.note(session, notes)
    return done


def _lease(policy: FetchPolicy, jobs: int, threads: int) -> timedelta:
    """Long enough for the whole batch, each fetch taking its longest, plus hashing."""
    rounds = math.ceil(max(jobs, 1) / max(threads, 1))
    return timedelta(seconds=policy.total_seconds * rounds + 120)


_WHERE: tuple[ColumnElement[bool], ...] = (UrlItem.state == ItemState.received,)


def run_fetches(context: HotlineContext, limit: int) -> int:
    """Fetch, hash and match up to ``limit`` due items; returns how many were recorded."""
    now = clock.now()
    with context.sessions() as session:
        if not items.any_due(session, UrlItem.due_at, _WHERE, now):
            return 0  # a plain read: an idle worker never takes SQLite's write lock
    policy = context.fetch_policy
    threads = max(1, min(FETCH_THREADS, limit))
    with context.sessions() as session, session.begin():
        claimed = items.claim(session, UrlItem.due_at, _WHERE, limit=limit,
                              lease=_lease(policy, limit, threads), now=now)  # fmt: skip
        jobs = [_Job(row.id, row.url, row.kind, row.parent_id, row.attempts or 0, row.due_at)
                for row in claimed]  # fmt: skip
    if not jobs:
        return 0
    settings = context.settings
    options = hash_options(settings)
    cap = settings.hotline_max_children
    with ThreadPoolExecutor(max_workers=min(threads, len(jobs)),
                            thread_name_prefix="meldpunt-fetch") as pool:  # fmt: skip
        outcomes = list(pool.map(lambda job: _fetch_one(job, policy, options, cap), jobs))
    done = _record(context, outcomes, _match(context, outcomes))
    if done:
        log.info("fetched %d item(s)", done)
    return done


def _match(context: HotlineContext, outcomes: Sequence[_Outcome]) -> dict[int, MatchAnswer]:
    asked = [out for out in outcomes if out.failure is None and out.query is not None]
    if not asked:
        return {}
    queries = [out.query for out in asked if out.query is not None]
    found = context.match_many(queries, min_quality=context.settings.pdq_min_quality)
    return {out.job.id: answer for out, answer in zip(asked, found, strict=True)}
