"""Errors the check service raises; each message says what to fix.

They derive from ``meldpunt.errors``, which gives each its HTTP status (404 for ``NotFound``, 400
for the rest); ``ChecksError`` catches any of them.
"""

from __future__ import annotations

from meldpunt import errors

__all__ = ["ChecksError", "InvalidInput", "NotFound"]


class ChecksError(errors.MeldpuntError):
    """Base class for errors of the check service."""


class NotFound(ChecksError, errors.NotFound):
    """No organisation, key, hit or review with that name or id (for this organisation)."""


class InvalidInput(ChecksError, errors.InvalidInput):
    """A value the check service cannot accept (a bad kind, role, outcome, set or category)."""
