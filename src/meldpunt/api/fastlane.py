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

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import principal_for_key, require_role
from .errors import describe
from .routes_check import hma_answer, parse_check_json, query_of_signal, run_checks

_JSON = (b"content-type", b"application/json")


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
    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == "/v1/check" and method == "POST":
                await self._check(scope, receive, send)
                return
            if path == "/m/lookup" and method == "GET":
                await self._lookup(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope["headers"]
        kind = next((v for n, v in headers if n == b"content-type"), b"")
        if kind.startswith(b"multipart/form-data"):
            await self.app(scope, receive, send)
            return
        try:
            principal = self._principal(headers)
        except _Delegate:
            await self.app(scope, receive, send)
            return
        except Exception as exc:
            await self._error(send, exc)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody is left to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            queries, refs, urls = parse_check_json(b"".join(chunks))
            results = await run_checks(self.state, principal, queries, refs, urls)
        except Exception as exc:
            await self._error(send, exc)
            return
        await _answer(send, 200, json.dumps({"results": results}).encode())

    async def _lookup(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = parse_qs(scope["query_string"].decode("latin-1"))
        signal, signal_type = params.get("signal", []), params.get("signal_type", ["pdq"])
        if len(signal) != 1 or len(signal[0]) > 200 or len(signal_type[0]) > 40:
            await self.app(scope, receive, send)  # the route's own validation answers
            return
        try:
            principal = self._principal(scope["headers"])
        except _Delegate:
            await self.app(scope, receive, send)
            return
        except Exception as exc:
            await self._error(send, exc)
            return
        try:
            query = query_of_signal(signal_type[0], signal[0])
            results = await run_checks(self.state, principal, [query], [None], [None])
        except Exception as exc:
            await self._error(send, exc)
            return
        await _answer(send, 200, json.dumps(hma_answer(results)).encode())

    def _principal(self, headers: list[tuple[bytes, bytes]]) -> Any:
        principal = require_role(principal_for_key(self.state, _api_key(headers)), ("platform",))
        self.state.limiter.take(principal.key_id)
        return principal

    async def _error(self, send: Send, exc: Exception) -> None:
        known = describe(exc)
        if known is None:
            raise exc  # a bug: the server's error middleware logs it and answers 500
        status, body, extra = known
        await _answer(send, status, json.dumps(body).encode(), extra)


async def _answer(
    send: Send, status: int, body: bytes, extra: dict[str, str] | None = None
) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
