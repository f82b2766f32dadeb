"""Hotline benchmark: 100,000 reported URLs over 1,000 simulated hosters, on SQLite or PostgreSQL.

The simulated internet (``meldpunt.sim``: hosters on 127.0.x.y serving benign pictures, their
name table, IP-to-ASN table and abuse directory, and the SMTP sink that hands each notice to its
hoster) runs in a process of its own, as hosters are not the hotline's machine; the hotline's
work runs in this process, on meldpunt's own code. Phases, each beside a peer on the same data:

1. intake: ``POST /v1/reports`` (a ``flagger`` key, 1,000 URLs a call) to the service in its own
   process on a loopback port; peer: each URL its own ``items.open_item`` + ``items.note`` +
   commit, as a simple tool would do, on the first ``--peer-urls`` of the same URLs;
2. report to notice, on a controlled clock: the URLs arrive in reports spread over
   ``--arrival-minutes`` of simulated time; the worker (fetch+grade, attribution, notices)
   runs every ``--tick`` simulated seconds, as a polling worker does; from each item's timeline,
   received -> notice for known material; each step's real throughput;
3. re-checks: the clock moved until every noticed or forwarded item is due, then
   ``takedown.lifecycle.run_lifecycle`` drained; peer: a sequential re-checker (one fetch, then
   its own transaction) on ``--peer-checks`` of the same items;
4. none lost: every URL's state at the end, final, scheduled or waiting for a person.

    .venv/bin/python bench/takedown.py                          # 100,000 URLs, SQLite
    .venv/bin/python bench/takedown.py --postgresql             # the same on PostgreSQL
    .venv/bin/python bench/takedown.py --urls 10000 --hosters 200   # quick
"""

from __future__ import annotations

import os

# As the command line does (meldpunt/cli/__init__.py): one BLAS thread per process. Hashing a
# small picture is a few small matrix products; on a busy 2-core machine BLAS's own threads made
# each of them up to 20 times slower.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, deque  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager, suppress  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMA = "meldpunt_bench_takedown"
START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday: no contact holds notices
GOALS = {"rechecks_per_s": 200.0, "notice_p95_minutes": 5.0}
SERVE = """
import sys, uvicorn
from meldpunt.api import ServiceSettings, create_app
uvicorn.run(create_app(ServiceSettings.from_settings(run_worker=False)), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning")
"""


def now_s() -> float:
    return time.perf_counter()


def percentiles(values: list[float], *qs: float) -> list[float]:
    import numpy as np

    if not values:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(np.asarray(values, dtype=float), qs)]


# --- databases ------------------------------------------------------------------------------------


class Databases:
    """Fresh databases by name: SQLite files in the work folder, or schemas of their own
    (``meldpunt_bench_takedown*``) on a PostgreSQL server, dropped by ``drop()``."""

    def __init__(self, workdir: Path, server: str | None) -> None:
        self.workdir, self.server = workdir, server
        self.schemas: list[str] = []

    def fresh(self, name: str) -> str:
        from meldpunt.store import init_db

        if not self.server:
            url = f"sqlite:///{self.workdir / f'{name}.db'}"
        else:
            schema = f"{SCHEMA}_{name}"
            assert schema != "public"
            self._admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE", f"CREATE SCHEMA {schema}")
            self.schemas.append(schema)
            joiner = "&" if "?" in self.server else "?"
            url = f"{self.server}{joiner}options=-csearch_path%3D{schema}"
        init_db(url)
        return url

    def _admin(self, *statements: str) -> None:
        from sqlalchemy import create_engine, text

        assert self.server is not None
        engine = create_engine(self.server)
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
        engine.dispose()

    def drop(self) -> None:
        if self.server and self.schemas:
            from meldpunt.store import dispose_engines

            dispose_engines()
            self._admin(*(f"DROP SCHEMA IF EXISTS {s} CASCADE" for s in self.schemas))


# --- the simulated internet, in a process of its own -------------------------------------------


