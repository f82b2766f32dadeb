"""The simulation beside a running service: ``meldpunt sim`` and ``meldpunt demo``.

``LiveSimulation`` starts the hosters and the mail sink, puts their tables and the hashes of the
pictures the registry should know into meldpunt's database, and then, in a thread, lets the
hosters act when their time comes and files the planned reports when theirs does (through
meldpunt's intake, as the public and an import would), on whatever clock the process runs:
the system clock beside a separate ``meldpunt serve``, or a ``ScaledClock`` in ``meldpunt demo``
where a day passes in minutes. With ``continuous`` a new round of reports is planned whenever
one is used up, so that there is always something moving. Nobody grades the new material:
that is left to the person at the analysts' queue. With ``authority``, a simulated authority
takes up what the hotline escalates (``sim.authority``): the hoster that ignores notices gets a
case, an order, penalty payments and a fine, on ``/ui/authority`` and ``/decisions``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from meldpunt import clock
from meldpunt.config import Settings
from meldpunt.sim.authority import SimAuthority
from meldpunt.sim.plan import PlannedReport, make_plan, run_tag
from meldpunt.sim.scenario import seed_registry, submit_planned
from meldpunt.sim.simulation import Simulation

__all__ = ["LiveSimulation"]

log = logging.getLogger(__name__)


class LiveSimulation:
    def __init__(
        self,
        folder: Path,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        seed: int = 1,
        hosters: int = 12,
        urls: int = 24,
        report_hours: float = 3.0,
        known_share: float = 0.7,
        continuous: bool = False,
        port: int = 0,
        smtp_port: int = 0,
        every_seconds: float = 0.5,
        authority: bool = False,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.seed = seed
        self.urls = urls
        self.report_hours = report_hours
        self.known_share = known_share
        self.continuous = continuous
        self.every_seconds = every_seconds
        self.sim = Simulation(
            folder,
            seed=seed,
            hosters=hosters,
            port=port,
            smtp_port=smtp_port,
            home=settings.hotline_country,
        )
        self.filed = 0
        #: A simulated authority takes up the escalations (cases, orders, fines).
        self.authority = SimAuthority(settings) if authority else None
        self._pending: list[PlannedReport] = []
        self._round = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LiveSimulation:
        self.sim.start()
        try:
            with self.sessions() as session, session.begin():
                self.sim.load_tables(session)
            self._plan_round()
        except BaseException:
            self.sim.stop()
            raise
        self._thread = threading.Thread(target=self._run, name="meldpunt-sim-live", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        self.sim.stop()

    def __enter__(self) -> LiveSimulation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _plan_round(self) -> None:
        start = clock.now()
        self._round += 1
        plan = make_plan(
            self.sim.internet,
            seed=self.seed * 1000 + self._round,
            urls=self.urls,
            start=start,
            tag=run_tag(self.seed * 1000 + self._round, start),
            known_share=self.known_share,
            report_hours=self.report_hours,
        )
        with self.sessions() as session, session.begin():
            seed_registry(session, self.sim, plan.known_pictures)
        self._pending = sorted(plan.reports, key=lambda r: r.at)

    def step(self) -> int:
        """Let the hosters act and file the reports whose time has come; returns reports filed."""
        self.sim.tick()
        now = clock.now()
        filed = 0
        while self._pending and self._pending[0].at <= now:
            submit_planned(self.sessions, self._pending.pop(0), self.settings)
            filed += 1
        self.filed += filed
        if self.authority is not None:
            self.authority.act(self.sessions)
        if not self._pending and self.continuous:
            self._plan_round()
        return filed

    def _run(self) -> None:
        while not self._stop.wait(self.every_seconds):
            try:
                self.step()
            except Exception:  # keep going: the next step may well work
                log.exception("the live simulation's step failed")
