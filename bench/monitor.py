"""Monitor benchmark: a national-scale history (10 million notified URLs over 5,000 hosters and 5
years, orders and penalty payments; ``bench/monitor_history.py``) on PostgreSQL.

1. load: the history written into meldpunt's tables (COPY, indexes built after);
2. rebuild: ``monitor.figures.rebuild`` computes every figure (per hoster and in total, per month,
   quarter and year) from the raw rows; peer: DuckDB computing the same tables from the same rows
   (``monitor.reference``, after the rows are exported to it, timed apart), the ratio printed and
   every figure compared equal;
3. pages: the service in its own process answers the public monitor's pages and exports; each
   asked ``--requests`` times, p50/p95/max (goal: p95 at most 200 ms);
4. freshness: with ``meldpunt worker`` running beside the service, items are made offline one by
   one (as the re-check step does: state, gone_at, updated_at, in one commit); the time until the
   public JSON shows it (goal: at most 5 seconds).

    .venv/bin/python bench/monitor.py                         # 10 million URLs, PostgreSQL
    .venv/bin/python bench/monitor.py --urls 200000           # quick
    .venv/bin/python bench/monitor.py --sqlite --urls 100000  # the same on SQLite
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import monitor_history as mh  # noqa: E402
from takedown import Databases, Display, free_port, percentiles  # noqa: E402

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOALS = {"page_p95_ms": 200.0, "fresh_max_s": 5.0}
#: The schema a run keeps with --keep (``Databases`` names its schemas after the takedown bench).
KEPT = "meldpunt_bench_takedown_monitor"
SERVE = """
import sys, uvicorn
from meldpunt.api import ServiceSettings, create_app
uvicorn.run(create_app(ServiceSettings.from_settings(run_worker=False)), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning")
"""


def now_s() -> float:
    return time.perf_counter()


def env_for(workdir: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELDPUNT_")}
    env.update(
        {
            "MELDPUNT_DATA_DIR": str(workdir / "var"),
            "MELDPUNT_DATABASE_URL": url,
            "MELDPUNT_RATE_PER_SECOND": "0",
            "MELDPUNT_LOG_LEVEL": "WARNING",
            "MELDPUNT_MONITOR_REFRESH_SECONDS": "1",
            "PYTHONPATH": str(HERE.parent / "src"),
        }
    )
    return env


@contextmanager
def processes(workdir: Path, url: str, *, worker: bool) -> Iterator[str]:
    """The service (and a worker) in processes of their own; yields the base URL."""
    import httpx

    port = free_port()
    env = env_for(workdir, url)
    started = [subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=env)]
    if worker:
        command = [sys.executable, "-m", "meldpunt.cli", "worker", "--batch", "200"]
        started.append(subprocess.Popen(command, env=env))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = now_s() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if now_s() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.2)
        yield base
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


# --- 2. rebuild beside DuckDB ---------------------------------------------------------------------


def bench_rebuild(url: str, workdir: Path, show: Display) -> dict[str, Any]:
    import duckdb

    from meldpunt.monitor import figures, reference
    from meldpunt.store import get_engine, make_sessionmaker

    sessions = make_sessionmaker(get_engine(url))
    show.say("rebuilding every figure from the raw rows ...")
    started = now_s()
    groups = figures.rebuild(sessions)
    rebuild_s = now_s() - started
    show.say(f"rebuild: {groups:,} groups in {rebuild_s:.1f} s")
    started = now_s()
    con = duckdb.connect(str(workdir / "raw.duckdb"))
    reference.load(con, sessions)  # COPY out of PostgreSQL, CSV into DuckDB
    export_s = now_s() - started
    started = now_s()
    expected = reference.compute(con)
    duckdb_s = now_s() - started
    con.close()
    show.say(f"DuckDB: rows exported in {export_s:.1f} s, tables computed in {duckdb_s:.1f} s")
    with sessions() as session:
        differences = reference.compare(expected, reference.stored_tables(session))
    show.say(f"differences: {len(differences)} {differences[:3]}")
    return {
        "groups": groups,
        "rebuild_s": rebuild_s,
        "duckdb": {"export_s": export_s, "compute_s": duckdb_s},
        "ratio": rebuild_s / duckdb_s if duckdb_s else None,
        "differences": len(differences),
        "first_differences": differences[:5],
    }


# --- 3. pages -------------------------------------------------------------------------------------


def page_paths(url: str) -> dict[str, str]:
    """The pages and exports to ask for: the latest month and the busiest year."""
    from sqlalchemy import func, select

    from meldpunt.store import get_engine, make_sessionmaker
    from meldpunt.store.models import MonitorHoster

    with make_sessionmaker(get_engine(url))() as session:
        month = session.scalar(
            select(func.max(MonitorHoster.period)).where(MonitorHoster.period_kind == "month")
        )
        year = session.scalar(
            select(func.max(MonitorHoster.period)).where(MonitorHoster.period_kind == "year")
        )
    return {
        "monitor page": "/monitor",
        "monitor page, a year": f"/monitor?period=year&at={year}",
        "hosters JSON, a month": f"/v1/monitor/hosters?period=month&at={month}&format=json",
        "hosters CSV, a year": f"/v1/monitor/hosters?period=year&at={year}&format=csv",
        "platforms JSON, a year": f"/v1/monitor/platforms?period=year&at={year}&format=json",
        "yearly report": f"/monitor/report/{year}",
    }


def bench_pages(base: str, paths: dict[str, str], requests: int, show: Display) -> dict[str, Any]:
    import httpx

    results: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for name, path in paths.items():
            for _ in range(3):  # warm
                answer = client.get(path)
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {answer.status_code} {answer.text[:200]}")
            times: list[float] = []
            with show.task(name, requests) as update:
                for done in range(1, requests + 1):
                    started = now_s()
                    client.get(path).raise_for_status()
                    times.append((now_s() - started) * 1000)
                    update(done)
            p50, p95, p99 = percentiles(times, 50, 95, 99)
            results[name] = {
                "path": path, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max(times),
                "bytes": len(answer.content),
            }  # fmt: skip
            show.say(f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    return results


# --- 4. freshness ---------------------------------------------------------------------------------


def _total_online(client: Any, path: str) -> int:
    answer = client.get(path)
    answer.raise_for_status()
    return int(answer.json()["total"]["online"])


def bench_freshness(url: str, base: str, events: int, show: Display) -> dict[str, Any]:
    """Make ``events`` online items offline, one at a time, as the re-check step does, and time
    each until the period's public total shows it."""
    import httpx
    from sqlalchemy import select, update

    from meldpunt import clock
    from meldpunt.monitor.periods import period_of
    from meldpunt.store import get_engine, make_sessionmaker
    from meldpunt.store.models import UrlItem

    sessions = make_sessionmaker(get_engine(url))
    with sessions() as session:
        rows = session.execute(
            select(UrlItem.id, UrlItem.first_notice_at)
            .where(UrlItem.state.in_(("noticed", "escalated")))
            .order_by(UrlItem.id)
            .limit(events)
        ).all()
    latencies: list[float] = []
    with (
        httpx.Client(base_url=base, timeout=30) as client,
        show.task("offline events", len(rows)) as progress,
    ):
        for item_id, noticed in rows:
            path = (
                f"/v1/monitor/hosters?period=month&at={period_of('month', noticed)}"
                "&format=json&limit=1"
            )
            before = _total_online(client, path)
            moment = clock.now()
            with sessions() as session:
                session.execute(
                    update(UrlItem)
                    .where(UrlItem.id == item_id)
                    .values(
                        state="offline",
                        gone_at=moment,
                        offline_at=moment,
                        open_key=None,
                        next_check_at=None,
                        updated_at=moment,
                    )  # fmt: skip
                )
                session.commit()
            committed = now_s()
            while _total_online(client, path) == before:
                if now_s() - committed > 60:
                    raise RuntimeError(f"item {item_id}: not on the page after 60 s")
                time.sleep(0.02)
            latencies.append(now_s() - committed)
            progress(len(latencies))
    p50, p95 = percentiles(latencies, 50, 95)
    show.say(f"offline events on the public JSON: p50 {p50:.2f} s, max {max(latencies):.2f} s")
    return {"events": len(latencies), "p50_s": p50, "p95_s": p95, "max_s": max(latencies)}


# --- the run --------------------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path, show: Display) -> dict[str, Any]:
    from sqlalchemy import create_engine

    server = None if args.sqlite else args.postgresql
    dbs = Databases(workdir, server)
    results: dict[str, Any] = {
        "urls": args.urls,
        "hosters": args.hosters,
        "years": args.years,
        "database": "PostgreSQL" if server else "SQLite",
        "cores": os.cpu_count(),
        "goals": GOALS,
    }
    started = now_s()
    try:
        if args.reuse:  # the history a run with --keep left
            if not server:
                raise SystemExit("--reuse is for PostgreSQL")
            joiner = "&" if "?" in server else "?"
            url = f"{server}{joiner}options=-csearch_path%3D{KEPT}"
            results["load_s"] = None
        else:
            url = dbs.fresh("monitor")
            shape = mh.Shape(urls=args.urls, hosters=args.hosters, years=args.years,
                             start=mh.default_start(args.years), seed=args.seed,
                             orders=args.orders)  # fmt: skip
            load_started = now_s()
            engine = create_engine(url)
            with show.task("history: notified URLs", args.urls) as update:
                done = [0]

                def step(n: int) -> None:
                    done[0] += n
                    update(done[0])

                mh.load(engine, shape, step=step)
            engine.dispose()
            results["load_s"] = now_s() - load_started
            show.say(f"history loaded in {results['load_s']:.0f} s")
        results["rebuild"] = bench_rebuild(url, workdir, show)
        with processes(workdir, url, worker=True) as base:
            results["pages"] = bench_pages(base, page_paths(url), args.requests, show)
            results["freshness"] = bench_freshness(url, base, args.events, show)
    finally:
        if not (args.keep or args.reuse):
            dbs.drop()
    results["seconds"] = now_s() - started
    worst = max(p["p95_ms"] for p in results["pages"].values())
    results["met"] = {
        "page_p95": worst <= GOALS["page_p95_ms"],
        "fresh": results["freshness"]["max_s"] <= GOALS["fresh_max_s"],
        "equal": results["rebuild"]["differences"] == 0,
    }
    return results


def chart(results: dict[str, Any], path: Path) -> None:
    """Rebuild beside DuckDB, each page's p95 against the goal, and the freshness."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rebuild, pages, fresh = results["rebuild"], results["pages"], results["freshness"]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4.2))
    labels = ["DuckDB: export", "DuckDB: compute", "meldpunt: rebuild"]
    values = [rebuild["duckdb"]["export_s"], rebuild["duckdb"]["compute_s"], rebuild["rebuild_s"]]
    left.barh(labels, values, color=["#bbb", "#999", "#3a7"])
    for y, value in enumerate(values):
        left.text(value, y, f" {value:,.1f} s", va="center")
    left.set_xlabel("seconds")
    left.set_title(
        f"full rebuild: {rebuild['ratio']:.1f}x DuckDB's compute, "
        f"{rebuild['differences']} differences"
    )
    names = list(pages)
    p95 = [pages[n]["p95_ms"] for n in names]
    middle.barh(names, p95, color="#37a")
    for y, value in enumerate(p95):
        middle.text(value, y, f" {value:,.1f}", va="center")
    middle.axvline(GOALS["page_p95_ms"], color="black", linestyle="--", linewidth=1)
    middle.set_xlabel("p95 ms (dashed: goal 200)")
    middle.set_title("public pages and exports")
    right.bar(["p50", "p95", "max"], [fresh["p50_s"], fresh["p95_s"], fresh["max_s"]],
              color="#a73")  # fmt: skip
    right.axhline(GOALS["fresh_max_s"], color="black", linestyle="--", linewidth=1)
    right.set_ylabel("seconds, commit to public JSON (dashed: goal 5)")
    right.set_title(f"offline events on the monitor ({fresh['events']})")
    fig.suptitle(
        f"bench/monitor.py: {results['urls']:,} notified URLs, {results['hosters']:,} hosters, "
        f"{results['years']} years, {results['database']}, {results['cores']} cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--urls", type=int, default=10_000_000, help="notified URLs")
    parser.add_argument("--hosters", type=int, default=5_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--orders", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200, help="requests per page")
    parser.add_argument("--events", type=int, default=20, help="offline events timed")
    parser.add_argument("--postgresql", metavar="URL", default=PG_DEFAULT)
    parser.add_argument("--sqlite", action="store_true", help="run on SQLite instead")
    parser.add_argument(
        "--keep",
        action="store_true",
        help=f"keep the history (PostgreSQL schema {KEPT}) for --reuse",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="run on the history a --keep run left, without loading it",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--chart", type=Path, metavar="JSON",
                        help="only draw the chart of a results file, beside it")  # fmt: skip
    args = parser.parse_args()
    if args.chart:
        chart(json.loads(args.chart.read_text()), args.chart.with_suffix(".png"))
        return
    show = Display()
    workdir = Path(tempfile.mkdtemp(prefix="meldpunt-monitor-"))
    with show.progress:
        results = run(args, workdir, show)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "monitor" + ("-sqlite" if args.sqlite else "")
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2))
    chart(results, args.out / f"{name}.png")
    show.say(f"met: {results['met']}; {results['seconds'] / 60:.1f} minutes; wrote {name}.json")


if __name__ == "__main__":
    main()
