"""The hotline's intake vocabularies: what a report says it is, where it came from, where a
reported URL stands, the grades analysts give and the events of an item's timeline.

Faces take their choices from these enums; ``store/models.py`` keeps the words again for the
database's check constraints (``tests/test_vocabularies.py`` holds the copies together). Each
member's name is its value (psycopg writes an Enum by name).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EVENTS",
    "FINAL_STATES",
    "GRADES",
    "ITEM_STATES",
    "MEDIA",
    "REPORT_KINDS",
    "REPORT_SOURCES",
    "Event",
    "Grade",
    "ItemState",
    "Media",
    "ReportKind",
    "ReportSource",
]


class ReportKind(StrEnum):
    """What the reporter says the material is."""

    csam = "csam"  # child sexual abuse material
    ncii = "ncii"  # non-consensual intimate image
    other = "other"  # other illegal content


class ReportSource(StrEnum):
    form = "form"  # the public report form (/report)
    flagger = "flagger"  # a trusted flagger's API key
    import_ = "import"  # a bulk import (SCART CSV, JSONL)


class ItemState(StrEnum):
    """Where a reported URL stands. Each non-final state has a due time (``url_items.due_at``,
    ``next_check_at`` or a notice's ``due_at``) or waits for a person (``queued``, ``review``,
    ``police``, ``contact_needed``)."""

    received = "received"  # due: fetch
    queued = "queued"  # new material: waits for an analyst's grade
    review = "review"  # graded once; a second analyst is asked
    police = "police"  # graded "first police": the notice waits for the police's word
    contact_needed = "contact_needed"  # no approved abuse contact for its hoster
    ready = "ready"  # graded illegal and attributed: waits in a notice being grouped
    noticed = "noticed"  # notice sent; re-checked until offline, re-noticed every 24 h
    escalated = "escalated"  # past the escalation norm: awaits the authority; still re-checked
    forwarded = "forwarded"  # hosted abroad: forwarded to the hosting country; still re-checked
    offline = "offline"  # final: gone (three misses)
    not_illegal = "not_illegal"  # final: graded not illegal
    ignored = "ignored"  # final: graded ignore (or a page without media)
    failed = "failed"  # final: could not be fetched after every attempt


class Grade(StrEnum):
    illegal = "illegal"
    not_illegal = "not_illegal"
    ignore = "ignore"
    police = "police"  # first police: a police contact is told, the notice waits


class Media(StrEnum):
    page = "page"  # an HTML page: its pictures and videos become child items
    image = "image"
    video = "video"
    other = "other"


class Event(StrEnum):
    """The events of an item's timeline (``item_events``)."""

    received = "received"
    linked = "linked"  # another report named the same open URL
    fetched = "fetched"
    fetch_failed = "fetch_failed"
    graded = "graded"
    proposed = "proposed"  # a first grade that waits for a second analyst
    police = "police"  # a police contact was told; the notice waits
    police_cleared = "police_cleared"
    attributed = "attributed"
    contact_needed = "contact_needed"
    retried = "retried"  # an analyst asked for the attribution again (contact_needed -> ready)
    forwarded = "forwarded"
    notice = "notice"
    renotice = "renotice"
    answered = "answered"  # the hoster said something (believed only after a re-check)
    checked = "checked"  # a re-check that changed something worth keeping (a miss)
    escalation_due = "escalation_due"
    offline = "offline"
    reopened = "reopened"
    moved = "moved"


FINAL_STATES: frozenset[str] = frozenset(
    {ItemState.offline, ItemState.not_illegal, ItemState.ignored, ItemState.failed}
)
REPORT_KINDS: tuple[str, ...] = tuple(ReportKind)
REPORT_SOURCES: tuple[str, ...] = tuple(ReportSource)
ITEM_STATES: tuple[str, ...] = tuple(ItemState)
GRADES: tuple[str, ...] = tuple(Grade)
MEDIA: tuple[str, ...] = tuple(Media)
EVENTS: tuple[str, ...] = tuple(Event)
