"""The check lane: the service's hot routes answered without FastAPI's per-request machinery.

Platforms call ``POST /v1/check`` (JSON) and HMA clients ``GET /m/lookup`` for every upload; for
a one-hash check, FastAPI's routing, dependency solving and request objects cost more than
matching does. This ASGI middleware answers exactly those requests with the same functions the
FastAPI routes use (key and role, rate limit, body parsing, matching and hits, error bodies), so
answers and errors are the same either way; anything else, and anything unusual about those
requests (a file upload, a key sent some other way, query parameters the route would refuse),
goes on to the FastAPI application, which stays the documented definition of the routes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meldpunt import clock
from meldpunt.checks import Role

from .auth import principal_for_key, require_role
from .errors import describe
from .limits import too_large_body
from .routes_check import (
    MAX_SIGNAL,
    MAX_TYPE,
    hma_answer,
    query_of_signal,
    read_check_json,
    run_checks,
)
from .state import ServiceState

_JSON = (b"content-type", b"application/json")

_Answer = tuple[int, bytes, dict[str, str] | None]  # status, JSON body, extra headers


class _Delegate(Exception):
    """The request is not one the lane answers: hand it to the application."""


def _api_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key``; anything else is left to
    the application, which answers it in full."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and key.strip():
                return key.strip()
            raise _Delegate
    for name, value in headers:
        if name == b"x-api-key" and value:
            return value.decode("latin-1")
    raise _Delegate


class CheckLane:
    """Outermost: in front of the application's middleware, whose work for these two routes
    (the body size limit, request timing) it does itself."""

    def __init__(
        self, app: ASGIApp, state: ServiceState, max_body_bytes: int, histogram: Any
    ) -> None:
        self.app, self.state = app, state
        self.max_body_bytes, self.histogram = max_body_bytes, histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/check" and method == "POST":
            handler = self._check
        elif path == "/m/lookup" and method == "GET":
            handler = self._lookup
        else:
            await self.app(scope, receive, send)
            return
        start = clock.perf()
        try:
            answer = await handler(scope, receive)
        except _Delegate:  # raised before any of the body is read
            await self.app(scope, receive, send)
            return
        except Exception as exc:
            known = describe(exc)
            if known is None:
                raise  # a bug: the server logs it and answers 500
            status, body, extra = known
            answer = status, orjson.dumps(body), extra
        if answer is None:
            return  # the client hung up: nobody is left to answer
        await _answer(send, *answer)
        self.histogram.labels(path).observe(clock.perf() - start)

    async def _check(self, scope: Scope, receive: Receive) -> _Answer | None:
        headers = scope["headers"]
        kind = next((v for n, v in headers if n == b"content-type"), b"")
        if kind.startswith(b"multipart/form-data"):
            raise _Delegate
        declared = next((v for n, v in headers if n == b"content-length"), b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return 413, too_large_body(self.max_body_bytes), None
        principal = self._principal(scope)
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_body_bytes:
                return 413, too_large_body(self.max_body_bytes), None
            if not message.get("more_body", False):
                break
        queries, refs, urls = await read_check_json(self.state, b"".join(chunks))
        results = await run_checks(self.state, principal, queries, refs, urls)
        return 200, orjson.dumps({"results": results}), None

    async def _lookup(self, scope: Scope, receive: Receive) -> _Answer | None:
        params = parse_qs(scope["query_string"].decode("latin-1"))
        signal, signal_type = params.get("signal", []), params.get("signal_type", ["pdq"])
        if len(signal) != 1 or len(signal[0]) > MAX_SIGNAL or len(signal_type[0]) > MAX_TYPE:
            raise _Delegate  # the route's own validation answers
        principal = self._principal(scope)
        query = query_of_signal(signal_type[0], signal[0])
        results = await run_checks(self.state, principal, [query], [None], [None])
        return 200, orjson.dumps(hma_answer(results)), None

    def _principal(self, scope: Scope) -> Any:
        client = scope.get("client")
        found = principal_for_key(self.state, _api_key(scope["headers"]), client and client[0])
        principal = require_role(found, (Role.platform,))
        self.state.limiter.take(principal.key_id)
        return principal


async def _answer(
    send: Send, status: int, body: bytes, extra: dict[str, str] | None = None
) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
