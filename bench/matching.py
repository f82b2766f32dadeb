"""Matching benchmark: meldpunt's PDQ index against ThreatExchange's PDQIndex (FAISS multi-index
hashing, what Meta's HMA uses), on the same synthetic data in the same run.

Data: N hashes, 80% uniform random and 20% in clusters of near-duplicates (members 1-24 bits from
their centre), as real lists have. Queries: near duplicates of listed hashes at distance 0-31,
and misses (random hashes). Each implementation runs in its own process (so that its memory can be
measured alone) on the same files; recall is measured against brute force.

    .venv/bin/python bench/matching.py                 # 1M and 10M hashes (about 10 minutes)
    .venv/bin/python bench/matching.py --sizes 200000  # quick
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

RADIUS = 31
SINGLE_QUERIES = 1_000
BATCH_QUERIES = 20_000
RECALL_QUERIES = 200


def make_data(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64 - 1, size=(n, 4), dtype=np.uint64, endpoint=True)
    clustered = n // 5
    centres = hashes[rng.integers(0, n, max(1, clustered // 20))]
    members = centres[rng.integers(0, len(centres), clustered)].copy()
    flip_bits(members, rng.integers(1, 25, clustered), rng)
    hashes[rng.choice(n, clustered, replace=False)] = members
    return hashes


def flip_bits(rows: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> None:
    for row, count in zip(rows, counts, strict=True):
        for bit in rng.choice(256, size=int(count), replace=False):
            row[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)


def make_queries(hashes: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    near = hashes[rng.integers(0, len(hashes), count)].copy()
    flip_bits(near, rng.integers(0, RADIUS + 1, count), rng)
    misses = rng.integers(0, 2**64 - 1, size=(count, 4), dtype=np.uint64, endpoint=True)
    return near, misses


def brute_force(hashes: np.ndarray, query: np.ndarray) -> set[int]:
    distance = np.zeros(len(hashes), dtype=np.int32)
    for w in range(4):
        distance += np.bitwise_count(hashes[:, w] ^ query[w]).astype(np.int32)
    return set(np.nonzero(distance <= RADIUS)[0].tolist())


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- the two implementations, each behind the same three calls ------------------------------------


class Meldpunt:
    name = "meldpunt"

    def build(self, hashes: np.ndarray) -> None:
        from meldpunt.index import PdqIndex

        self.index = PdqIndex(hashes)

    def query(self, query: np.ndarray) -> set[int]:
        return {int(s) for s in self.index.query_batch(query.reshape(1, 4), RADIUS).slot}

    def batch(self, queries: np.ndarray) -> list[set[int]]:
        matches = self.index.query_batch(queries, RADIUS)
        out: list[set[int]] = [set() for _ in range(len(queries))]
        for q, s in zip(matches.query.tolist(), matches.slot.tolist(), strict=True):
            out[q].add(s)
        return out


class Peer:
    name = "threatexchange PDQIndex"

    def build(self, hashes: np.ndarray) -> None:
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex

        from meldpunt.index import hashes_to_hex

        self.index = PDQIndex(zip(hashes_to_hex(hashes), range(len(hashes)), strict=True))

    def query(self, query: np.ndarray) -> set[int]:
        from meldpunt.index import hashes_to_hex

        return {m.metadata for m in self.index.query(hashes_to_hex(query.reshape(1, 4))[0])}

    def batch(self, queries: np.ndarray) -> list[set[int]]:
        from meldpunt.index import hashes_to_hex

        values = hashes_to_hex(queries)
        found = self.index.index.search_with_distance_in_result(values, RADIUS)
        return [{self.index.local_id_to_entry[i][1] for i, _, _ in found[v]} for v in values]


def worker(kind: str, workdir: Path) -> dict[str, float]:
    import gc

    impl = Meldpunt() if kind == "meldpunt" else Peer()
    near, misses = np.load(workdir / "near.npy"), np.load(workdir / "misses.npy")
    truth = json.loads((workdir / "truth.json").read_text())
    impl.build(make_data(1_000))  # imports and first-call set-up are not measured
    gc.collect()
    # Memory: everything the index holds once built, the hashes included, the input not.
    before = rss_bytes()
    hashes = np.load(workdir / "hashes.npy")
    count = len(hashes)
    start = time.perf_counter()
    impl.build(hashes)
    build_s = time.perf_counter() - start
    del hashes
    gc.collect()
    memory = rss_bytes() - before
    latencies = {}
    for label, queries in (("near", near), ("miss", misses)):
        times = []
        for query in queries[:SINGLE_QUERIES]:
            t = time.perf_counter()
            impl.query(query)
            times.append(time.perf_counter() - t)
        latencies[label] = times
    batch = np.concatenate([near, misses])[:BATCH_QUERIES]
    start = time.perf_counter()
    impl.batch(batch)
    batch_qps = len(batch) / (time.perf_counter() - start)
    found = impl.batch(near[:RECALL_QUERIES])
    expected = sum(len(t) for t in truth)
    recalled = sum(len(set(t) & f) for t, f in zip(truth, found, strict=True))
    extra = sum(len(f - set(t)) for t, f in zip(truth, found, strict=True))
    return {
        "build_s": build_s,
        "bytes_per_hash": memory / count,
        "near_p50_ms": float(np.percentile(latencies["near"], 50) * 1e3),
        "near_p99_ms": float(np.percentile(latencies["near"], 99) * 1e3),
        "miss_p50_ms": float(np.percentile(latencies["miss"], 50) * 1e3),
        "miss_p99_ms": float(np.percentile(latencies["miss"], 99) * 1e3),
        "single_qps": SINGLE_QUERIES / sum(latencies["near"]),
        "batch_qps": batch_qps,
        "recall": recalled / expected if expected else 1.0,
        "false_matches": extra,
    }


def run_size(n: int, workdir: Path, kinds: list[str]) -> dict[str, dict[str, float]]:
    hashes = make_data(n)
    near, misses = make_queries(hashes, max(BATCH_QUERIES, SINGLE_QUERIES), seed=2)
    np.save(workdir / "hashes.npy", hashes)
    np.save(workdir / "near.npy", near)
    np.save(workdir / "misses.npy", misses)
    truth = [sorted(brute_force(hashes, q)) for q in near[:RECALL_QUERIES]]
    (workdir / "truth.json").write_text(json.dumps(truth))
    results = {}
    for kind in kinds:
        command = [sys.executable, __file__, "--worker", kind, "--workdir", str(workdir)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def report(all_results: dict[int, dict[str, dict[str, float]]], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title=f"PDQ index, threshold {RADIUS}, 2 cores")
    columns = ("hashes", "implementation", "build s", "bytes/hash", "near p50 ms", "near p99 ms",
               "miss p50 ms", "miss p99 ms", "batch q/s", "recall", "batch vs peer")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for n, results in all_results.items():
        peer = results.get("peer")
        for kind, r in results.items():
            ratio = f"{r['batch_qps'] / peer['batch_qps']:.1f}x" if peer and kind != "peer" else ""
            table.add_row(f"{n:,}", "meldpunt" if kind == "meldpunt" else Peer.name,
                          f"{r['build_s']:.1f}", f"{r['bytes_per_hash']:.0f}",
                          f"{r['near_p50_ms']:.3f}", f"{r['near_p99_ms']:.3f}",
                          f"{r['miss_p50_ms']:.3f}", f"{r['miss_p99_ms']:.3f}",
                          f"{r['batch_qps']:,.0f}", f"{r['recall']:.4f}", ratio)  # fmt: skip
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "matching.json").write_text(
        json.dumps({str(k): v for k, v in all_results.items()}, indent=2)
    )
    chart(all_results, out / "matching.png")
    console.print(f"wrote {out / 'matching.json'} and {out / 'matching.png'}")


def chart(all_results: dict[int, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(all_results)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    metrics = (("batch_qps", "batch queries per second (log)", True),
               ("near_p50_ms", "single query p50, ms (log)", True),
               ("bytes_per_hash", "resident bytes per hash", False))  # fmt: skip
    for ax, (metric, label, log) in zip(axes, metrics, strict=True):
        for k, kind in enumerate(("peer", "meldpunt")):
            values = [all_results[n].get(kind, {}).get(metric, 0) for n in sizes]
            bars = ax.bar(np.arange(len(sizes)) + (k - 0.5) * 0.38, values, 0.38,
                          label="meldpunt" if kind == "meldpunt" else Peer.name)  # fmt: skip
            ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_xticks(range(len(sizes)), [f"{n:,}" for n in sizes])
        if log:
            ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--only", choices=["meldpunt", "peer"], help="run one implementation")
    parser.add_argument("--worker", choices=["meldpunt", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.workdir)))
        return
    kinds = [args.only] if args.only else ["meldpunt", "peer"]
    all_results = {}
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            print(f"{n:,} hashes ...", flush=True)
            all_results[n] = run_size(n, Path(tmp), kinds)
    report(all_results, args.out)


if __name__ == "__main__":
    main()
