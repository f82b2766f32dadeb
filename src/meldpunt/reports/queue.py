"""The analysts' queue: items of new material (and reported pages) waiting for a person's grade.

Grades (``Grade``):

* ``illegal`` with a category of the registry's vocabulary that is illegal material
  (``ILLEGAL_CATEGORIES``: ``csam_baseline``, ``csam_national``, ``csam``, ``ncii``): the item
  moves to ``ready`` (attribution and notice follow), and its hashes (MD5, SHA-1, SHA-256, and
  PDQ when its quality is at least ``pdq_min_quality``) are added to the hotline's own set
  (``hotline_set``, a blocklist made on first use) through the registry, whose change log numbers
  the addition: the next copy is known to the hotline's worker and to every platform's check
  within seconds. The registry entry's reference is ``url_item:<id>``.
* ``police`` (first police), with a category as for illegal: the item moves to ``police``, due at
  once, for the notices step to tell the police contact; an analyst's ``police_cleared`` then
  grades it illegal (the hashes go to the set then) and moves it to ``ready``.
* ``not_illegal`` and ``ignore`` are final.

With ``hotline_second_analyst`` a grade is first a proposal (state ``review``, the
``proposed_*`` columns, event ``proposed``); another analyst's same grade and category applies
it (``graded_by`` names both), a different one sends the item back to ``queued`` with both
grades on its timeline. Nobody confirms their own proposal. Grading an item that is not
waiting for a grade is a ``Conflict`` (409).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt import clock, registry
from meldpunt.config import Settings
from meldpunt.registry.categories import CODES, Category, classify
from meldpunt.registry.pictures import keep_features, signals_from_json
from meldpunt.reports import items
from meldpunt.reports.errors import Conflict, InvalidInput
from meldpunt.reports.vocabulary import Event, Grade, ItemState
from meldpunt.store.models import UrlItem

__all__ = [
    "ILLEGAL_CATEGORIES",
    "WAITING",
    "children_counts",
    "counts",
    "describe",
    "add_to_hotline_set",
    "grade",
    "hotline_set",
    "police_cleared",
    "queue",
    "summary",
]

#: The categories an illegal (or police) grade may carry.
ILLEGAL_CATEGORIES: tuple[str, ...] = tuple(c.code for c in CODES.values() if c.illegal)
#: The states in which an item waits for an analyst's grade.
WAITING: tuple[str, ...] = (ItemState.queued, ItemState.review)
MAX_LIMIT = 1000


def queue(
    session: Session,
    *,
    state: str | None = ItemState.queued,
    limit: int = 50,
    before: int | None = None,
    oldest_first: bool = False,
) -> list[UrlItem]:
    """Items in ``state`` (None: every state), newest first (``before``: ids below it, to page
    on), or oldest first, the order analysts work in."""
    if state is not None and state not in tuple(ItemState):
        raise InvalidInput(f"state must be one of {', '.join(ItemState)}, not {state!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1..{MAX_LIMIT}, not {limit}")
    query = select(UrlItem)
    if state is not None:
        query = query.where(UrlItem.state == state)
    if before is not None:
        query = query.where(UrlItem.id < before)
    order = UrlItem.id.asc() if oldest_first else UrlItem.id.desc()
    return list(session.scalars(query.order_by(order).limit(limit)))


def counts(session: Session, states: Sequence[str] = tuple(ItemState)) -> dict[str, int]:
    """How many items are in each of ``states``."""
    rows = session.execute(
        select(UrlItem.state, func.count())
        .where(UrlItem.state.in_(list(states)))
        .group_by(UrlItem.state)
    )
    found = {str(state): int(n) for state, n in rows}
    return {str(state): found.get(str(state), 0) for state in states}


def children_counts(session: Session, parent_ids: Sequence[int]) -> dict[int, int]:
    """How many child items (pictures and videos found on them) each page has."""
    rows = session.execute(
        select(UrlItem.parent_id, func.count())
        .where(UrlItem.parent_id.in_(list(parent_ids)))
        .group_by(UrlItem.parent_id)
    )
    return {int(parent): int(n) for parent, n in rows if parent is not None}


def _check(grade_: str, category: str | None) -> tuple[Grade, str | None]:
    try:
        chosen = Grade(grade_)
    except ValueError:
        raise InvalidInput(f"grade must be one of {', '.join(Grade)}, not {grade_!r}") from None
    value = (category or "").strip()
    if chosen not in (Grade.illegal, Grade.police):
        if value:
            raise InvalidInput(f"a {chosen} grade takes no category")
        return chosen, None
    if not value:
        raise InvalidInput(
            f"a {chosen} grade needs a category: one of {', '.join(ILLEGAL_CATEGORIES)}"
        )
    try:  # a code, or a value of a scheme the registry knows ('A1', 'baseline')
        code = value if value in CODES else classify(value[:100]).code
    except registry.InvalidInput:
        code = "unknown"
    if code not in ILLEGAL_CATEGORIES:
        raise InvalidInput(
            f"{value[:100]!r} is not a category of illegal material: use one of "
            f"{', '.join(ILLEGAL_CATEGORIES)}"
        )
    return chosen, code


def _waiting(session: Session, item_id: int) -> UrlItem:
    items.begin_write(session)
    item = items.get_item(session, item_id, lock=True)
    if item.state not in WAITING:
        raise Conflict(
            f"item {item_id} is {item.state}: only items in the queue or in review are graded"
        )
    return item


def _clear_proposal(item: UrlItem) -> None:
    item.proposed_grade = item.proposed_category = item.proposed_by = None


def grade(
    session: Session,
    item_id: int,
    grade: str,
    category: str | None = None,
    *,
    actor: str,
    settings: Settings,
) -> UrlItem:
    """An analyst's grade of a waiting item (flushed, not committed; see the module's
    docstring). Returns the item as it is now."""
    chosen, code = _check(grade, category)
    item = _waiting(session, item_id)
    if not settings.hotline_second_analyst:
        _clear_proposal(item)  # a proposal made while the setting was on: this grade decides
        _apply(session, item, chosen, code, graded_by=actor, actor=actor, settings=settings)
        return item
    if item.state == ItemState.queued:
        item.proposed_grade, item.proposed_category, item.proposed_by = chosen, code, actor
        note = items.move(session, item, ItemState.review, actor=actor, event=Event.proposed,
                          details={"grade": str(chosen), "category": code})  # fmt: skip
        items.note(session, [note] if note else [])
        return item
    if item.proposed_by == actor:
        raise Conflict(f"item {item_id}: a second analyst must confirm this grade, not its author")
    first = {"grade": item.proposed_grade, "category": item.proposed_category,
             "by": item.proposed_by}  # fmt: skip
    if (item.proposed_grade, item.proposed_category) != (chosen, code):
        second = {"grade": str(chosen), "category": code, "by": actor}
        _clear_proposal(item)
        note = items.move(session, item, ItemState.queued, actor=actor, event=Event.proposed,
                          details={"outcome": "disagreed", "first": first,
                                   "second": second})  # fmt: skip
        items.note(session, [note] if note else [])
        return item
    graded_by = f"{item.proposed_by}, {actor}"[:200]
    _clear_proposal(item)
    _apply(session, item, chosen, code, graded_by=graded_by, actor=actor, settings=settings,
           extra={"confirmed": first})  # fmt: skip
    return item


_NEXT_STATE = {
    Grade.illegal: ItemState.ready,
    Grade.police: ItemState.police,
    Grade.not_illegal: ItemState.not_illegal,
    Grade.ignore: ItemState.ignored,
}


def _apply(
    session: Session,
    item: UrlItem,
    chosen: Grade,
    code: str | None,
    *,
    graded_by: str,
    actor: str,
    settings: Settings,
    extra: dict[str, Any] | None = None,
) -> None:
    now = clock.now()
    item.grade, item.category = str(chosen), code
    item.graded_by, item.graded_at = graded_by, now
    item.match_set_id = item.match_entry_id = item.match_distance = None
    details: dict[str, Any] = {"grade": str(chosen), "category": code, "graded_by": graded_by,
                               **(extra or {})}  # fmt: skip
    if chosen == Grade.illegal:
        details["hotline_set"] = add_to_hotline_set(session, item, code, actor, settings)
    due = now if chosen in (Grade.illegal, Grade.police) else None
    note = items.move(session, item, _NEXT_STATE[chosen], actor=actor, event=Event.graded,
                      details=details, due_at=due)  # fmt: skip
    items.note(session, [note] if note else [])


def police_cleared(session: Session, item_id: int, *, actor: str, settings: Settings) -> UrlItem:
    """The police gave their word on an item graded "first police": it is graded illegal with
    its category, its hashes go to the hotline's set, and it moves to ``ready`` (due now)."""
    items.begin_write(session)
    item = items.get_item(session, item_id, lock=True)
    if item.state != ItemState.police:
        raise Conflict(f"item {item_id} is {item.state}, not waiting for the police")
    code = item.category if item.category in ILLEGAL_CATEGORIES else None
    item.grade = str(Grade.illegal)
    details: dict[str, Any] = {"grade": str(Grade.illegal), "category": code}
    if code is not None:
        details["hotline_set"] = add_to_hotline_set(session, item, code, actor, settings)
    note = items.move(session, item, ItemState.ready, actor=actor, event=Event.police_cleared,
                      details=details, due_at=clock.now())  # fmt: skip
    items.note(session, [note] if note else [])
    return item


