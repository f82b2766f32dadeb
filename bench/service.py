"""Service benchmark: the hash check service on loopback with a large synthetic registry.

A registry of N synthetic PDQ hashes (default 10 million, 20% clustered) is written as an index
snapshot that `meldpunt serve` loads at start; `wrk` (Debian package) drives the service over
loopback: single-hash checks (a third near duplicates, the rest misses), then batches of 1,000
items (PDQ hashes; MD5s; both for every item, as a platform that hashes its uploads sends), then
a soak during which the server's resident memory is sampled.

    .venv/bin/python bench/service.py                          # 10M hashes, 10-minute soak
    .venv/bin/python bench/service.py --hashes 1000000 --soak 60 --duration 15
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from matching import make_data, make_queries  # noqa: E402

LUA = """
local bodies = {}
local n = 0
for line in io.lines("%(bodies)s") do n = n + 1; bodies[n] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/check", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer %(key)s"}, bodies[(i %% n) + 1])
end
"""


def fresh_database(workdir: Path, server: str | None) -> str:
    """SQLite in the work folder, or an emptied schema of its own on a PostgreSQL server."""
    if not server:
        return f"sqlite:///{workdir / 'meldpunt.db'}"
    from sqlalchemy import create_engine, text

    engine = create_engine(server)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS meldpunt_bench CASCADE"))
        connection.execute(text("CREATE SCHEMA meldpunt_bench"))
    engine.dispose()
    joiner = "&" if "?" in server else "?"
    return f"{server}{joiner}options=-csearch_path%3Dmeldpunt_bench"


def setup(workdir: Path, count: int, server: str | None = None) -> tuple[str, str]:
    """A registry with one synthetic set, a platform key and a snapshot of N hashes."""
    from meldpunt import checks, registry
    from meldpunt.index import ExactIndex, PdqIndex
    from meldpunt.registry.matching import Matcher
    from meldpunt.store import init_db, make_engine, make_sessionmaker

    url = fresh_database(workdir, server)
    init_db(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        hash_set = registry.create_set(session, "synthetic", default_category="csam_baseline")
        checks.create_org(session, "bench-platform", "platform")
        _, key = checks.create_key(session, "bench-platform", "platform")
        session.commit()
        hashes = make_data(count)
        matcher = Matcher(seq=registry.current_seq(session), sets={hash_set.id: hash_set})
        matcher.pdq = PdqIndex(hashes)
        code = matcher._code("csam_baseline")
        matcher.pdq_payload.extend(
            np.full(count, hash_set.id), np.arange(count), np.full(count, code)
        )
        # every entry also has an MD5 (as entries made from files do)
        digests = np.frombuffer(np.random.default_rng(11).bytes(16 * count), dtype="S16")
        order = np.argsort(digests, kind="stable")
        md5 = ExactIndex.from_arrays(
            {"md5.keys": digests[order].view(np.uint8), "md5.slots": order}, "md5", 16
        )
        md5_payload = matcher.exact["md5"][1]
        md5_payload.extend(np.full(count, hash_set.id), np.arange(count), np.full(count, code))
        matcher.exact["md5"] = (md5, md5_payload)
        np.save(workdir / "md5.npy", digests[:: max(1, count // 10_000)][:10_000])
        (workdir / "index").mkdir()
        matcher.save(workdir / "index" / f"matcher-{matcher.seq}.idx")
    engine.dispose()
    near, misses = make_queries(hashes, 3000, seed=5)
    np.save(workdir / "near.npy", near)
    np.save(workdir / "misses.npy", misses)
    return url, key


def bodies(workdir: Path, per_request: int, count: int = 3000, kinds: str = "pdq") -> Path:
    """Request bodies: items with a PDQ hash, an MD5 or both (a third of each kind listed)."""
    from meldpunt.index import hashes_to_hex

    near, misses = np.load(workdir / "near.npy"), np.load(workdir / "misses.npy")
    pdq = hashes_to_hex(np.concatenate([near[: count // 3], misses[: count - count // 3]]))
    rng = np.random.default_rng(3)
    known = [d.hex() for d in np.load(workdir / "md5.npy")[: len(pdq) // 3]]
    md5 = known + [rng.bytes(16).hex() for _ in range(len(pdq) - len(known))]
    signals = {
        "pdq": [[{"type": "pdq", "value": p}] for p in pdq],
        "md5": [[{"type": "md5", "value": m}] for m in md5],
        "md5+pdq": [
            [{"type": "md5", "value": m}, {"type": "pdq", "value": p}]
            for m, p in zip(md5, pdq, strict=True)
        ],
    }[kinds]
    path = workdir / f"bodies-{kinds}-{per_request}.txt"
    with open(path, "w") as out:
        for _ in range(max(1, count // per_request) if per_request > 1 else count):
            chosen = rng.choice(len(signals), size=per_request, replace=False)
            items = [{"signals": signals[i]} for i in chosen]
            out.write(json.dumps({"items": items}) + "\n")
    return path


def start_server(url: str, workdir: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """`meldpunt serve` as an operator runs it, configured by environment variables."""
    env = {
        **os.environ,
        "MELDPUNT_DATA_DIR": str(workdir),
        "MELDPUNT_DATABASE_URL": url,
        "MELDPUNT_RATE_PER_SECOND": "0",
        "MELDPUNT_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "meldpunt.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return subprocess.Popen(command, env=env)


def wait_ready(port: int, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the service did not become ready")


def wrk(port: int, script: Path, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": float(errors.group(1)) if errors else 0.0,
        "socket_errors": float(sum(int(g) for g in socket_errors.groups()))
        if socket_errors
        else 0.0,
    }


def rss(pid: int) -> int:
    """Resident bytes of a process and its children (uvicorn's workers)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{current}/task/{current}/children") as handle:
                pids.extend(int(c) for c in handle.read().split())
        except OSError:
            continue
    return total


def chart(results: dict, path: Path) -> None:
    """Throughput of each load against its goal, and resident memory over the soak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = [
        ("single", "single checks/s", "requests_per_s", 2000),
        ("batch", "PDQ batches, hashes/s", "hashes_per_s", 50_000),
        ("batch_md5", "MD5 batches, hashes/s", "hashes_per_s", 50_000),
        ("batch_md5+pdq", "MD5+PDQ batches, hashes/s", "hashes_per_s", 50_000),
    ]
    present = [(label, r[field], goal) for k, label, field, goal in loads if (r := results.get(k))]
    if single := results.get("single"):  # the latency goal beside the rate
        present[0] = (f"single checks/s\n(p99 {single['p99_ms']:.1f} ms, goal 20)", *present[0][1:])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [p[0] for p in present]
    left.barh(labels, [p[1] / p[2] * 100 for p in present], color="#3a7")
    left.axvline(100, color="black", linestyle="--", linewidth=1)
    left.set_xlabel("% of the goal (dashed: the goal)")
    for y, (_, value, _) in enumerate(present):
        left.text(1, y, f"{value:,.0f}", va="center")
    left.set_title(
        f"{results['hashes']:,} hashes, {results['workers']} workers, {results['database']}"
    )
    samples = results.get("soak", {}).get("samples", [])
    if samples:
        right.plot([t for t, _ in samples], [m for _, m in samples], marker=".")
        right.set_ylim(0, max(m for _, m in samples) * 1.1)
    right.set_xlabel("soak seconds")
    right.set_ylabel("resident MB (all processes)")
    right.set_title("memory over the soak")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--hashes", type=int, default=10_000_000)
    parser.add_argument("--duration", type=int, default=30, help="seconds per load test")
    parser.add_argument("--soak", type=int, default=600, help="seconds of soak")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=18_321)
    parser.add_argument("--workers", type=int, default=2, help="service processes")
    parser.add_argument(
        "--postgresql",
        metavar="URL",
        nargs="?",
        const="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="run on PostgreSQL (as several replicas would) instead of SQLite",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="meldpunt-bench-"))
    try:
        print(f"building a registry of {args.hashes:,} synthetic hashes ...", flush=True)
        url, key = setup(workdir, args.hashes, args.postgresql)
        single = workdir / "single.lua"
        single.write_text(LUA % {"bodies": bodies(workdir, 1), "key": key})
        batches = {}
        for kinds in ("pdq", "md5", "md5+pdq"):
            batches[kinds] = workdir / f"batch-{kinds}.lua"
            path = bodies(workdir, 1000, 30_000, kinds)
            batches[kinds].write_text(LUA % {"bodies": path, "key": key})
        server = start_server(url, workdir, args.port, args.workers)
        try:
            started = time.monotonic()
            wait_ready(args.port)
            print(f"service ready in {time.monotonic() - started:.1f} s", flush=True)
            results: dict[str, object] = {
                "hashes": args.hashes,
                "workers": args.workers,
                "database": "postgresql" if args.postgresql else "sqlite",
            }
            results["single"] = wrk(args.port, single, args.duration, args.connections)
            print("single:", results["single"], flush=True)
            for kinds, script in batches.items():
                b = wrk(args.port, script, args.duration, 4)
                b["items_per_s"] = b["requests_per_s"] * 1000
                b["hashes_per_s"] = b["items_per_s"] * len(kinds.split("+"))
                results["batch" if kinds == "pdq" else f"batch_{kinds}"] = b
                print(f"batches ({kinds}):", b, flush=True)
            samples: list[tuple[float, int]] = []
            soak_errors = 0.0
            soak_start = time.monotonic()
            while time.monotonic() - soak_start < args.soak:
                part = wrk(args.port, single, min(10, args.soak), args.connections)
                soak_errors += part["errors"] + part["socket_errors"]
                samples.append((time.monotonic() - soak_start, rss(server.pid)))
            first, last = samples[0][1], samples[-1][1]  # the whole process tree
            results["soak"] = {
                "seconds": args.soak,
                "rss_first_mb": first / 2**20,
                "rss_last_mb": last / 2**20,
                "growth": (last - first) / first,
                "errors": soak_errors,
                "samples": [(round(t), round(m / 2**20, 1)) for t, m in samples],
            }
            print("soak:", {k: v for k, v in results["soak"].items() if k != "samples"}, flush=True)  # type: ignore[union-attr]
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "service.json").write_text(json.dumps(results, indent=2))
        chart(results, args.out / "service.png")
        print(f"wrote {args.out / 'service.json'} and service.png")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
