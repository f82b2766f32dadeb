"""Errors of the exchange between instances; each message says what to fix.

``PageRefused`` is the follower's answer to a page whose signature, order or content does not
fit: nothing of the page is applied, and the message names the partner, the set and why.
"""

from __future__ import annotations

from meldpunt import errors

__all__ = [
    "ExchangeError",
    "FeedUnavailable",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PageRefused",
    "Unauthenticated",
]


class ExchangeError(errors.MeldpuntError):
    """Base class for the exchange's errors."""


class NotFound(ExchangeError, errors.NotFound):
    """No partner, or no set shared with that partner, by that name."""


class InvalidInput(ExchangeError, errors.InvalidInput):
    """A value the exchange cannot accept (a name, a URL, a key, a rule)."""


class Unauthenticated(ExchangeError, errors.Unauthenticated):
    """A feed asked for without a partner's token."""


class Forbidden(ExchangeError, errors.Forbidden):
    """A partner asked for a set it may not read."""


class PageRefused(ExchangeError):
    """A partner's page that does not verify or does not fit; nothing of it was applied."""

    status, code = 502, "page_refused"


class FeedUnavailable(ExchangeError, errors.Unavailable):
    """The partner could not be reached or answered with an error; try again later."""