DIGESTS = ("md5", "sha1", "sha256")


def _signals(item: UrlItem, settings: Settings) -> tuple[list[tuple[str, str]], bytes | None]:
    """The item's signals for an entry, and the local features they name (when its fetch kept
    the further signals of its pixels: orientations, trimmed hash, features)."""
    digests = (("md5", item.md5), ("sha1", item.sha1), ("sha256", item.sha256))
    found = [(kind, value) for kind, value in digests if value]
    quality_ok = bool(item.pdq) and (item.pdq_quality or 0) >= settings.pdq_min_quality
    if quality_ok:
        found.append(("pdq", str(item.pdq)))
    kept = signals_from_json(item.picture_signals)
    if kept is None or not quality_ok:
        return found, None
    found += [(k, v) for k, v in kept.signals if (k, v) not in found and k not in DIGESTS]
    return found, kept.features


def hotline_set(session: Session, settings: Settings, actor: str) -> registry.HashSetInfo:
    """The hotline's own blocklist (``hotline_set``), made on first use."""
    registry.lock_registry(session)  # two first grades at once make one set
    try:
        found = registry.get_set(session, settings.hotline_set)
    except registry.NotFound:
        return registry.create_set(
            session,
            settings.hotline_set,
            kind=registry.SetKind.blocklist,
            description="New material graded illegal by the hotline's analysts.",
            source_org=settings.hotline_name,
            actor=actor,
        )
    if found.is_allowlist:
        raise Conflict(f"hotline_set {found.name!r} is an allow-list; name a blocklist")
    return found


