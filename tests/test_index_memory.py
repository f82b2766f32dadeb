"""Batch search keeps its memory flat: threads and scratch buffers are reused, not leaked.

The memory is measured in a child process (this file run as a script), so that what pytest and
other tests hold does not blur the figure.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading

import numpy as np
import psutil
import pytest

from meldpunt.index import PdqIndex, pdq

LOOPS = {"prefetching": [0.0, 1.0], "sorted": [1.0, 0.0]}  # LoopChooser costs that pick each
WARM_UP = 200
BATCHES = 2_000
RADIUS = 8  # few probes per query: thousands of batches in seconds


def resident_growth(loop: str) -> dict[str, float]:
    """Runs in the child: MB of resident memory gained over the batches after the warm-up."""
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**64, size=(20_000, 4), dtype=np.uint64)
    index = PdqIndex(hashes, threads=2)
    queries = hashes[: 2 * pdq.BATCH_MIN].copy()  # each of the two threads gets a large part
    queries[:, 0] ^= np.uint64(0xF0F)  # 8 bits from a stored hash
    process = psutil.Process()
    before = 0.0
    for batch in range(WARM_UP + BATCHES):
        if batch == WARM_UP:
            gc.collect()
            before = process.memory_info().rss / 2**20
        index._chooser.cost = list(LOOPS[loop])
        index._chooser.calls = 1
        assert len(index.query_batch(queries, RADIUS)) >= len(queries)
    gc.collect()
    return {
        "growth_mb": process.memory_info().rss / 2**20 - before,
        "threads": threading.active_count(),
    }


@pytest.mark.parametrize("loop", LOOPS)
def test_memory_stays_flat_over_thousands_of_batches(loop: str):
    child = subprocess.run(
        [sys.executable, __file__, loop], capture_output=True, text=True, timeout=600
    )
    assert child.returncode == 0, child.stderr[-3000:]
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    assert measured["growth_mb"] < 4, measured  # before the fix: about 2 MB per 10 batches
    assert measured["threads"] <= 3, measured  # the main thread and one pool of two


def test_the_search_threads_end_with_the_index_or_when_it_is_closed():
    rng = np.random.default_rng(4)
    hashes = rng.integers(0, 2**64, size=(20_000, 4), dtype=np.uint64)
    queries = hashes[: pdq.BATCH_MIN]

    # Indexes of earlier tests in this process (a stopped service's) may not be collected yet.
    gc.collect()
    earlier = set(threading.enumerate())

    def search_threads() -> list[threading.Thread]:
        return [
            t for t in threading.enumerate() if t.name.startswith("pdq-search") and t not in earlier
        ]

    index = PdqIndex(hashes, threads=2)
    for _ in range(3):
        index.query_batch(queries, 31)
    assert len(search_threads()) == 2, "one pool for every batch"
    index.close()
    assert search_threads() == []
    index.query_batch(queries, 31)  # a closed index still searches
    threads = search_threads()
    # a thread pool starts its threads as work arrives: on a busy machine one may do it all
    assert 1 <= len(threads) <= 2
    del index
    gc.collect()
    for thread in threads:
        thread.join(timeout=30)
    assert search_threads() == []


if __name__ == "__main__":
    print(json.dumps(resident_growth(sys.argv[1])))
