"""Errors of the monitor; each knows its HTTP status (``meldpunt.errors``)."""

from __future__ import annotations

from meldpunt import errors

__all__ = ["InvalidInput", "MonitorError", "NotFound"]


class MonitorError(errors.MeldpuntError):
    """Base class for errors of the monitor."""


class InvalidInput(MonitorError, errors.InvalidInput):
    """A period, period kind or format the monitor does not know; the message says what to use."""


class NotFound(MonitorError, errors.NotFound):
    """No figures for that period."""
