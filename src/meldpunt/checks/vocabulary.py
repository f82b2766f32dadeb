"""The check service's vocabularies: kinds of organisation, key roles, hit outcomes, re-check
statuses and review resolutions.

Faces take these enums for their choices (API schemas, form fields, CLI options, role checks)
instead of typing the words again. The database keeps its own copy in ``store/models.py`` for its
check constraints, since a new word there needs a migration; ``tests/test_vocabularies.py`` holds
the two together.

Each member's name is its value: psycopg writes an Enum by name, so a member that reaches the
database unconverted still writes the right word.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ORG_KINDS",
    "OUTCOMES",
    "RECHECK_STATUSES",
    "REVIEW_RESOLUTIONS",
    "ROLES",
    "OrgKind",
    "Outcome",
    "RecheckStatus",
    "ReviewResolution",
    "Role",
]


class OrgKind(StrEnum):
    platform = "platform"
    hotline = "hotline"
    authority = "authority"
    partner = "partner"
    flagger = "flagger"  # a trusted flagger: reports URLs to the hotline by API
    hoster = "hoster"  # a hosting provider that answers the hotline's notices by API


class Role(StrEnum):
    """What a key may do: a platform checks and reports outcomes, an analyst curates the sets,
    reviews and grades reports, an admin does everything; a flagger reports URLs and reads its
    own reports; a hoster answers the notices sent to it and acknowledges orders; an authority
    opens cases on escalations and issues orders, penalty payments and fines."""

    platform = "platform"
    analyst = "analyst"
    admin = "admin"
    flagger = "flagger"
    hoster = "hoster"
    authority = "authority"  # opens cases, issues orders, penalties and fines


class Outcome(StrEnum):
    """What a platform did with a hit."""

    blocked = "blocked"
    removed = "removed"
    reported = "reported"
    false_positive = "false_positive"
    other = "other"


class RecheckStatus(StrEnum):
    """Where the re-check of a hit's public URL stands; ``pending`` until the first re-check."""

    pending = "pending"
    gone = "gone"
    online = "online"
    error = "error"


class ReviewResolution(StrEnum):
    confirmed = "confirmed"
    rejected = "rejected"


#: The words, in order, for membership tests and messages (``in`` on the enum itself needs 3.12).
ORG_KINDS: tuple[str, ...] = tuple(OrgKind)
ROLES: tuple[str, ...] = tuple(Role)
OUTCOMES: tuple[str, ...] = tuple(Outcome)
RECHECK_STATUSES: tuple[str, ...] = tuple(RecheckStatus)
REVIEW_RESOLUTIONS: tuple[str, ...] = tuple(ReviewResolution)
