"""Benign demo data for `make run`: a set made from the bundled sample photos, a platform, a
hotline and their keys; and the simulated internet beside the service (``start_simulation``).

Running it again reuses all of it: the set's items are the same items (adding them again
changes nothing), and the two keys are the ones made the first time. Keys are stored hashed, so
their plaintext is kept in ``<data_dir>/demo-keys.json`` (readable by its owner only) to be
printed again; a key that no longer works there (revoked, the database replaced) is replaced.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from meldpunt import checks, clock, registry
from meldpunt.config import Settings, get_settings, reset_settings
from meldpunt.signals import FileSignals
from meldpunt.sim.live import LiveSimulation
from meldpunt.store import get_engine, init_db, make_sessionmaker, session_scope

#: Simulated seconds per real second in the demo: a day in ten minutes.
DEMO_SPEED = 144.0
DEMO_SET = "demo-benign-samples"
DEMO_ORG = "demo-platform"
DEMO_HOTLINE = "demo-hotline"
KEYS_FILE = "demo-keys.json"


@dataclass(frozen=True)
class Demo:
    set_name: str
    org_name: str
    key: str
    admin_key: str
    example_pdq: str
    #: Whether the keys were made by this run (False: the ones from an earlier run).
    new_keys: bool


def load_demo(samples: Sequence[FileSignals], data_dir: Path) -> Demo:
    """Create (or reuse) the demo set, organisations and keys."""
    init_db()
    keys_file = data_dir / KEYS_FILE
    kept = _read_keys(keys_file)
    with session_scope() as session:
        names = {s.name for s in registry.list_sets(session)}
        if DEMO_SET not in names:
            registry.create_set(
                session,
                DEMO_SET,
                description="Benign sample photos (demo)",
                default_category="csam_baseline",
                actor="demo",
            )
        for sample in samples:
            if sample.pdq is None or sample.digests is None:
                continue
            registry.add_item(
                session,
                DEMO_SET,
                [("pdq", sample.pdq.hash), ("md5", sample.digests.md5)],
                reference=sample.path.rsplit("/", 1)[-1],
                actor="demo",
            )
        orgs = {o.name for o in checks.list_orgs(session)}
        if DEMO_ORG not in orgs:
            checks.create_org(session, DEMO_ORG, "platform", actor="demo")
        if DEMO_HOTLINE not in orgs:
            checks.create_org(session, DEMO_HOTLINE, "hotline", actor="demo")
        key = _usable(session, kept.get("platform"), DEMO_ORG, "platform")
        admin = _usable(session, kept.get("admin"), DEMO_HOTLINE, "admin")
        new_keys = key is None or admin is None
        if key is None:
            _, key = checks.create_key(session, DEMO_ORG, "platform", label="demo", actor="demo")
        if admin is None:
            _, admin = checks.create_key(session, DEMO_HOTLINE, "admin", label="demo", actor="demo")
    if new_keys:
        _write_keys(keys_file, {"platform": key, "admin": admin})
    first = next(s for s in samples if s.pdq is not None)
    assert first.pdq is not None
    return Demo(DEMO_SET, DEMO_ORG, key, admin, first.pdq.hash, new_keys)


def _usable(session: Session, key: str | None, org: str, role: str) -> str | None:
    """``key`` when it is still a working key of ``org`` with ``role``, else None."""
    if not key:
        return None
    for info in checks.list_keys(session, org):
        if key.startswith(info.prefix) and info.role == role and info.active:
            return key
    return None


def _read_keys(path: Path) -> dict[str, str]:
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(kept, dict):
        return {}
    return {role: key for role, key in kept.items() if isinstance(key, str)}


def _write_keys(path: Path, keys: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    # Created readable by the owner only, before the keys are written into it.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(keys, handle, indent=2)
        handle.write("\n")
    os.chmod(temporary, 0o600)  # an older file of that name may have had another mode
    os.replace(temporary, path)


@dataclass
class DemoSimulation:
    """The simulation running beside the demo's service, on a ``ScaledClock``."""

    live: LiveSimulation
    speed: float
    settings: Settings

    def stop(self) -> None:
        self.live.stop()


def start_simulation(
    data_dir: Path, *, speed: float = DEMO_SPEED, hosters: int = 12, urls: int = 6,
    report_hours: float = 3.0,
) -> DemoSimulation:  # fmt: skip
    """Start the simulated internet for the demo and point this process's meldpunt at it.

    The process's clock becomes a ``ScaledClock`` at ``speed`` (monotonic time stays real, so
    that a signed-in page is not signed out after a few real minutes), the simulation's
    settings (its name table, the loopback network for the fetcher, its mail sink as relay)
    go into this process's environment, so the service started next reads them, and reports
    keep arriving: ``urls`` over every ``report_hours`` simulated hours, most of them of
    pictures the registry knows, which the service's worker fetches, recognises, notices and
    re-checks until the hosters take them down. New material waits in the analysts' queue."""
    clock.set_clock(clock.ScaledClock(speed, scale_monotonic=False))
    init_db()
    live = LiveSimulation(
        data_dir / "sim" / "demo",
        make_sessionmaker(get_engine()),
        get_settings(),
        hosters=hosters,
        urls=urls,
        report_hours=report_hours,
        continuous=True,
        authority=True,
    )
    live.start()
    os.environ.update(live.sim.environment())
    # the demo's hosters are simulated: the public monitor names every one of them
    os.environ.setdefault("MELDPUNT_MONITOR_NAME_MIN_NOTIFIED", "0")
    reset_settings()
    return DemoSimulation(live, speed, get_settings())
