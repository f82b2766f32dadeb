"""Exchange benchmark: linking two instances on this machine, and the browser's hasher.

1. initial pull: a set of ``--entries`` PDQ entries followed from one instance (``meldpunt
   serve`` in its own process) into another (``exchange.pull_follow`` here, pages growing from
   10,000 to 250,000 changes as the worker's): time, bytes on the wire per entry (goals at 10
   million entries: under 60 s, at most 40 bytes an entry);
2. peer: the same set fetched by Meta's ``threatexchange fetch`` through meldpunt's plugin
   (``meldpunt.exchange.txplugin``), from scratch; the ratio to step 1 printed;
3. steady stream: a writer in its own process adds ``--rate`` entries a second to the source for
   ``--seconds`` seconds while the follower pulls without pause; the lag from each change's
   commit to the follower's commit of the page that holds it, p50/p99/max (goal: p99 under 5 s);
4. floor: the rows the pull writes (an item, a signal, a change and a source an entry) written
   into a fresh database of the same kind by the plainest statements it has (SQLite: ``INSERT
   ... SELECT`` from ``json_each``; PostgreSQL: ``COPY``) and nothing else, into the real schema
   and into the same tables without indexes and foreign keys: what the database itself costs;
5. the browser's hasher (``/protect``): pictures hashed per second (decode, MD5, PDQ with its
   eight orientations) in headless Chromium at 2 and 12 megapixels, beside the server's fast path
   (``pdq_signal`` with orientations, and the MD5) on the same files, one core each.

    .venv/bin/python bench/exchange.py                     # 200,000 entries, a few minutes
    .venv/bin/python bench/exchange.py --entries 10000000 --skip threatexchange,browser
    .venv/bin/python bench/exchange.py --postgresql        # both instances on PostgreSQL
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from takedown import free_port, percentiles  # noqa: E402

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOALS = {"seconds_per_10m": 60.0, "bytes_per_entry": 40.0, "lag_p99_s": 5.0}
FILL_BATCH = 250_000
SERVE = """
import sys, uvicorn
from meldpunt.api import ServiceSettings, create_app
uvicorn.run(create_app(ServiceSettings.from_settings(run_worker=False)), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning")
"""
WRITE = """
import json, secrets, sys, time
from meldpunt.registry import classify
from meldpunt.registry.bulk import NewEntries, add_new_entries
from meldpunt.store import make_engine, make_sessionmaker
url, rate, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sessions = make_sessionmaker(make_engine(url))
per_tick, tick = max(1, int(rate / 10)), 0.1
category = classify("csam_baseline", "meldpunt")
start = time.time()
with open(out, "w") as log:
    while time.time() - start < seconds:
        due = start + tick * (1 + int((time.time() - start) / tick))
        batch = NewEntries([None] * per_tick, [category] * per_tick, range(per_tick),
                           ["pdq"] * per_tick, [secrets.token_hex(32) for _ in range(per_tick)])
        with sessions() as session:
            result = add_new_entries(session, "stream", batch, actor="bench")
            session.commit()
        log.write(json.dumps([result.seqs[0], result.seqs[1], time.time()]) + "\\n")
        log.flush()
        time.sleep(max(0.0, due - time.time()))
"""


def _env(data_dir: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELDPUNT_")}
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "meldpunt.toml").write_text("")
    env.update(
        {
            "MELDPUNT_DATABASE_URL": url,
            "MELDPUNT_DATA_DIR": str(data_dir),
            "MELDPUNT_CONFIG": str(data_dir / "meldpunt.toml"),
            "PYTHONPATH": str(HERE.parent / "src"),
        }
    )
    return env


def _database(postgresql: bool, work: Path, role: str) -> tuple[str, list[str]]:
    """A fresh database: a SQLite file, or a schema of its own on the PostgreSQL server."""
    if not postgresql:
        return f"sqlite:///{work / f'{role}.db'}", []
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    schema = f"bench_exchange_{role.replace('-', '_')}_{secrets.token_hex(4)}"
    with create_engine(PG_DEFAULT).begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(PG_DEFAULT).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), [schema]


def _drop(schemas: list[str]) -> None:
    if not schemas:
        return
    from sqlalchemy import create_engine

    with create_engine(PG_DEFAULT).begin() as connection:
        for schema in schemas:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


def _databases(postgresql: bool, work: Path) -> tuple[str, str, list[str]]:
    source, first = _database(postgresql, work, "source")
    follower, second = _database(postgresql, work, "follower")
    return source, follower, first + second


def _fill(url: str, entries: int) -> float:
    """The source's set of ``entries`` random PDQ entries, written by the registry's set-wise
    path for new entries (``registry.bulk``: the same rows an import writes)."""
    from rich.progress import Progress

    from meldpunt.registry import classify, create_set
    from meldpunt.registry.bulk import NewEntries, add_new_entries
    from meldpunt.store import init_db, make_engine, make_sessionmaker
    from meldpunt.store.bulk import large_cache

    init_db(url)
    sessions = make_sessionmaker(make_engine(url))
    started = time.perf_counter()
    with sessions() as session:
        create_set(session, "police", default_category="csam_baseline")
        create_set(session, "stream", default_category="csam_baseline")
        session.commit()
    category = classify("csam_baseline", "meldpunt")
    with Progress(disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("source set", total=entries)
        for first in range(0, entries, FILL_BATCH):
            count = min(FILL_BATCH, entries - first)
            batch = NewEntries(
                references=[None] * count,
                categories=[category] * count,
                owners=range(count),
                signal_types=["pdq"] * count,
                values=[secrets.token_hex(32) for _ in range(count)],
            )
            with sessions() as session:
                with large_cache(session.connection()):  # as the follower writes
                    add_new_entries(session, "police", batch, actor="bench", source="bench")
                session.commit()
            progress.advance(task, count)
    return time.perf_counter() - started


BARE = {
    "items": "id BIGINT, set_id INTEGER, reference VARCHAR(200), category VARCHAR(40), "
    "category_raw VARCHAR(200), category_scheme VARCHAR(40), status VARCHAR(20), note TEXT, "
    "created_at TIMESTAMP, updated_at TIMESTAMP",
    "item_signals": "id BIGINT, item_id BIGINT, set_id INTEGER, signal_type VARCHAR(40), "
    "value VARCHAR(1000)",
    "registry_changes": "seq BIGINT, at TIMESTAMP, set_id INTEGER, item_id BIGINT, "
    "action VARCHAR(10), signal_type VARCHAR(40), value VARCHAR(1000), category VARCHAR(40), "
    "reason VARCHAR(40)",
    "entry_sources": "id BIGINT, item_id BIGINT, partner_id INTEGER, remote_set VARCHAR(200), "
    "remote_item BIGINT, remote_seq BIGINT, active BOOLEAN, updated_at TIMESTAMP",
}


def _floor(postgresql: bool, entries: int, work: Path) -> dict[str, Any]:
    """The rows of ``entries`` received entries, written by the plainest statements the
    database has, in batches of 250,000 (one transaction each, as the pull's largest pages):
    into the real schema (``schema``) and into the same tables bare (``bare``)."""
    out: dict[str, Any] = {"entries": entries}
    for variant in ("schema", "bare"):
        url, schemas = _database(postgresql, work, f"floor-{variant}")
        try:
            out[f"{variant}_seconds"] = round(_write_rows(url, entries, bare=variant == "bare"), 2)
        finally:
            _drop(schemas)
        print(f"floor ({variant}): {out[f'{variant}_seconds']} s", flush=True)
    return out


def _write_rows(url: str, entries: int, *, bare: bool) -> float:
    from datetime import UTC, datetime

    from sqlalchemy import text

    from meldpunt.store import init_db, make_engine
    from meldpunt.store.bulk import insert_rows, large_cache
    from meldpunt.store.models import Base

    engine = make_engine(url)
    if bare:
        with engine.begin() as connection:
            for name, columns in BARE.items():
                connection.execute(text(f"CREATE TABLE {name} ({columns})"))
    else:
        from meldpunt import exchange
        from meldpunt.registry import create_set
        from meldpunt.store import make_sessionmaker

        init_db(url)
        with make_sessionmaker(engine)() as session:
            create_set(session, "from-a")
            key = exchange.instance_key(Path(tempfile.mkdtemp())).public
            exchange.add_partner(session, "a", url="http://127.0.0.1:9", public_key=key)
            session.commit()
    tables = Base.metadata.tables
    at = datetime.now(UTC)
    took = 0.0
    for first in range(0, entries, FILL_BATCH):
        count = min(FILL_BATCH, entries - first)
        ids = range(1000 + first, 1000 + first + count)  # after the set's own change
        values = [secrets.token_hex(32) for _ in range(count)]
        references = [f"a:{i}" for i in ids]
        started = time.perf_counter()
        with engine.begin() as connection, large_cache(connection):
            if engine.dialect.name == "postgresql":
                _copy_rows(connection, ids, values, references, at)
            else:
                common = {"set_id": 1}
                insert_rows(
                    connection,
                    tables["items"],
                    constants={
                        **common,
                        "status": "active",
                        "category": "csam_baseline",
                        "category_raw": "csam_baseline",
                        "category_scheme": "meldpunt",
                        "created_at": at,
                        "updated_at": at,
                    },
                    columns={"id": ids, "reference": references},
                )
                insert_rows(
                    connection,
                    tables["item_signals"],
                    constants={**common, "signal_type": "pdq"},
                    columns={"item_id": ids, "value": values},
                    order_by=("value",),
                )
                insert_rows(
                    connection,
                    tables["registry_changes"],
                    constants={
                        **common,
                        "at": at,
                        "action": "add",
                        "signal_type": "pdq",
                        "category": "csam_baseline",
                        "reason": "added",
                    },
                    columns={"seq": ids, "item_id": ids, "value": values},
                )
                insert_rows(
                    connection,
                    tables["entry_sources"],
                    constants={
                        "partner_id": 1,
                        "remote_set": "police",
                        "active": True,
                        "updated_at": at,
                    },
                    columns={"item_id": ids, "remote_item": ids, "remote_seq": ids},
                )
        took += time.perf_counter() - started
    engine.dispose()
    return took


def _copy_rows(connection: Any, ids: range, values: list[str], refs: list[str], at: Any) -> None:
    """PostgreSQL's COPY of one batch's rows, as tab-separated text."""
    cursor = connection.connection.driver_connection.cursor()
    stamp = at.isoformat()
    rows = {
        "items (id, set_id, reference, category, category_raw, category_scheme, status, "
        "created_at, updated_at)": (
            f"{i}\t1\t{r}\tcsam_baseline\tcsam_baseline\tmeldpunt\tactive\t{stamp}\t{stamp}\n"
            for i, r in zip(ids, refs, strict=True)
        ),
        "item_signals (item_id, set_id, signal_type, value)": (
            f"{i}\t1\tpdq\t{v}\n"
            for i, v in sorted(zip(ids, values, strict=True), key=lambda x: x[1])
        ),
        "registry_changes (seq, at, set_id, item_id, action, signal_type, value, category, "
        "reason)": (
            f"{i}\t{stamp}\t1\t{i}\tadd\tpdq\t{v}\tcsam_baseline\tadded\n"
            for i, v in zip(ids, values, strict=True)
        ),
        "entry_sources (item_id, partner_id, remote_set, remote_item, remote_seq, active, "
        "updated_at)": (f"{i}\t1\tpolice\t{i}\t{i}\tt\t{stamp}\n" for i in ids),
    }
    for target, lines in rows.items():
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:
            copy.write("".join(lines))


def _serve(url: str, data_dir: Path, entries: int) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=_env(data_dir, url))
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120 + entries / 10_000  # it builds its index of the set first
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the source did not start")


def _link(
    source_url: str, follower_url: str, source_dir: Path, follower_dir: Path, base: str
) -> str:
    from meldpunt import exchange
    from meldpunt.store import init_db, make_engine, make_sessionmaker

    init_db(follower_url)
    with make_sessionmaker(make_engine(source_url))() as session:
        _, token = exchange.add_partner(
            session,
            "follower",
            url="http://127.0.0.1:9",
            public_key=exchange.instance_key(follower_dir).public,
            send_sets=["police", "stream"],
        )
        session.commit()
    assert token
    with make_sessionmaker(make_engine(follower_url))() as session:
        exchange.add_partner(
            session,
            "source",
            url=base,
            public_key=exchange.instance_key(source_dir).public,
            receive=[("police", None), ("stream", None)],
            remote_token=token,
        )
        session.commit()
    return token


def _initial_pull(follower_url: str, entries: int) -> dict[str, Any]:
    from rich.progress import Progress

    from meldpunt import exchange
    from meldpunt.exchange.feeds import MAX_PAGE
    from meldpunt.exchange.follow import pull_follow
    from meldpunt.reports.fetcher import FetchPolicy
    from meldpunt.store import make_engine, make_sessionmaker
    from meldpunt.store.models import PartnerFollow

    sessions = make_sessionmaker(make_engine(follower_url))
    with sessions() as session:
        follow_id = session.query(PartnerFollow.id).filter_by(remote_set="police").scalar()
    policy = exchange.partner_policy(FetchPolicy())
    pages: list[tuple[int, float]] = []  # (changes applied, seconds) after each page
    with Progress(disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("initial pull", total=entries)
        started = time.perf_counter()

        def on_page(r: Any) -> None:
            progress.update(task, completed=r.changes)
            pages.append((r.changes, round(time.perf_counter() - started, 2)))

        result = pull_follow(
            sessions,
            follow_id,
            policy,
            catch_up=MAX_PAGE,  # as the worker and `meldpunt exchange pull` do
            on_page=on_page,
        )
        seconds = time.perf_counter() - started
    assert result.changes == entries, (result.changes, entries)
    return {
        "entries": entries,
        "seconds": round(seconds, 2),
        "pages": result.pages,
        "bytes": result.bytes,
        "bytes_per_entry": round(result.bytes / entries, 1),
        "entries_per_second": round(entries / seconds),
        "projected_seconds_at_10m": round(seconds * 10_000_000 / entries),
        "after_each_commit": pages,
    }


def _stream(
    source_url: str, follower_url: str, source_dir: Path, rate: float, seconds: float, work: Path
) -> dict[str, Any]:
    from meldpunt import exchange
    from meldpunt.exchange.follow import pull_follow
    from meldpunt.reports.fetcher import FetchPolicy
    from meldpunt.store import make_engine, make_sessionmaker
    from meldpunt.store.models import PartnerFollow

    sessions = make_sessionmaker(make_engine(follower_url))
    with sessions() as session:
        follow_id = session.query(PartnerFollow.id).filter_by(remote_set="stream").scalar()
    policy = exchange.partner_policy(FetchPolicy())
    log = work / "stream.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITE, source_url, str(rate), str(seconds), str(log)],
        env=_env(source_dir, source_url),
    )
    applied: list[tuple[int, float]] = []  # (last seq applied, when)
    last = 0
    while writer.poll() is None or last < _last_written(log):
        result = pull_follow(sessions, follow_id, policy, limit=50_000, max_pages=1)
        now = time.time()
        if result.after > last:
            last = result.after
            applied.append((last, now))
        else:
            time.sleep(0.02)
    lags = []
    for line in log.read_text().splitlines():
        first, final, committed = json.loads(line)
        when = next(t for seq, t in applied if seq >= final)
        lags.extend([when - committed] * (final - first + 1))
    p50, p99 = percentiles(lags, 50, 99)
    return {
        "rate_per_second": rate,
        "seconds": seconds,
        "changes": len(lags),
        "achieved_rate": round(len(lags) / seconds),
        "lag_p50_s": round(p50, 3),
        "lag_p99_s": round(p99, 3),
        "lag_max_s": round(max(lags), 3),
    }


def _last_written(log: Path) -> int:
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return 0
    return json.loads(lines[-1])[1] if lines else 0


def _threatexchange(base: str, token: str, source_dir: Path, work: Path) -> dict[str, Any]:
    from meldpunt.exchange.feeds import MAX_PAGE
    from meldpunt.exchange.keys import instance_key

    state = work / "tx"
    state.mkdir()
    env = {
        **os.environ,
        "TX_STATEDIR": str(state),
        "HOME": str(state),
        "TX_MELDPUNT_TOKEN": token,
        "PYTHONPATH": str(HERE.parent / "src"),
    }

    def tx(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "threatexchange", *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"threatexchange {' '.join(args)}: {done.stderr[-2000:]}")
        return done

    tx("config", "extensions", "add", "meldpunt.exchange.txplugin")
    tx(
        "config",
        "collab",
        "edit",
        "meldpunt",
        "police",
        "--create",
        "--url",
        base,
        "--set-name",
        "police",
        "--public-key",
        instance_key(source_dir).public,
        "--page-size",
        str(MAX_PAGE),
    )
    started = time.perf_counter()
    tx("fetch")
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2)}


def _browser(pictures: int, work: Path) -> dict[str, Any]:
    """Pictures per second in headless Chromium and on the server's fast path, same files."""
    from corpus import build

    from meldpunt.signals import HashOptions, digest_bytes, pdq_signal

    sizes = {"2MP": (1632, 1224), "12MP": (4000, 3000)}
    images = build(HERE / ".corpus-exchange", per_size=pictures, png_share=0.0, sizes=sizes)
    out: dict[str, Any] = {}
    hashing = (HERE.parent / "src/meldpunt/web/static/protect/hashing.js").read_text()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        page = chromium.new_page()
        page.set_content("<html><body></body></html>")
        page.add_script_tag(content=hashing)
        for size in sizes:
            files = [i.path.read_bytes() for i in images if i.size_name == size]
            encoded = [base64.b64encode(data).decode() for data in files]
            # the bytes are handed over first (the page reads a chosen file from disk itself)
            handles = page.evaluate_handle(
                """(all) => all.map((e) => new Blob(
                [Uint8Array.from(atob(e), (c) => c.charCodeAt(0))], {type: "image/jpeg"}))""",
                encoded,
            )
            took = page.evaluate(
                """async (blobs) => {
                const start = performance.now();
                for (const blob of blobs) await globalThis.meldpuntHashing.hashFile(blob);
                return (performance.now() - start) / 1000; }""",
                handles,
            )
            started = time.perf_counter()
            for data in files:
                digest_bytes(data)
                pdq_signal(data, HashOptions(dihedral=True))
            server = time.perf_counter() - started
            out[size] = {
                "pictures": len(files),
                "browser_per_second": round(len(files) / took, 2),
                "server_per_second": round(len(files) / server, 2),
                "server_over_browser": round(took / server, 1),
            }
        chromium.close()
    return out


def _chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    browser = results.get("browser")
    pull = results["initial_pull"]
    panels = 2 + (1 if browser else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2))
    left, middle = axes[0], axes[1]
    done = [0, *[n for n, _ in pull["after_each_commit"]]]
    times = [0.0, *[t for _, t in pull["after_each_commit"]]]
    steps = zip(pairwise(done), pairwise(times), strict=True)
    rates = [(b - a) / max(t1 - t0, 1e-9) for (a, b), (t0, t1) in steps]
    middles = [(a + b) / 2e6 for a, b in pairwise(done)]
    middle.plot(middles, rates, marker="o", markersize=3, color="#2b6cb0")
    middle.set_xlabel("million entries held (middle of each page)")
    middle.set_ylabel("entries / second (page by page)")
    middle.set_ylim(bottom=0)
    middle.set_title("the pull as the follower's tables grow", fontsize=10)
    bars = {"meldpunt pull": (pull["seconds"], "#2b6cb0")}
    if "floor" in results:
        bars["plain writes,\nsame schema"] = (results["floor"]["schema_seconds"], "#90cdf4")
        bars["plain writes,\nno index or key"] = (results["floor"]["bare_seconds"], "#bee3f8")
    if "threatexchange" in results:
        bars["threatexchange\nfetch"] = (results["threatexchange"]["seconds"], "#a0aec0")
    left.bar(list(bars), [v for v, _ in bars.values()], color=[c for _, c in bars.values()])
    for i, (value, _) in enumerate(bars.values()):
        left.annotate(f"{value:,.1f} s", (i, value), ha="center", va="bottom", fontsize=8)
    left.set_ylabel("seconds")
    left.tick_params(axis="x", labelsize=8)
    left.set_title(
        f"first pull of {pull['entries']:,} entries, {results['database']}\n"
        f"({pull['entries_per_second']:,}/s, {pull['bytes_per_entry']} B/entry)",
        fontsize=10,
    )
    if browser:
        right = axes[2]
        sizes = list(browser)
        x = range(len(sizes))
        right.bar([i - 0.2 for i in x], [browser[s]["browser_per_second"] for s in sizes],
                  width=0.4, label="browser (Chromium)")  # fmt: skip
        right.bar([i + 0.2 for i in x], [browser[s]["server_per_second"] for s in sizes],
                  width=0.4, label="server fast path")  # fmt: skip
        right.set_xticks(list(x), sizes)
        right.set_ylabel("pictures / second")
        right.set_title("hashing with 8 orientations and MD5", fontsize=10)
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


STEPS = ("threatexchange", "stream", "floor", "browser")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="changes a second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the stream runs")
    parser.add_argument("--pictures", type=int, default=4, help="per size, for the browser")
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--skip", default="", help=f"steps left out, of {', '.join(STEPS)}")
    parser.add_argument("--out", default=str(HERE / "results" / "exchange.json"))
    args = parser.parse_args()
    skip = {step.strip() for step in args.skip.split(",") if step.strip()}
    if skip - set(STEPS):
        parser.error(f"unknown steps {', '.join(sorted(skip - set(STEPS)))}")
    results: dict[str, Any] = {"database": "postgresql" if args.postgresql else "sqlite"}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        source_url, follower_url, schemas = _databases(args.postgresql, work)
        source_dir, follower_dir = work / "source", work / "follower"
        try:
            results["fill_seconds"] = round(_fill(source_url, args.entries), 1)
            print(f"source filled in {results['fill_seconds']} s", flush=True)
            server, base = _serve(source_url, source_dir, args.entries)
            try:
                token = _link(source_url, follower_url, source_dir, follower_dir, base)
                results["initial_pull"] = _initial_pull(follower_url, args.entries)
                print("initial pull:", json.dumps(results["initial_pull"]), flush=True)
                if "threatexchange" not in skip:
                    results["threatexchange"] = _threatexchange(base, token, source_dir, work)
                    pulled = results["initial_pull"]["seconds"]
                    ratio = results["threatexchange"]["seconds"] / pulled
                    results["threatexchange"]["ratio_to_meldpunt"] = round(ratio, 2)
                    print(
                        f"threatexchange fetch: {results['threatexchange']['seconds']} s, "
                        f"{ratio:.2f}x meldpunt's pull",
                        flush=True,
                    )
                if "stream" not in skip:
                    results["stream"] = _stream(
                        source_url, follower_url, source_dir, args.rate, args.seconds, work
                    )
                    print("stream:", json.dumps(results["stream"]), flush=True)
            finally:
                server.terminate()
                server.wait(30)
        finally:
            _drop(schemas)
        if "floor" not in skip:
            results["floor"] = _floor(args.postgresql, args.entries, work)
        if "browser" not in skip:
            results["browser"] = _browser(args.pictures, work)
            print("browser:", json.dumps(results["browser"]), flush=True)
    results["goals"] = GOALS
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    _chart(results, out.with_suffix(".png"))
    print(f"written {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
