"""Errors of the authority's workflow; each knows its HTTP status (``meldpunt.errors``)."""

from __future__ import annotations

from meldpunt import errors

__all__ = [
    "AuthorityError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "LinkExpired",
    "NotFound",
    "TooLarge",
]


class AuthorityError(errors.MeldpuntError):
    """Base class for errors of cases, orders, penalty payments and fines."""


class InvalidInput(AuthorityError, errors.InvalidInput):
    """An order, fine or case the authority cannot accept as given; the message says what to fix."""


class NotFound(AuthorityError, errors.NotFound):
    """No case, order, fine or hoster with that id (for this caller)."""


class Conflict(AuthorityError, errors.Conflict):
    """Not possible in the state it is in (a closed case, a final order, a late objection)."""


class Forbidden(AuthorityError, errors.Forbidden):
    """A hoster's key asked about an order to another organisation."""


class TooLarge(AuthorityError, errors.TooLarge):
    """More items than one call may name."""


class LinkExpired(AuthorityError):
    """A genuine acknowledgement link whose time is over."""

    status, code = 410, "expired"
