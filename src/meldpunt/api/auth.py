"""API keys and roles, as FastAPI dependencies.

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Without a valid key a
route answers 401; with a key whose role the route does not allow, 403; never data. Answers of
the key store are cached for a few seconds (``api_key_cache_seconds``) so that busy platforms do
not cost a database read per request; a revoked key stops working within that time.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Awaitable, Callable
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from meldpunt import clock
from meldpunt.checks import Principal, Role, authenticate

from .errors import ApiError
from .state import ServiceState, service_of

bearer = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer mp_...")
header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: mp_...")


V = TypeVar("V")


class TtlCache(Generic[V]):
    """Answers kept for ``seconds`` (0: nothing is kept)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[object, tuple[float, V | None]] = {}
        self._lock = threading.Lock()

    def get(self, digest: object) -> tuple[bool, V | None]:
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None or entry[0] < clock.monotonic():
            return False, None
        return True, entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def put(self, digest: object, value: V | None) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (clock.monotonic() + self.seconds, value)


def principal_for_key(state: ServiceState, key: str | None) -> Principal:
    """The principal of an API key, or ApiError 401."""
    if not key:
        raise ApiError(401, "unauthenticated", "an API key is required (Authorization: Bearer)")
    cache: TtlCache[Principal] = state.key_cache
    digest = hashlib.sha256(key.encode()).hexdigest()
    # A cached answer costs microseconds, so this runs on the event loop; a miss (once per key
    # every few seconds) reads the database.
    known, principal = cache.get(digest) if cache.seconds > 0 else (False, None)
    if not known:
        with state.sessions() as session:
            principal = authenticate(session, key)
            session.commit()  # last_used_at
        cache.put(digest, principal)
    if principal is None:
        raise ApiError(401, "invalid_key", "the API key is unknown, revoked or expired")
    return principal


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
    principal = principal_for_key(service_of(request), key)
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
