"""Errors of the hotline's intake and grading; each knows its HTTP status (``meldpunt.errors``)."""

from __future__ import annotations

from meldpunt import errors

__all__ = ["Conflict", "InvalidInput", "NotFound", "RateLimited", "ReportsError"]


class ReportsError(errors.MeldpuntError):
    """Base class for errors of the hotline's reports and items."""


class InvalidInput(ReportsError, errors.InvalidInput):
    """A report, URL, grade or file the hotline cannot accept; the message says what to fix."""


class NotFound(ReportsError, errors.NotFound):
    """No report or item with that reference or id (for this caller)."""


class Conflict(ReportsError, errors.Conflict):
    """The item is not in a state where that can be done (graded already, final, ...)."""


class RateLimited(ReportsError, errors.RateLimited):
    """Too many reports from one address; ``retry_after`` says when to try again."""
