"""The worker: claims due work from the database and runs it.

Every piece of waiting work is a row with a due time, so any number of workers (the thread in
``meldpunt serve``, separate ``meldpunt worker`` processes) can share one database, and a
restart loses nothing. A round runs each step in turn until none has anything due:

- the re-checks of hits' public URLs (``checks.rechecks``);
- the hotline's steps, in the order an item moves through them (``STEPS``);
- the authority's: orders mailed, and their compliance evaluated after the re-checks.
- the partners' feeds, pulled when due (``exchange.work``);
- the monitor's figures, brought up to date (``monitor.figures.run_monitor``).

Each step takes the ``HotlineContext`` and a batch size and returns how much it did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from meldpunt.authority.work import run_authority
from meldpunt.checks.rechecks import run_rechecks
from meldpunt.exchange.work import run_exchange
from meldpunt.monitor.figures import finish_settling, run_monitor
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.grading import run_fetches
from meldpunt.takedown.attribution import run_attributions
from meldpunt.takedown.lifecycle import run_lifecycle
from meldpunt.takedown.notices import run_notices

__all__ = ["STEPS", "Step", "WorkerThread", "run_once", "run_worker"]

log = logging.getLogger(__name__)

Step = Callable[[HotlineContext, int], int]


def _hit_rechecks(context: HotlineContext, limit: int) -> int:
    return run_rechecks(context.sessions, context.fetch_policy, limit=limit)


#: The steps of a round, in order.
STEPS: list[tuple[str, Step]] = [
    ("hit re-checks", _hit_rechecks),
    ("fetches", run_fetches),
    ("attribution", run_attributions),  # after grading, before notices
    ("notices", run_notices),
    ("re-checks", run_lifecycle),  # after notices
    ("authority", run_authority),  # orders: delivery, then compliance after the re-checks
    ("exchange", run_exchange),  # partners' feeds, pulled when due
    ("monitor", run_monitor),  # last: the figures follow what the steps before changed
]


def run_once(context: HotlineContext, *, limit: int = 50, rounds: int = 1000) -> int:
    """Run what is due now until nothing is (at most ``rounds`` passes over the steps, so that
    work that keeps making work cannot hold the caller for ever); returns how much ran."""
    total = 0
    for _ in range(rounds):
        done = 0
        for _name, step in STEPS:
            done += step(context, limit)
        total += done
        if not done:
            break
    return total


def run_worker(
    context: HotlineContext,
    *,
    poll_seconds: float = 5.0,
    stop_event: threading.Event,
    limit: int = 50,
) -> None:
    """Run due work every ``poll_seconds`` until ``stop_event`` is set. A failing step is
    logged and the round goes on: the work it claimed becomes due again by itself."""
    try:
        while not stop_event.is_set():
            for name, step in STEPS:
                if stop_event.is_set():
                    return
                try:
                    while step(context, limit) >= limit and not stop_event.is_set():
                        pass  # a full batch: there may be more
                except Exception:
                    log.exception("worker step %s failed; trying again in %s s", name,
                                  poll_seconds)  # fmt: skip
            _idle(context, stop_event, poll_seconds)
    finally:
        finish_settling(context)


def _idle(context: HotlineContext, stop_event: threading.Event, poll_seconds: float) -> None:
    """Wait ``poll_seconds`` between rounds, bringing the monitor's figures up to date every
    ``monitor_refresh_seconds`` meanwhile: changes other processes commit are on the public
    pages within seconds, not only after the next round."""
    every = max(0.05, context.settings.monitor_refresh_seconds)
    left = poll_seconds
    while left > 0 and not stop_event.is_set():
        stop_event.wait(min(left, every))
        left -= every
        if left > 0 and not stop_event.is_set():
            try:
                run_monitor(context, 0)
            except Exception:
                log.exception("the monitor's refresh failed; trying again in %s s", every)


class WorkerThread:
    """``run_worker`` in a daemon thread, as the service runs it beside the API."""

    def __init__(self, context: HotlineContext, *, poll_seconds: float = 5.0) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_worker,
            args=(context,),
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
