"""The worker: claims due work from the database and runs it.

Today that is the re-checks of hits' public URLs (``meldpunt.checks.rechecks``). Every piece of
waiting work is a row with a due time, so any number of workers (the thread in ``meldpunt
serve``, separate ``meldpunt worker`` processes) can share one database, and a restart loses
nothing.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from meldpunt.checks.rechecks import run_rechecks
from meldpunt.reports.fetcher import FetchPolicy

__all__ = ["WorkerThread", "run_once", "run_worker"]

log = logging.getLogger(__name__)


def run_once(sessions: sessionmaker[Session], policy: FetchPolicy, *, limit: int = 50) -> int:
    """Run what is due now, in batches of ``limit``, until nothing is; returns how much ran."""
    total = 0
    while True:
        done = run_rechecks(sessions, policy, limit=limit)
        total += done
        if done < limit:
            return total


def run_worker(
    sessions: sessionmaker[Session],
    policy: FetchPolicy,
    *,
    poll_seconds: float = 5.0,
    stop_event: threading.Event,
    limit: int = 50,
) -> None:
    """Run due work every ``poll_seconds`` until ``stop_event`` is set. A failing round is
    logged and retried at the next poll: the work it claimed becomes due again by itself."""
    while not stop_event.is_set():
        try:
            run_once(sessions, policy, limit=limit)
        except Exception:
            log.exception("worker round failed; trying again in %s s", poll_seconds)
        stop_event.wait(poll_seconds)


class WorkerThread:
    """``run_worker`` in a daemon thread, as the service runs it beside the API."""

    def __init__(
        self, sessions: sessionmaker[Session], policy: FetchPolicy, *, poll_seconds: float = 5.0
    ) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_worker,
            args=(sessions, policy),
            kwargs={"poll_seconds": poll_seconds, "stop_event": self._stop},
            name="meldpunt-worker",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
