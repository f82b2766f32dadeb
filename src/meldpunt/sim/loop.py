"""One asyncio event loop in a background thread: every simulated hoster's HTTP server and the
mail sink run on it, so that a thousand hosters cost one thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "meldpunt-sim") -> None:
        self._loop: asyncio.AbstractEventLoop | None = None  # made by start()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the event loop runs only once start() was called")
        return self._loop

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._loop = asyncio.new_event_loop()
            self._thread.start()

    def on_loop(self) -> bool:
        """Whether the caller runs on the loop's own thread (where ``call`` would wait for ever)."""
        return threading.current_thread() is self._thread

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 120.0) -> T:
        """Run ``coroutine`` on the loop and wait for its result (from another thread)."""
        if self.on_loop():
            coroutine.close()
            raise RuntimeError("LoopThread.call from the loop's own thread would wait for ever")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if not self._started or not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        if not self._thread.is_alive():
            self.loop.close()
