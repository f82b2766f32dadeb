"""The registry's vocabularies: what a set is, and the states of sets and items.

Faces take these enums for their choices (API schemas, form fields, CLI options) instead of typing
the words again. The database keeps its own copy in ``store/models.py`` for its check constraints,
since a new word there needs a migration; ``tests/test_vocabularies.py`` holds the two together.

Each member's name is its value: psycopg writes an Enum by name, so a member that reaches the
database unconverted still writes the right word.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ITEM_STATUSES", "SET_KINDS", "ItemStatus", "MatchWay", "SetKind", "SetState"]


class SetKind(StrEnum):
    """A blocklist's entries are matched; an allow-list's entries override matches (known false
    positives)."""

    blocklist = "blocklist"
    allowlist = "allowlist"


class MatchWay(StrEnum):
    """How a match was found, so that a hotline and a platform can weigh it:

    * ``plain``: the picture's PDQ hash (or an MD5/SHA digest) against an entry's own;
    * ``orientation``: a turned or mirrored version of the picture (its true orientation hashes
      when meldpunt hashed the pixels, else estimated from the one hash sent) or of the entry;
    * ``trimmed``: the picture or the entry without its uniform border;
    * ``verified``: the picture's local features against an entry made from a picture, placed
      by one geometric transform (crops, overlays, small rotations).

    Every way but ``plain`` can be turned off per set.
    """

    plain = "plain"
    orientation = "orientation"
    trimmed = "trimmed"
    verified = "verified"


class SetState(StrEnum):
    active = "active"
    disabled = "disabled"


class ItemStatus(StrEnum):
    """Only active items are matched; a withdrawn item was taken back by its source for good."""

    active = "active"
    disabled = "disabled"
    withdrawn = "withdrawn"


#: The words, in order, for membership tests and messages (``in`` on the enum itself needs 3.12).
SET_KINDS: tuple[str, ...] = tuple(SetKind)
ITEM_STATUSES: tuple[str, ...] = tuple(ItemStatus)