def sim_process(connection: Any, folder: str, options: dict[str, Any]) -> None:
    """Start the hosters and the mail sink, plan the URLs and the reports, send both back, then
    answer ``stats`` until ``stop``. The hosters never act by themselves here (nothing ticks
    the simulation): every URL stays online, so that each re-check fetches and compares."""
    from meldpunt import clock
    from meldpunt.sim.plan import make_plan
    from meldpunt.sim.simulation import Simulation

    with clock.use_clock(clock.FrozenClock(START)):
        sim = Simulation(
            Path(folder), seed=options["seed"], hosters=options["hosters"], abroad=options["abroad"]
        )
        sim.start()
        try:
            plan = make_plan(
                sim.internet,
                seed=options["seed"],
                urls=options["urls"],
                start=START,
                tag="b",
                known_share=options["known_share"],
                page_share=0.0,
                report_hours=options["arrival_minutes"] / 60,
                per_report=options["per_report"],
                pictures=options["pictures"],
            )
            assert sim.files is not None
            connection.send(
                {
                    "names": str(sim.internet.names_path),
                    "smtp": (sim.sink.host, sim.sink.port),
                    "tables": (str(sim.files.asn), str(sim.files.directory)),
                    "plan": plan,
                }
            )
            while (message := connection.recv()) != "stop":
                if isinstance(message, tuple) and message[0] == "latency":
                    sim.internet.latency_ms = message[1]
                    connection.send("ok")
                elif message == "stats":
                    connection.send(
                        {
                            "mails": sim.sink.by_kind(),
                            "duplicate_mails": sim.sink.duplicates,
                            "unknown_recipients": sim.sink.unknown,
                            "answers": {str(k): v for k, v in sim.internet.requests.items()},
                        }
                    )
        finally:
            sim.stop()


