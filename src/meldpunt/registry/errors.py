"""Errors the registry raises; each message says what to fix.

They derive from ``meldpunt.errors``, which gives each its HTTP status (404 for ``NotFound``, 400
for the rest); ``RegistryError`` catches any of them.
"""

from __future__ import annotations

from meldpunt import errors


class RegistryError(errors.MeldpuntError):
    """Base class for registry errors."""


class NotFound(RegistryError, errors.NotFound):
    """No set or item with that name or id."""


class InvalidInput(RegistryError, errors.InvalidInput):
    """A value the registry cannot accept (a bad kind, threshold, category, or signal)."""


class ConflictingItems(InvalidInput):
    """The signals given for one item already belong to different items of the set."""


class FormatError(RegistryError):
    """A file that cannot be read in the requested (or detected) format at all."""