def add_to_hotline_set(
    session: Session, item: UrlItem, code: str | None, actor: str, settings: Settings
) -> dict[str, Any]:
    """Add ``item``'s hashes to the hotline's set with category ``code``; returns what was done,
    for the item's timeline."""
    signals, features = _signals(item, settings)
    if not signals or code is None:
        return {"added": False, "reason": "the item has no hashes to add"}
    hash_set = hotline_set(session, settings, actor)
    try:
        if features is not None:
            keep_features(session, features)
        result = registry.add_item(session, hash_set, signals, category=Category(code),
                                   reference=f"url_item:{item.id}",
                                   note=f"hotline item {item.id}", actor=actor)  # fmt: skip
    except (registry.ConflictingItems, registry.InvalidInput) as exc:
        return {"added": False, "set": hash_set.name, "reason": str(exc)[:500]}
    return {"added": True, "set": hash_set.name, "set_id": hash_set.id,
            "entry": result.item.id, "outcome": result.outcome}  # fmt: skip


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def summary(item: UrlItem) -> dict[str, Any]:
    """What a list of items shows of each."""
    return {
        "id": item.id,
        "url": item.url,
        "host": item.host,
        "kind": item.kind,
        "state": item.state,
        "media": item.media,
        "parent_id": item.parent_id,
        "grade": item.grade,
        "category": item.category,
        "proposed_grade": item.proposed_grade,
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


def describe(session: Session, item_id: int) -> dict[str, Any]:
    """Everything the hotline knows of an item (never its bytes): its fields and hashes, its
    grade and how it was reached, where it is hosted, its notices, its children and timeline."""
    item = items.get_item(session, item_id)
    match_set = None
    if item.match_set_id is not None:
        try:
            match_set = registry.get_set(session, item.match_set_id).name
        except registry.NotFound:
            match_set = None
    children = session.scalars(
        select(UrlItem).where(UrlItem.parent_id == item.id).order_by(UrlItem.id).limit(MAX_LIMIT)
    )
    return {
        **summary(item),
        "content_type": item.content_type,
        "size": item.size,
        "due_at": _iso(item.due_at),
        "attempts": item.attempts,
        "last_error": item.last_error,
        "first_seen_at": _iso(item.first_seen_at),
        "last_seen_at": _iso(item.last_seen_at),
        "hashes": {"md5": item.md5, "sha1": item.sha1, "sha256": item.sha256,
                   "pdq": item.pdq, "pdq_quality": item.pdq_quality},  # fmt: skip
        "graded_by": item.graded_by,
        "graded_at": _iso(item.graded_at),
        "match": None if item.match_set_id is None else {
            "set_id": item.match_set_id, "set": match_set, "entry": item.match_entry_id,
            "distance": item.match_distance,
        },
        "proposal": None if item.proposed_grade is None else {
            "grade": item.proposed_grade, "category": item.proposed_category,
            "by": item.proposed_by,
        },
        "attribution": {
            "ip": item.ip, "asn": item.asn, "network_owner": item.network_owner,
            "country": item.country, "contact_id": item.contact_id,
            "attributed_at": _iso(item.attributed_at),
        },
        "notices": {
            "first_notice_at": _iso(item.first_notice_at),
            "last_notice_at": _iso(item.last_notice_at), "renotices": item.renotices,
            "next_check_at": _iso(item.next_check_at), "misses": item.misses,
            "renotice_at": _iso(item.renotice_at), "escalation_at": _iso(item.escalation_at),
            "escalated_at": _iso(item.escalated_at), "offline_at": _iso(item.offline_at),
        },
        "children": [
            {"id": c.id, "url": c.url, "state": c.state, "media": c.media, "grade": c.grade}
            for c in children
        ],
        "timeline": [
            {"at": _iso(e.at), "event": e.event, "actor": e.actor,
             "details": json.loads(e.details) if e.details else None}
            for e in items.timeline(session, item.id)
        ],
    }  # fmt: skip
