"""The whole simulation in one object: the hosters (``Internet``), the mail sink, their tables
and the settings that point meldpunt at them.

    with Simulation(folder, seed=1, hosters=20) as sim:
        context = HotlineContext(sessions, policy=sim.policy(), relay=sim.relay())
        ...
        sim.tick()  # hosters do what is due by clock.now()

``settings()`` are the values meldpunt needs to reach the simulation (the name table, the
loopback network allowed to the fetcher, the sink as relay); ``start()`` also writes them to
``folder/meldpunt-sim.toml`` and ``folder/meldpunt-sim.env`` for a ``meldpunt serve`` beside it.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from meldpunt.reports.fetcher import FetchPolicy, NameTable
from meldpunt.reports.smtp import Relay
from meldpunt.sim.internet import Internet, SimEvent
from meldpunt.sim.loop import LoopThread
from meldpunt.sim.mailsink import MailSink
from meldpunt.sim.tables import POLICE_EMAIL, TableFiles, load_tables, write_tables

__all__ = ["LOOPBACK", "Simulation"]

LOOPBACK = "127.0.0.0/8"


class Simulation:
    def __init__(
        self,
        folder: Path,
        *,
        seed: int = 0,
        hosters: int = 20,
        port: int = 0,
        smtp_port: int = 0,
        home: str = "NL",
        abroad: float = 0.1,
        **internet_options: Any,
    ) -> None:
        self.folder = Path(folder)
        self.home = home
        self.loop = LoopThread()
        self.internet = Internet(
            self.folder,
            hosters=hosters,  # unless internet_options give the behaviours one by one
            seed=seed,
            port=port,
            home=home,
            abroad=abroad,
            loop=self.loop,
            **internet_options,
        )
        self.sink = MailSink(self.internet, port=smtp_port, police=(POLICE_EMAIL,))
        self.files: TableFiles | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> Simulation:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.loop.start()
        try:
            self.internet.start()
            self.sink.start()
        except BaseException:
            self.stop()
            raise
        self.files = write_tables(self.internet, self.folder, home=self.home)
        self._write_hints()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(30)
            self._ticker = None
        self.sink.stop()
        self.internet.stop()
        self.loop.stop()

    def __enter__(self) -> Simulation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what meldpunt needs to reach it ---------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """Settings (``config.Settings`` field names) that point meldpunt at the simulation."""
        return {
            "resolver_hosts_file": str(self.internet.names_path),
            "fetch_allow_networks": [LOOPBACK],
            "smtp_host": self.sink.host,
            "smtp_port": self.sink.port,
            "smtp_starttls": False,
        }

    def environment(self) -> dict[str, str]:
        """``settings()`` as ``MELDPUNT_*`` environment variables."""
        out = {}
        for name, value in self.settings().items():
            text = (
                json.dumps(value)
                if isinstance(value, list)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            out[f"MELDPUNT_{name.upper()}"] = text
        return out

    def policy(self, **options: Any) -> FetchPolicy:
        return FetchPolicy(
            allow_networks=(ipaddress.ip_network(LOOPBACK),),
            names=NameTable(self.internet.names_path),
            **options,
        )

    def relay(self) -> Relay:
        return Relay(self.sink.host, self.sink.port, timeout_seconds=30.0)

    def load_tables(self, session: Session) -> tuple[int, int]:
        """The networks and contacts into meldpunt's database (the caller commits)."""
        if self.files is None:
            raise RuntimeError("the simulation writes its tables when it starts")
        return load_tables(session, self.files)

    def _write_hints(self) -> None:
        lines = ["# meldpunt settings for the simulation in this folder", ""]
        for name, value in self.settings().items():
            lines.append(f"{name} = {json.dumps(value)}")
        (self.folder / "meldpunt-sim.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        env = [f"{name}='{value}'" for name, value in self.environment().items()]
        (self.folder / "meldpunt-sim.env").write_text("\n".join(env) + "\n", encoding="utf-8")

    # --- time ------------------------------------------------------------------------------------

    def tick(self) -> list[SimEvent]:
        """Let the hosters do what is due by ``clock.now()``."""
        return self.internet.run_due()

    def run_in_background(self, every_seconds: float = 0.5) -> None:
        """Tick every ``every_seconds`` of real time in a thread until ``stop()`` (for a
        simulation beside a running service, on the system clock or a ``ScaledClock``)."""
        if self._ticker is not None:
            return

        def run() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    self.tick()
                except Exception:  # keep ticking: one bad step must not end the simulation
                    import logging

                    logging.getLogger(__name__).exception("simulation tick failed")

        self._ticker = threading.Thread(target=run, name="meldpunt-sim-ticker", daemon=True)
        self._ticker.start()
