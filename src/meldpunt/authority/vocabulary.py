"""The authority's vocabularies: where a case stands and where it came from, where an order
stands, what became of an objection or appeal. ``store/models.py`` keeps the words again for its
check constraints (``tests/test_vocabularies.py`` holds the copies together). Each member's name
is its value (psycopg writes an Enum by name)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CASE_SOURCES",
    "CASE_STATES",
    "ORDER_STATUSES",
    "REVIEW_OUTCOMES",
    "CaseSource",
    "CaseState",
    "OrderStatus",
    "ReviewOutcome",
]


class CaseState(StrEnum):
    open = "open"
    closed = "closed"


class CaseSource(StrEnum):
    escalation = "escalation"  # opened from items the hotline escalated
    authority = "authority"  # opened by the authority itself (a URL, a hoster)


class OrderStatus(StrEnum):
    """An order is ``issued`` until its deadline; then ``met`` (every listed URL gone by the
    deadline), ``unmet`` (something still online: penalty payments accrue) and, once the last
    URL is gone after the deadline, ``late``. ``withdrawn`` by the authority."""

    issued = "issued"
    met = "met"
    unmet = "unmet"
    late = "late"
    withdrawn = "withdrawn"


class ReviewOutcome(StrEnum):
    """What became of an objection to or an appeal against a fine."""

    upheld = "upheld"  # the fine stands
    reduced = "reduced"  # a lower amount stands
    annulled = "annulled"  # no fine


CASE_STATES: tuple[str, ...] = tuple(CaseState)
CASE_SOURCES: tuple[str, ...] = tuple(CaseSource)
ORDER_STATUSES: tuple[str, ...] = tuple(OrderStatus)
REVIEW_OUTCOMES: tuple[str, ...] = tuple(ReviewOutcome)
#: Order statuses after which nothing more happens to it.
FINAL_ORDER_STATUSES: frozenset[str] = frozenset(
    {OrderStatus.met, OrderStatus.late, OrderStatus.withdrawn}
)
