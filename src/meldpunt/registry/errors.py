"""Errors the registry raises; each message says what to fix."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class for registry errors."""


class NotFound(RegistryError, LookupError):
    """No set or item with that name or id."""


class InvalidInput(RegistryError, ValueError):
    """A value the registry cannot accept (a bad kind, threshold, category, or signal)."""


class ConflictingItems(InvalidInput):
    """The signals given for one item already belong to different items of the set."""


class FormatError(RegistryError):
    """A file that cannot be read in the requested (or detected) format at all."""
