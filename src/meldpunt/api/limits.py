"""Request limits: a per-key token bucket (429 with Retry-After) and a request size cap (413)."""

from __future__ import annotations

import json
import math
import threading
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meldpunt import clock
from meldpunt.errors import RateLimited

from .errors import error_body


class RateLimiter:
    """Token buckets keyed by API key: ``rate`` requests a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: int) -> None:
        if self.rate <= 0:
            return
        now = clock.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1:
                wait = max(1, math.ceil((1 - tokens) / self.rate))
                self._buckets[key_id] = (tokens, now)
                raise RateLimited(f"too many requests; retry in {wait} s", retry_after=wait)
            self._buckets[key_id] = (tokens - 1, now)


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` (413), whether or not they declare a length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = too_large_body(self.max_bytes)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def too_large_body(max_bytes: int) -> bytes:
    """The JSON error of a request body over the limit (413)."""
    message = f"request bodies are limited to {max_bytes:,} bytes"
    return json.dumps(error_body("too_large", message)).encode()


class _TooLarge(Exception):
    pass


class Timing:
    """Request latency into a histogram, by route family (plain ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, histogram: Any) -> None:
        self.app, self.histogram = app, histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in ("/v1/check", "/m/lookup") else "other"
        start = clock.perf()
        try:
            await self.app(scope, receive, send)
        finally:
            self.histogram.labels(route).observe(clock.perf() - start)
