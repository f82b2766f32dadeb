"""Two builds of the service side by side: `bench/service.py` results (its `service.json`) of a
run of each, in the same session on the same data, as a table of ratios and a chart.

    .venv/bin/python bench/compare_service.py BEFORE.json... --after AFTER.json... \
        --out bench/results/service-compare.png

Several files per side (alternating runs) are averaged; the table gives each side's range.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

LOADS = [
    ("single", "single checks/s", "requests_per_s"),
    ("batch", "PDQ batches, hashes/s", "hashes_per_s"),
    ("batch_md5", "MD5 batches, hashes/s", "hashes_per_s"),
    ("batch_md5+pdq", "MD5+PDQ batches, hashes/s", "hashes_per_s"),
]


def _values(runs: list[dict], key: str, field: str) -> list[float]:
    return [float(run[key][field]) for run in runs if key in run]


def _spread(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}" if len(values) > 1 else f"{values[0]:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before", nargs="+", type=Path)
    parser.add_argument("--after", nargs="+", type=Path, required=True)
    parser.add_argument("--labels", nargs=2, default=["before", "after"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    before = [json.loads(p.read_text()) for p in args.before]
    after = [json.loads(p.read_text()) for p in args.after]

    rows = []
    print(f"| load | {args.labels[0]} | {args.labels[1]} | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for key, label, field in LOADS:
        old, new = _values(before, key, field), _values(after, key, field)
        if not old or not new:
            continue
        ratio = statistics.mean(new) / statistics.mean(old)
        rows.append((label, statistics.mean(old), statistics.mean(new)))
        shown = [_spread(v) for v in (old, new)]
        print(f"| {label} | {shown[0]} | {shown[1]} | {ratio:.2f}x |")
    for key, label in (("single", "single p99 ms"),):
        old, new = _values(before, key, "p99_ms"), _values(after, key, "p99_ms")
        print(f"| {label} | {statistics.mean(old):.1f} | {statistics.mean(new):.1f} | |")
    errors = [sum(r.get(k, {}).get("errors", 0) for k, _, _ in LOADS) for r in before + after]
    print(f"errors (all runs): {sum(errors):.0f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(8, 3.6))
    positions = range(len(rows))
    axis.barh([p + 0.2 for p in positions], [r[1] for r in rows], 0.4, label=args.labels[0])
    axis.barh([p - 0.2 for p in positions], [r[2] for r in rows], 0.4, label=args.labels[1])
    axis.set_yticks(list(positions), [r[0] for r in rows])
    axis.set_xscale("log")
    axis.set_xlabel("per second (log scale), mean of the runs")
    axis.legend(loc="lower right")
    first = before[0]
    axis.set_title(f"{first['hashes']:,} hashes, {first['workers']} workers, {first['database']}")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
