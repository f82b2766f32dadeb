"""Errors the check service raises; each message says what to fix."""

from __future__ import annotations

__all__ = ["ChecksError", "InvalidInput", "NotFound"]


class ChecksError(Exception):
    """Base class for errors of the check service."""


class NotFound(ChecksError, LookupError):
    """No organisation, key, hit or review with that name or id (for this organisation)."""


class InvalidInput(ChecksError, ValueError):
    """A value the check service cannot accept (a bad kind, role, outcome, set or category)."""
