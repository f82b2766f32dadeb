"""The signed link in an order: ``<public_url>/order/<token>`` shows the order and takes the
hoster's acknowledgement, without sign-in. The token names the order and an expiry, signed with
HMAC-SHA256 under the installation's link key (``HotlineContext.link_key``, the key that signs
the links in notices, with a purpose of its own so that no notice link opens an order) and
compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from meldpunt import clock

from .errors import LinkExpired, NotFound

__all__ = ["LINK_DAYS", "link_expiry", "order_link", "read_token", "sign_token"]

#: How long an order's link works after the order was issued.
LINK_DAYS = 90
_MAX_TOKEN = 120


def _signature(key: bytes, order_id: int, expires: int) -> str:
    mac = hmac.new(key, f"order-acknowledge:{order_id}:{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def link_expiry(issued_at: datetime) -> datetime:
    return issued_at + timedelta(days=LINK_DAYS)


def sign_token(key: bytes, order_id: int, expires: datetime) -> str:
    stamp = int(expires.timestamp())
    return f"{order_id}.{stamp}.{_signature(key, order_id, stamp)}"


def order_link(public_url: str, key: bytes, order_id: int, issued_at: datetime) -> str:
    token = sign_token(key, order_id, link_expiry(issued_at))
    return f"{public_url.rstrip('/')}/order/{token}"


def read_token(key: bytes, token: str, now: datetime | None = None) -> int:
    """The order id a token names: ``NotFound`` for anything not signed by ``key``,
    ``LinkExpired`` (410) for a genuine token past its expiry."""
    parts = token.split(".") if len(token) <= _MAX_TOKEN else []
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and p for p in parts[:2]):
        raise NotFound("no order has that link")
    order_id, stamp = int(parts[0]), int(parts[1])
    if not 0 < order_id < 2**63 or stamp >= 2**40:
        raise NotFound("no order has that link")
    expected = _signature(key, order_id, stamp)
    if not hmac.compare_digest(expected.encode("ascii"), parts[2].encode("utf-8", "replace")):
        raise NotFound("no order has that link")
    if datetime.fromtimestamp(stamp, UTC) <= (now or clock.now()):
        raise LinkExpired("this link has expired; the authority can send the order again")
    return order_id
