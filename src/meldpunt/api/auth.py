"""API keys and roles, as FastAPI dependencies.

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Without a valid key a
route answers 401; with a key whose role the route does not allow, 403; never data. Answers of
the key store are cached for a few seconds (``key_cache_seconds``) so that busy platforms do
not cost a database read per request; a revoked key stops working within that time.

Guessing is made expensive: text that is not shaped like a key is refused without a database
read, and an address that fails too often (``auth_failures_per_minute``) gets 429 before any.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from meldpunt import clock
from meldpunt.checks import Principal, Role, authenticate, looks_like_key

from .errors import ApiError
from .state import ServiceState, service_of

bearer = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer mp_...")
header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: mp_...")


V = TypeVar("V")


class TtlCache(Generic[V]):
    """Answers kept for ``seconds`` (0: none is fresh), at most ``max_entries`` of them: when
    full, the least recently used goes, so that a flood of new keys never empties the cache of
    the keys in use."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds, self.max_entries = seconds, max_entries
        self._entries: OrderedDict[object, tuple[float, V | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: object) -> tuple[bool, V | None]:
        """(True, value) while the answer is fresh, else (False, None)."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                self._entries.move_to_end(digest)
        if entry is None or entry[0] <= clock.monotonic():
            return False, None
        return True, entry[1]

    def stale(self, digest: object) -> V | None:
        """The last answer kept, fresh or not (None: none)."""
        with self._lock:
            entry = self._entries.get(digest)
        return None if entry is None else entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def put(self, digest: object, value: V | None) -> None:
        with self._lock:
            self._entries[digest] = (clock.monotonic() + self.seconds, value)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class KeyCache:
    """What the service knows of keys: those that worked, and, apart, those that did not, so
    that random keys can only push out other random keys."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.known: TtlCache[Principal] = TtlCache(seconds, max_entries)
        self.unknown: TtlCache[bool] = TtlCache(seconds, max_entries)

    def clear(self) -> None:
        self.known.clear()
        self.unknown.clear()


class FailureLimiter:
    """Failed authentications per client address: ``per_minute`` of them (0: no limit), in
    bursts up to the same number. Past that, the address gets 429 for keys this service has not
    seen work, before any database read; keys that worked before keep working from it (a
    platform behind the same address as someone guessing)."""

    def __init__(self, per_minute: float, max_addresses: int = 100_000) -> None:
        self.per_minute, self.max_addresses = per_minute, max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _tokens(self, address: str, at: float) -> float:
        tokens, then = self._buckets.get(address, (self.per_minute, at))
        return min(self.per_minute, tokens + (at - then) * self.per_minute / 60)

    def check(self, address: str) -> None:
        """ApiError 429 while ``address`` has no failures left."""
        if self.per_minute <= 0:
            return
        at = clock.monotonic()
        with self._lock:
            tokens = self._tokens(address, at)
        if tokens < 1:
            wait = max(1, math.ceil((1 - tokens) * 60 / self.per_minute))
            raise ApiError(
                429,
                "too_many_failures",
                f"too many failed authentications from this address; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    def failed(self, address: str) -> None:
        if self.per_minute <= 0:
            return
        at = clock.monotonic()
        with self._lock:
            self._buckets[address] = (self._tokens(address, at) - 1, at)
            self._buckets.move_to_end(address)
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)  # forgets the oldest: a new allowance


def principal_for_key(state: ServiceState, key: str | None, client: str | None) -> Principal:
    """The principal of an API key, or ApiError: 401, or 429 for an address that failed too
    often. ``client`` is the caller's address."""
    if not key:
        raise ApiError(401, "unauthenticated", "an API key is required (Authorization: Bearer)")
    cache: KeyCache = state.key_cache
    digest = hashlib.sha256(key.encode(errors="replace")).digest()
    # A cached answer costs microseconds, so this runs on the event loop; a miss (once per key
    # every few seconds) reads the database.
    _, principal = cache.known.get(digest)
    if principal is not None:
        return principal
    failures: FailureLimiter = state.auth_failures
    address = client or "unknown"
    if cache.known.stale(digest) is None:
        failures.check(address)
    if looks_like_key(key) and not cache.unknown.get(digest)[0]:
        with state.sessions() as session:
            principal = authenticate(session, key)
            session.commit()  # last_used_at
        if principal is not None:
            cache.known.put(digest, principal)
            return principal
        cache.unknown.put(digest, True)
    failures.failed(address)
    raise ApiError(401, "invalid_key", "the API key is unknown, revoked or expired")


def require_role(principal: Principal, roles: tuple[str, ...]) -> Principal:
    if principal.role not in roles:
        raise ApiError(403, "forbidden", f"this route is for {', '.join(roles)} keys")
    return principal


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Depends(header)],
) -> Principal:
    # Async on purpose: sync dependencies would each cost a hop to the thread pool.
    key = credentials.credentials if credentials is not None else api_key
    client = request.client.host if request.client is not None else None
    principal = principal_for_key(service_of(request), key, client)
    request.state.principal = principal
    return principal


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits keys of these roles only."""

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        return require_role(principal, roles)

    return check


PlatformKey = Annotated[Principal, Depends(require(Role.platform))]
AnalystKey = Annotated[Principal, Depends(require(Role.analyst, Role.admin))]
AdminKey = Annotated[Principal, Depends(require(Role.admin))]