class SimProcess:
    def __init__(self, folder: Path, options: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(
            target=sim_process, args=(theirs, str(folder), options), daemon=True
        )
        self.process.start()
        if not self.connection.poll(600):
            raise RuntimeError("the simulation did not start")
        self.info: dict[str, Any] = self.connection.recv()

    def stats(self) -> dict[str, Any]:
        self.connection.send("stats")
        found: dict[str, Any] = self.connection.recv()
        return found

    def latency(self, ms: float) -> None:
        """Every hoster's answers wait ``ms`` milliseconds from now on."""
        self.connection.send(("latency", ms))
        assert self.connection.recv() == "ok"

    def stop(self) -> None:
        if self.process.is_alive():
            with suppress(OSError):
                self.connection.send("stop")
            self.process.join(30)
        if self.process.is_alive():
            self.process.kill()


# --- progress ---------------------------------------------------------------------------------


class Display:
    """A rich progress bar per phase on a terminal; plain lines otherwise."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(soft_wrap=True)
        self.progress = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        task = self.progress.add_task(description, total=total, note="")

        def update(completed: int, note: str = "") -> None:
            self.progress.update(task, completed=completed, note=note)

        try:
            yield update
        finally:
            self.progress.stop_task(task)

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)


# --- phase 1: intake --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def service_env(workdir: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELDPUNT_")}
    env.update(
        {
            "MELDPUNT_CONFIG": str(workdir / "meldpunt.toml"),
            "MELDPUNT_DATA_DIR": str(workdir / "var-intake"),
            "MELDPUNT_DATABASE_URL": url,
            "MELDPUNT_RATE_PER_SECOND": "0",
            "MELDPUNT_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(HERE.parent / "src"),
        }
    )
    return env


def bench_intake(
    dbs: Databases, workdir: Path, urls: list[str], per_call: int, peer_urls: int, show: Display
) -> dict[str, Any]:
    import httpx

    from meldpunt import checks
    from meldpunt.store import make_engine, make_sessionmaker

    url = dbs.fresh("intake")
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        checks.create_org(session, "bench-flagger", "flagger")
        _, key = checks.create_key(session, "bench-flagger", "flagger")
        session.commit()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)], env=service_env(workdir, url)
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = now_s() + 300
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if now_s() > deadline or server.poll() is not None:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.3)
        calls = [urls[i : i + per_call] for i in range(0, len(urls), per_call)]
        latencies: list[float] = []
        taken = 0
        headers = {"Authorization": f"Bearer {key}"}
        with (
            httpx.Client(base_url=base, headers=headers, timeout=300) as client,
            show.task("1 intake: POST /v1/reports", len(urls)) as update,
        ):
            begun = now_s()
            for number, chunk in enumerate(calls):
                body = {"reference": f"bench-{number}", "kind": "csam",
                        "note": "benchmark: benign pictures", "urls": chunk}  # fmt: skip
                sent = now_s()
                answer = client.post("/v1/reports", json=body)
                latencies.append(now_s() - sent)
                if answer.status_code != 201:
                    raise RuntimeError(f"call {number}: {answer.status_code} {answer.text[:300]}")
                got = answer.json()["urls"]
                if len(got) != len(chunk) or any(u["state"] != "received" for u in got):
                    raise RuntimeError(f"call {number}: not every URL was taken as new")
                taken += len(got)
                update(taken, f"{taken / (now_s() - begun):,.0f} URLs/s")
            seconds = now_s() - begun
    finally:
        server.terminate()
        server.wait(30)
    from sqlalchemy import func, select

    from meldpunt.store.models import UrlItem

    with make_sessionmaker(engine)() as session:
        stored = session.scalar(select(func.count()).select_from(UrlItem)) or 0
    engine.dispose()
    p50, p99 = percentiles(latencies, 50, 99)
    ours = {"urls": taken, "calls": len(calls), "urls_per_call": per_call, "seconds": seconds,
            "urls_per_s": taken / seconds, "calls_per_s": len(calls) / seconds,
            "p50_ms": p50 * 1000, "p99_ms": p99 * 1000, "items_stored": stored}  # fmt: skip
    peer = naive_intake(dbs, urls[:peer_urls], show)
    return {**ours, "peer": peer, "ratio": ours["urls_per_s"] / peer["urls_per_s"]}


def naive_intake(dbs: Databases, urls: list[str], show: Display) -> dict[str, Any]:
    """The peer: each URL its own item, timeline line and commit, in this process (no HTTP)."""
    from meldpunt.reports import items
    from meldpunt.reports.vocabulary import Event
    from meldpunt.store import make_engine, make_sessionmaker

    url = dbs.fresh("peer")
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    actor = "flagger:bench-flagger"
    with show.task("1 intake peer: one URL a commit", len(urls)) as update:
        begun = now_s()
        for number, given in enumerate(urls, 1):
            with sessions() as session:
                item, created = items.open_item(
                    session, items.normalise_url(given), kind="csam", actor=actor
                )
                event = Event.received if created else Event.linked
                items.note(session, [items.Note(item.id, event, actor, {"source": "flagger"})])
                session.commit()
            if number % 500 == 0:
                update(number, f"{number / (now_s() - begun):,.0f} URLs/s")
        seconds = now_s() - begun
    engine.dispose()
    return {"urls": len(urls), "seconds": seconds, "urls_per_s": len(urls) / seconds}


# --- phase 2: report to notice on a controlled clock ------------------------------------------


def _next_due(session: Any, now: datetime) -> datetime | None:
    """The next moment the flow has work: an item's due time (fetch, attribution, grouping) or
    an open notice's."""
    from sqlalchemy import func, select

    from meldpunt.reports.vocabulary import ItemState
    from meldpunt.store.models import Notice, UrlItem

    flow = (ItemState.received, ItemState.ready, ItemState.police)
    found = [
        session.scalar(
            select(func.min(UrlItem.due_at)).where(UrlItem.state.in_(flow), UrlItem.due_at > now)
        ),
        session.scalar(
            select(func.min(Notice.due_at)).where(Notice.status == "open", Notice.due_at > now)
        ),
    ]
    from meldpunt import clock

    moments = [clock.as_utc(m) for m in found if m is not None]
    return min(moments) if moments else None


def bench_flow(
    context: Any, frozen: Any, plan: Any, args: argparse.Namespace, show: Display
) -> dict[str, Any]:
    from meldpunt.reports.grading import run_fetches
    from meldpunt.sim.scenario import submit_planned
    from meldpunt.takedown.attribution import run_attributions
    from meldpunt.takedown.notices import run_notices

    steps = [("fetch+grade", run_fetches), ("attribution", run_attributions),
             ("notices", run_notices)]  # fmt: skip
    spent = dict.fromkeys([name for name, _ in steps], 0.0)
    done = dict.fromkeys(spent, 0)
    pending = deque(sorted(plan.reports, key=lambda r: r.at))
    tick = timedelta(seconds=args.tick)
    now = START
    arrived = ticks = 0
    intake_seconds = 0.0
    busiest = 0.0  # the longest the worker took over one tick
    begun = now_s()
    with show.task("2 report to notice (simulated)", len(plan.urls)) as update:
        while True:
            started = now_s()
            while pending and pending[0].at <= now:
                report = pending.popleft()
                frozen.set(max(report.at, frozen.now()))  # received at its own moment
                submit_planned(context.sessions, report, context.settings)
                arrived += len(report.urls)
            frozen.set(now)
            intake_seconds += now_s() - started
            worked = now_s()
            while True:  # each step until it has nothing due, rounds until a round does nothing
                did = 0
                for name, step in steps:
                    while True:
                        started = now_s()
                        count = step(context, args.batch)
                        spent[name] += now_s() - started
                        done[name] += count
                        did += count
                        if not count:
                            break
                if not did:
                    break
            busiest = max(busiest, now_s() - worked)
            ticks += 1
            minutes = (now - START).total_seconds() / 60
            update(arrived, f"t+{minutes:,.0f} min simulated")
            with context.sessions() as session:
                later = _next_due(session, now)
            if pending:
                later = pending[0].at if later is None else min(later, pending[0].at)
            if later is None or later - START > timedelta(days=7):
                break
            grid = START + tick * math.ceil((later - START) / tick)
            now = max(grid, now + tick)
    seconds = now_s() - begun
    from sqlalchemy import func, select

    from meldpunt.store.models import Notice, UrlItem

    with context.sessions() as session:  # what the notices step did, in items and in notices
        done["notices"] = session.scalar(
            select(func.count()).select_from(UrlItem).where(UrlItem.first_notice_at.is_not(None))
        )
        sent = session.scalar(
            select(func.count()).select_from(Notice).where(Notice.status == "sent")
        )
    return {
        "arrived": arrived,
        "notices_sent": sent,
        "notices_per_s": sent / spent["notices"] if spent["notices"] else None,
        "reports": len(plan.reports),
        "arrival_minutes": args.arrival_minutes,
        "arrivals_per_s": arrived / (args.arrival_minutes * 60),
        "tick_s": args.tick,
        "ticks": ticks,
        "simulated_minutes": (now - START).total_seconds() / 60,
        "seconds": seconds,
        "intake_seconds": intake_seconds,
        "busiest_tick_s": busiest,
        # The frozen clock stands still while the worker works: what it would cost in real time
        "worker_seconds": sum(spent.values()),
        "end_to_end_per_s": arrived / sum(spent.values()),
        "worker_busy_share": sum(spent.values()) / (args.arrival_minutes * 60),
        "steps": {
            name: {
                "seconds": spent[name],
                "done": done[name],
                "per_s": done[name] / spent[name] if spent[name] else None,
            }
            for name in spent
        },  # fmt: skip
    }


def latencies(sessions: Any, plan: Any) -> dict[str, Any]:
    """Received -> first notice of each known URL, from the timelines (simulated minutes)."""
    from sqlalchemy import func, select

    from meldpunt import clock
    from meldpunt.reports.items import normalise_url, url_key
    from meldpunt.store.models import ItemEvent, Notice, UrlItem

    known = {url_key(normalise_url(u)): p.known for u, p in plan.urls.items()}
    with sessions() as session:
        keys = {i: k for i, k in session.execute(select(UrlItem.id, UrlItem.url_key))}
        first: dict[tuple[int, str], datetime] = {}
        for item_id, event, at in session.execute(
            select(ItemEvent.item_id, ItemEvent.event, func.min(ItemEvent.at))
            .where(ItemEvent.event.in_(("received", "notice")))
            .group_by(ItemEvent.item_id, ItemEvent.event)
        ):
            first[(item_id, event)] = clock.as_utc(at)
        notices = session.scalar(
            select(func.count()).select_from(Notice).where(Notice.status == "sent")
        )
    minutes: list[float] = []
    known_items = not_noticed = 0
    for item_id, key in keys.items():
        if not known.get(key):
            continue
        known_items += 1
        received, noticed = first.get((item_id, "received")), first.get((item_id, "notice"))
        if received is None or noticed is None:
            not_noticed += 1
            continue
        minutes.append((noticed - received).total_seconds() / 60)
    p50, p95, p99 = percentiles(minutes, 50, 95, 99)
    return {"known": known_items, "noticed": len(minutes), "not_noticed": not_noticed,
            "p50_minutes": p50, "p95_minutes": p95, "p99_minutes": p99,
            "max_minutes": max(minutes, default=float("nan")),
            "curve_minutes": percentiles(minutes, *range(101)),  # the 0th ... 100th percentile
            "notices_sent": notices}  # fmt: skip


# --- phase 3: re-checks -----------------------------------------------------------------------


def all_due(context: Any, frozen: Any) -> int:
    """Move the clock until every noticed or forwarded item's re-check is due; how many are."""
    from sqlalchemy import func, select

    from meldpunt import clock
    from meldpunt.store.models import UrlItem
    from meldpunt.takedown.lifecycle import RECHECKED_STATES

    watched = UrlItem.state.in_(RECHECKED_STATES)
    with context.sessions() as session:
        latest = session.scalar(select(func.max(UrlItem.next_check_at)).where(watched))
        if latest is None:
            raise RuntimeError("nothing to re-check: no item was noticed or forwarded")
        moment = clock.as_utc(latest) + timedelta(seconds=1)
        frozen.set(moment)
        due = session.scalar(
            select(func.count())
            .select_from(UrlItem)
            .where(watched, UrlItem.next_check_at <= moment)
        )
    return due or 0


def bench_rechecks(
    context: Any,
    frozen: Any,
    args: argparse.Namespace,
    show: Display,
    *,
    limit: int | None = None,
    peer_checks: int,
    label: str = "",
) -> dict[str, Any]:
    """Drain ``run_lifecycle`` (or stop after ``limit`` checks), then the peer on
    ``peer_checks`` of the same items."""
    from sqlalchemy import func, select

    from meldpunt.store.models import UrlItem
    from meldpunt.takedown.lifecycle import RECHECKED_STATES, run_lifecycle

    due = all_due(context, frozen)
    moment = frozen.now()
    wanted = due if limit is None else min(due, limit)
    checked = 0
    with show.task(f"3 re-checks{label}: run_lifecycle", wanted) as update:
        begun = now_s()
        while checked < wanted and (count := run_lifecycle(context, args.batch)):
            checked += count
            update(checked, f"{checked / (now_s() - begun):,.0f} checks/s")
        seconds = now_s() - begun
    with context.sessions() as session:
        online = session.scalar(
            select(func.count()).select_from(UrlItem).where(UrlItem.last_seen_at == moment)
        )
        missed = session.scalar(
            select(func.count()).select_from(UrlItem).where(UrlItem.last_miss_at == moment)
        )
        ids = list(
            session.scalars(
                select(UrlItem.id)
                .where(UrlItem.state.in_(RECHECKED_STATES))
                .order_by(UrlItem.id)
                .limit(peer_checks)
            )
        )
    peer = sequential_rechecks(context, ids, show, label)
    rate = checked / seconds
    return {"due": due, "checked": checked, "online": online, "missed": missed,
            "seconds": seconds, "checks_per_s": rate, "goal_per_s": GOALS["rechecks_per_s"],
            "every_online_url_hourly_up_to": int(rate * 3600), "peer": peer,
            "ratio": rate / peer["checks_per_s"]}  # fmt: skip


def sequential_rechecks(
    context: Any, ids: list[int], show: Display, label: str = ""
) -> dict[str, Any]:
    """The peer: one item at a time, one fetch (the same fetch and comparison, ``judge``),
    then a transaction of its own that records what it found (as ``checks.rechecks`` does for
    hits)."""
    from meldpunt import clock
    from meldpunt.reports import items
    from meldpunt.reports.vocabulary import Event
    from meldpunt.store.models import UrlItem
    from meldpunt.takedown.lifecycle import Target, judge

    policy, settings = context.fetch_policy, context.settings
    verdicts: Counter[str] = Counter()
    with show.task(f"3 re-checks{label} peer: one at a time", len(ids)) as update:
        begun = now_s()
        for number, item_id in enumerate(ids, 1):
            with context.sessions() as session:
                row = session.get(UrlItem, item_id)
                assert row is not None
                target = Target(row.id, row.url, row.host, row.media, row.sha256, row.pdq)
            found = judge(target, policy)
            verdicts[found.verdict] += 1
            with context.sessions() as session, session.begin():
                items.begin_write(session)
                row = items.get_item(session, item_id, lock=True)
                now = clock.now()
                if found.verdict == "online":
                    row.last_seen_at, row.misses = now, 0
                    row.next_check_at = now + timedelta(minutes=settings.takedown_check_minutes)
                elif found.verdict == "miss":
                    row.misses, row.last_miss_at = (row.misses or 0) + 1, now
                    row.next_check_at = now + timedelta(
                        minutes=settings.takedown_miss_spacing_minutes
                    )
                    note = items.Note(row.id, Event.checked, "worker", {"why": found.detail})
                    items.note(session, [note])
                else:
                    row.last_error = found.detail[:2000]
                    row.next_check_at = now + timedelta(minutes=5)
            if number % 50 == 0:
                update(number, f"{number / (now_s() - begun):,.0f} checks/s")
        seconds = now_s() - begun
    return {"checked": len(ids), "seconds": seconds, "checks_per_s": len(ids) / seconds,
            "verdicts": dict(verdicts)}  # fmt: skip


# --- phase 4: none lost -----------------------------------------------------------------------


def final_states(sessions: Any, plan: Any) -> dict[str, Any]:
    """Every planned URL's item and state: final, scheduled (a due time, or carried by an open
    notice) or waiting for a person; anything else is stuck, a URL without an item is lost."""
    from sqlalchemy import func, select

    from meldpunt.reports.items import normalise_url, url_key
    from meldpunt.reports.vocabulary import FINAL_STATES
    from meldpunt.store.models import Notice, NoticeItem, UrlItem

    person = {"queued", "review", "contact_needed", "police"}
    wanted = {url_key(normalise_url(u)) for u in plan.urls}
    states: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    with sessions() as session:
        carried = set(
            session.scalars(
                select(NoticeItem.item_id)
                .join(Notice, Notice.id == NoticeItem.notice_id)
                .where(Notice.status == "open")
            )
        )
        rows = session.execute(
            select(UrlItem.id, UrlItem.url_key, UrlItem.state, UrlItem.due_at,
                   UrlItem.next_check_at, UrlItem.renotice_at, UrlItem.escalation_at)
        )  # fmt: skip
        for item_id, key, state, *due in rows:
            seen[key] += 1
            states[state] += 1
            if state in FINAL_STATES:
                kinds["final"] += 1
            elif any(d is not None for d in due) or item_id in carried:
                kinds["scheduled"] += 1
            elif state in person:
                kinds["waiting for a person"] += 1
            else:
                kinds["stuck"] += 1
        open_notices = session.scalar(
            select(func.count()).select_from(Notice).where(Notice.status == "open")
        )
    return {
        "urls": len(wanted),
        "items": sum(states.values()),
        "lost": len(wanted - set(seen)),
        "twice": sum(1 for k in wanted if seen[k] > 1),
        "by_state": dict(sorted(states.items())),
        "by_kind": dict(sorted(kinds.items())),
        "open_notices": open_notices,
    }


# --- the whole run ----------------------------------------------------------------------------


def seed_known(sessions: Any, seed: int, pictures: list[int]) -> None:
    """The known pictures' hashes into the registry, as a scenario seeds it."""
    from types import SimpleNamespace

    from meldpunt.sim.pictures import PictureStore
    from meldpunt.sim.scenario import seed_registry

    shim = SimpleNamespace(internet=SimpleNamespace(pictures=PictureStore(seed)))
    with sessions() as session, session.begin():
        seed_registry(session, shim, pictures)  # type: ignore[arg-type]


def run(args: argparse.Namespace, workdir: Path, show: Display) -> dict[str, Any]:
    import ipaddress

    from meldpunt import clock
    from meldpunt.config import get_settings, reset_settings
    from meldpunt.reports.context import HotlineContext
    from meldpunt.reports.fetcher import FetchPolicy, NameTable
    from meldpunt.reports.smtp import Relay
    from meldpunt.sim.tables import TableFiles, load_tables
    from meldpunt.store import make_engine, make_sessionmaker

    for name in [n for n in os.environ if n.startswith("MELDPUNT_")]:
        del os.environ[name]
    (workdir / "meldpunt.toml").write_text("")
    os.environ["MELDPUNT_CONFIG"] = str(workdir / "meldpunt.toml")
    os.environ["MELDPUNT_DATA_DIR"] = str(workdir / "var")
    reset_settings()
    settings = get_settings()
    results: dict[str, Any] = {
        "database": "postgresql" if args.postgresql else "sqlite",
        "urls": args.urls,
        "hosters": args.hosters,
        "batch": args.batch,
        "known_share": args.known_share,
        "pictures": args.pictures,
        "cores": os.cpu_count(),
        "load_average_start": os.getloadavg()[0],
    }
    dbs = Databases(workdir, args.postgresql)
    begun = now_s()
    show.say(f"starting {args.hosters:,} simulated hosters and planning {args.urls:,} URLs ...")
    options = {"seed": args.seed, "hosters": args.hosters, "urls": args.urls,
               "abroad": args.abroad, "known_share": args.known_share,
               "arrival_minutes": args.arrival_minutes, "per_report": args.per_report,
               "pictures": args.pictures}  # fmt: skip
    sim = SimProcess(workdir / "sim", options)
    try:
        plan = sim.info["plan"]
        urls = [p.url for p in plan.reported()]
        results["setup_seconds"] = now_s() - begun
        show.say(f"ready in {results['setup_seconds']:.1f} s")

        results["intake"] = intake = bench_intake(
            dbs, workdir, urls, args.per_call, args.peer_urls, show
        )
        show.say(
            f"intake: {intake['urls_per_s']:,.0f} URLs/s ({intake['calls_per_s']:.2f} calls/s of "
            f"{args.per_call:,}; p50 {intake['p50_ms']:,.0f} ms, p99 {intake['p99_ms']:,.0f} ms);"
            f" peer {intake['peer']['urls_per_s']:,.0f} URLs/s: {intake['ratio']:.1f}x"
        )

        url = dbs.fresh("main")
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with sessions() as session, session.begin():
            load_tables(session, TableFiles(*(Path(p) for p in sim.info["tables"])))
        seed_known(sessions, args.seed, plan.known_pictures)
        policy = FetchPolicy(
            allow_networks=(ipaddress.ip_network("127.0.0.0/8"),),
            names=NameTable(sim.info["names"]),
        )
        relay = Relay(*sim.info["smtp"], timeout_seconds=30.0)
        context = HotlineContext(sessions, settings=settings, policy=policy, relay=relay)
        context.matcher()  # the registry's index, built before the clock starts
        frozen = clock.FrozenClock(START)
        with clock.use_clock(frozen):
            results["flow"] = flow = bench_flow(context, frozen, plan, args, show)
            results["latency"] = lat = latencies(sessions, plan)
            steps = ", ".join(
                f"{name} {s['per_s'] or 0:,.0f}/s" for name, s in flow["steps"].items()
            )
            show.say(
                f"report to notice (known): p50 {lat['p50_minutes']:.2f}, p95 "
                f"{lat['p95_minutes']:.2f}, max {lat['max_minutes']:.2f} simulated minutes over "
                f"{lat['noticed']:,} items ({lat['notices_sent']:,} notices); worker: {steps}; "
                f"{flow['end_to_end_per_s']:,.0f} URLs/s end to end, busy "
                f"{flow['worker_busy_share']:.0%} of the arrival time"
            )
            results["rechecks"] = rc = bench_rechecks(
                context, frozen, args, show, peer_checks=args.peer_checks
            )
            show.say(
                f"re-checks: {rc['checks_per_s']:,.0f}/s over {rc['checked']:,} URLs "
                f"({rc['online']:,} online); peer {rc['peer']['checks_per_s']:,.0f}/s: "
                f"{rc['ratio']:.1f}x"
            )
            if args.latency_ms > 0:  # the same again, an hour on, each answer held back
                sim.latency(args.latency_ms)
                label = f" at {args.latency_ms:g} ms"
                results["rechecks_latency"] = rl = bench_rechecks(
                    context, frozen, args, show, limit=args.latency_checks,
                    peer_checks=args.latency_peer, label=label,
                )  # fmt: skip
                rl["latency_ms"] = args.latency_ms
                sim.latency(0)
                show.say(
                    f"re-checks{label}: {rl['checks_per_s']:,.0f}/s over {rl['checked']:,} URLs"
                    f" ({rl['online']:,} online); peer {rl['peer']['checks_per_s']:,.1f}/s: "
                    f"{rl['ratio']:.1f}x"
                )
            results["states"] = states = final_states(sessions, plan)
        results["simulation"] = sim.stats()
        show.say(
            f"at the end: {states['by_kind']}, lost {states['lost']}, twice {states['twice']}; "
            f"by state {states['by_state']}; mails {results['simulation']['mails']}, "
            f"duplicates {results['simulation']['duplicate_mails']}"
        )
        engine.dispose()
    finally:
        sim.stop()
        dbs.drop()
    results["seconds"] = now_s() - begun
    results["load_average_end"] = os.getloadavg()[0]
    lat, rc, states = results["latency"], results["rechecks"], results["states"]
    results["goals"] = {
        "rechecks_per_s": rc["checks_per_s"] >= GOALS["rechecks_per_s"],
        "notice_p95_minutes": lat["p95_minutes"] <= GOALS["notice_p95_minutes"],
        "none_lost": states["lost"] == 0
        and states["by_kind"].get("stuck", 0) == 0
        and states["twice"] == 0,
    }
    return results


def chart(results: dict[str, Any], path: Path) -> None:
    """Intake and re-checks beside their peers, received -> notice of known material, and each
    worker step's real throughput."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    intake, rc, lat, flow = (results[k] for k in ("intake", "rechecks", "latency", "flow"))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    left, right = axes[0]
    pair = ["#999", "#3a7"]
    left.barh(["peer: one URL a commit", "meldpunt: POST /v1/reports"],
              [intake["peer"]["urls_per_s"], intake["urls_per_s"]], color=pair)  # fmt: skip
    for y, value in enumerate([intake["peer"]["urls_per_s"], intake["urls_per_s"]]):
        left.text(value, y, f" {value:,.0f}", va="center")
    left.set_xlabel("URLs taken a second")
    left.set_title(
        f"intake: {intake['ratio']:.1f}x the peer (p99 {intake['p99_ms']:,.0f} ms a call)"
    )
    labels = ["peer: one at a time", "meldpunt: run_lifecycle"]
    values = [rc["peer"]["checks_per_s"], rc["checks_per_s"]]
    title = f"re-checks: {rc['ratio']:.1f}x the peer on loopback"
    if rl := results.get("rechecks_latency"):
        ms = f"{rl['latency_ms']:g} ms"
        labels = [f"peer, {ms} a fetch", f"meldpunt, {ms} a fetch", *labels]
        values = [rl["peer"]["checks_per_s"], rl["checks_per_s"], *values]
        title += f",\n{rl['ratio']:.0f}x with {ms} a fetch"
    right.barh(labels, values, color=["#999", "#3a7"] * (len(values) // 2))
    for y, value in enumerate(values):
        right.text(value, y, f" {value:,.0f}", va="center")
    right.axvline(GOALS["rechecks_per_s"], color="black", linestyle="--", linewidth=1)
    right.set_xlabel("URL re-checks a second (dashed: goal 200)")
    right.set_title(title)
    low, step = axes[1]
    if lat["noticed"]:
        low.plot(lat["curve_minutes"], range(101))
    low.axvline(GOALS["notice_p95_minutes"], color="black", linestyle="--", linewidth=1)
    low.axhline(95, color="grey", linestyle=":", linewidth=1)
    low.set_xlabel("received -> notice, simulated minutes (dashed: 5-minute goal)")
    low.set_ylabel("% of known items")
    low.set_title(f"known material: p95 {lat['p95_minutes']:.2f} min ({lat['noticed']:,} items)")
    names = list(flow["steps"])
    rates = [flow["steps"][n]["per_s"] or 0 for n in names]
    step.barh(names, rates, color="#37a")
    for y, value in enumerate(rates):
        step.text(value, y, f" {value:,.0f}", va="center")
    step.set_xlabel("items a second, real time")
    step.set_title("worker steps")
    fig.suptitle(
        f"bench/takedown.py: {results['urls']:,} URLs, {results['hosters']:,} hosters, "
        f"{results['database']}, {results['cores']} cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--urls", type=int, default=100_000, help="reported URLs")
    parser.add_argument("--hosters", type=int, default=1_000, help="simulated hosters")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--known-share", type=float, default=0.9,
                        help="share of URLs the registry knows")  # fmt: skip
    parser.add_argument("--abroad", type=float, default=0.1, help="share of hosters abroad")
    parser.add_argument("--pictures", type=int, default=500,
                        help="distinct pictures of each kind (known, new)")  # fmt: skip
    parser.add_argument("--per-call", type=int, default=1_000, help="URLs per API call")
    parser.add_argument("--peer-urls", type=int, default=10_000, help="URLs the intake peer takes")
    parser.add_argument("--arrival-minutes", type=float, default=30.0,
                        help="simulated minutes over which the reports arrive")  # fmt: skip
    parser.add_argument("--per-report", type=int, default=40,
                        help="URLs per arriving report: 1 to this, drawn")  # fmt: skip
    parser.add_argument("--tick", type=float, default=5.0,
                        help="simulated seconds between the worker's rounds")  # fmt: skip
    parser.add_argument("--batch", type=int, default=200, help="the worker's batch size")
    parser.add_argument("--peer-checks", type=int, default=2_000,
                        help="items the re-check peer checks")  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=100.0,
                        help="then re-checks again with each answer held back this long "
                             "(0: not)")  # fmt: skip
    parser.add_argument("--latency-checks", type=int, default=5_000,
                        help="items re-checked with latency")  # fmt: skip
    parser.add_argument("--latency-peer", type=int, default=200,
                        help="items the peer re-checks with latency")  # fmt: skip
    parser.add_argument(
        "--postgresql", metavar="URL", nargs="?", const=PG_DEFAULT,
        help=f"run on PostgreSQL (schemas {SCHEMA}_*, dropped after; default {PG_DEFAULT})",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--chart", type=Path, metavar="JSON",
                        help="only draw the chart of a results file, beside it")  # fmt: skip
    args = parser.parse_args()
    if args.chart:
        chart(json.loads(args.chart.read_text()), args.chart.with_suffix(".png"))
        return
    show = Display()
    workdir = Path(tempfile.mkdtemp(prefix="meldpunt-takedown-"))
    try:
        with show.progress:
            results = run(args, workdir, show)
        args.out.mkdir(parents=True, exist_ok=True)
        suffix = "" if not args.postgresql else "-postgresql"
        (args.out / f"takedown{suffix}.json").write_text(json.dumps(results, indent=2))
        chart(results, args.out / f"takedown{suffix}.png")
        show.say(
            f"goals: {results['goals']}; {results['seconds'] / 60:.1f} minutes in all; wrote "
            f"{args.out / f'takedown{suffix}.json'} and .png"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
