"""Run every benchmark under bench/ (what `make bench` does). Figures go to bench/results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "hashing.py",
    "matching.py",
    "takedown.py",
    "monitor.py",
    "triage.py",
    "detection.py",
    "exchange.py",
]


def main() -> int:
    extra = sys.argv[1:]
    failed = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        failed += subprocess.call([sys.executable, str(HERE / name), *extra]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
