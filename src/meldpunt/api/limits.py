"""Request limits: a per-key token bucket (429 with Retry-After), request size caps (413) and
the process's memory for decoding pictures (503 with Retry-After)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meldpunt import clock
from meldpunt.errors import RateLimited
from meldpunt.signals import (
    HashOptions,
    ImageInfo,
    ImageTooLarge,
    PdqSignal,
    decode_cost,
    pdq_cost,
    pdq_signal,
    probe_image,
)

from .errors import ApiError, error_body


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
    """Refuses request bodies over the limit (413), whether or not they declare a length: a
    declared length at once, an undeclared one as soon as the bytes received pass it, without
    reading the rest. File uploads (``multipart/form-data``, which the form parser spools to
    disk) have a limit of their own, ``max_multipart_bytes``; every other body ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_multipart_bytes: int | None = None):
        self.app, self.json_limit = app, max_bytes
        self.multipart_limit = max_multipart_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        limit = self.multipart_limit if multipart else self.json_limit
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
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
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = too_large_body(limit)
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


class DecodeBudget:
    """The memory the process lends to decoding pictures, in bytes.

    Each picture reserves its estimated peak (``signals.image.decode_cost``, from its header)
    before it is decoded and gives it back after; a reservation that does not fit while others
    decode is answered 503 with ``Retry-After``, so that a burst of large pictures waits at the
    client instead of in the process's memory.
    """

    RETRY_AFTER_SECONDS = 1

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self._used = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._used

    @contextmanager
    def reserve(self, cost: int) -> Iterator[None]:
        """Hold ``cost`` bytes of the budget while the block runs (``cost`` at most ``total``;
        the pictures' limits refuse larger ones first)."""
        with self._lock:
            if self._used and self._used + cost > self.total:
                raise ApiError(
                    503,
                    "busy",
                    "the service is decoding as many pictures as its memory allows; "
                    f"retry in {self.RETRY_AFTER_SECONDS} s",
                    headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)},
                )
            self._used += cost
        try:
            yield
        finally:
            with self._lock:
                self._used -= cost

    def pdq_signal(self, data: bytes, options: HashOptions) -> PdqSignal:
        """``signals.pdq_signal`` within the budget: the picture's header says what decoding it
        will need, which is reserved first (ApiError 503 when it does not fit now) and given
        back, to the system too, after. Blocking: call it from a worker thread."""
        info = probe_image(data, options.limits)
        _refuse_past_limit(info, options)
        cost = pdq_cost(info, options)
        with self.reserve(cost):
            try:
                return pdq_signal(data, options)
            finally:
                if cost > _TRIM_AFTER_BYTES:
                    return_memory()


def _refuse_past_limit(info: ImageInfo, options: HashOptions) -> None:
    """ImageTooLarge for a picture whose first decoding needs more than ``max_decode_bytes``
    (``signals`` refuses it too, once it starts): refused before any reservation, so that it
    never holds the budget and makes others' pictures wait."""
    limit = options.limits.max_decode_bytes
    if limit is None or options.exact:
        return
    needed = decode_cost(info, min_side=options.min_side)
    if needed > limit:
        raise ImageTooLarge(
            f"decoding this {info.width}x{info.height} {info.format} picture needs about "
            f"{needed:,} bytes; the limit is {limit:,}"
        )


# Decodes that reserved more than this give their memory back to the system when they end.
_TRIM_AFTER_BYTES = 32 * 1024 * 1024


def _load_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:  # pragma: no cover - depends on the platform
        return None


_malloc_trim = _load_trim()


def return_memory() -> None:
    """Give freed memory back to the system: glibc keeps freed blocks of the heap for reuse, so
    after a large decode the process can stay well above where it was (measured, four decodes
    of a 600 x 40,000 PNG: 63 MB kept, 40 MB after trimming; before the luminance was computed
    in strips, 280 MB kept after one 49-megapixel WebP, 4 MB after trimming)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


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
