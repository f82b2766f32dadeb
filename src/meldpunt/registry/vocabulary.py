"""The registry's vocabularies: what a set is, and the states of sets and items.

Faces take these enums for their choices (API schemas, form fields, CLI options) instead of typing
the words again. The database keeps its own copy in ``store/models.py`` for its check constraints,
since a new word there needs a migration; ``tests/test_vocabularies.py`` holds the two together.

Each member's name is its value: psycopg writes an Enum by name, so a member that reaches the
database unconverted still writes the right word.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ITEM_STATUSES", "SET_KINDS", "ItemStatus", "SetKind", "SetState"]


class SetKind(StrEnum):
    """A blocklist's entries are matched; an allow-list's entries override matches (known false
    positives)."""

    blocklist = "blocklist"
    allowlist = "allowlist"


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
