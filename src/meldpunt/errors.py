"""The one error base class: every error meldpunt raises on purpose knows its HTTP status.

A room raises its own subclass (``registry.NotFound``, ``checks.InvalidInput``,
``signals.NotAnImage``) so that callers can catch what they expect, and the faces need one rule for
all of them: the API
answers ``exc.status`` with ``{"error": {"code": exc.code, "message": str(exc)}}``, and the pages
show ``exc.status`` with the message. No face keeps a table of error classes.

This module imports nothing of meldpunt (the architecture test holds it to that), so that even the
pure rooms, ``signals/`` and ``index/``, can derive their errors from it.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "MeldpuntError",
    "NotFound",
    "RateLimited",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMedia",
]


class MeldpuntError(Exception):
    """Base class. ``status`` and ``code`` come from the class; one raise may override either.

    ``retry_after`` (seconds), when set, goes out as the ``Retry-After`` header.
    """

    status: int = 400
    code: str = "invalid"
    retry_after: int | None = None

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after
        self._headers = headers

    @property
    def message(self) -> str:
        return str(self)

    @property
    def headers(self) -> dict[str, str] | None:
        """Headers the answer carries (``Retry-After``), or None."""
        if self.retry_after is None:
            return self._headers
        return {**(self._headers or {}), "Retry-After": str(self.retry_after)}


class InvalidInput(MeldpuntError, ValueError):
    """A value that cannot be accepted; the message says what to fix."""


class NotFound(MeldpuntError, LookupError):
    """No such thing (or none this caller may see)."""

    status, code = 404, "not_found"


class Unauthenticated(MeldpuntError):
    status, code = 401, "unauthenticated"


class Forbidden(MeldpuntError):
    status, code = 403, "forbidden"


class Conflict(MeldpuntError):
    """The request contradicts the current state (decided already, exists already)."""

    status, code = 409, "conflict"


class TooLarge(MeldpuntError):
    status, code = 413, "too_large"


class UnsupportedMedia(MeldpuntError):
    status, code = 415, "unsupported_media"


class RateLimited(MeldpuntError):
    status, code = 429, "rate_limited"


class Unavailable(MeldpuntError):
    """Not now (the index is loading, a dependency is down); try again after ``retry_after``."""

    status, code = 503, "unavailable"
