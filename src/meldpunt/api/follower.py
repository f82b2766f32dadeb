"""The service's in-memory index, kept in step with the registry by a background thread.

Every API process polls the registry's change log (every second by default), so a change made
by any process, or by the command line, reaches every process's checks within a few seconds,
without a restart. Checks read the index side by side (their searches run in C, without the
GIL); applying changes takes it alone, in small batches, so that a large import never holds checks
up for long.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from meldpunt import clock
from meldpunt.registry import changes_since, current_seq
from meldpunt.registry.matching import Matcher

log = logging.getLogger(__name__)
T = TypeVar("T")
APPLY_BATCH = 1_000


class ReadWriteLock:
    """Many readers (checks, whose searches run in C without the GIL) or one writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._writing = True  # new readers wait from here on
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class IndexFollower:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        poll_seconds: float = 1.0,
        load: Callable[[Session], Matcher] = Matcher.build,
    ) -> None:
        self._sessions = sessions
        self._poll = poll_seconds
        self._load = load
        self._lock = ReadWriteLock()
        self._matcher: Matcher | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registry_seq = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Load the index (blocking), then follow the registry in the background."""
        with self._sessions() as session:
            matcher = self._load(session)
            self.registry_seq = current_seq(session)
        with self._lock.writing():
            self._matcher = matcher
        self._thread = threading.Thread(target=self._run, name="meldpunt-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.catch_up()
                self.last_error = None
            except Exception as exc:  # keep following; /readyz reports the trouble
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("index follower: %s", self.last_error)

    def catch_up(self) -> int:
        """Apply every change made since the index's change number; returns how many."""
        applied = 0
        with self._sessions() as session:
            self.registry_seq = current_seq(session)
            while True:
                matcher = self._matcher
                if matcher is None:
                    return applied
                changes = changes_since(session, matcher.seq, APPLY_BATCH)
                if not changes:
                    return applied
                with self._lock.writing():
                    for change in changes:
                        matcher.apply(change, session)
                        matcher.seq = change.seq
                applied += len(changes)

    def use(self, work: Callable[[Matcher], T]) -> T:
        """Run ``work`` with the matcher, never while changes are being applied."""
        with self._lock.reading():
            if self._matcher is None:
                raise RuntimeError("the index is not loaded yet")
            return work(self._matcher)

    @property
    def ready(self) -> bool:
        matcher = self._matcher
        return matcher is not None and matcher.seq >= self.registry_seq and not self.last_error

    def status(self) -> dict[str, object]:
        matcher = self._matcher
        return {
            "loaded": matcher is not None,
            "index_change": matcher.seq if matcher else None,
            "registry_change": self.registry_seq,
            "pdq_hashes": len(matcher.pdq) if matcher else 0,
            "error": self.last_error,
            "checked_at": clock.now().timestamp(),
        }
