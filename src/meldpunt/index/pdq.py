"""An exact Hamming-radius index for PDQ hashes (multi-index hashing, C search loops).

Slots: every hash added gets the next slot number (0, 1, 2, ...), which never changes; callers
keep whatever a slot stands for. Removing a slot marks it dead. New hashes go to a small
"recent" area searched by brute force; ``compact()`` (automatic once the area is large) folds
them into the chunk tables without touching the slots.

Exact for every radius: the chunk tables are searched with per-chunk bit budgets that add up to
radius + 1 (see ``_mih.c``); when that would touch a large share of the hashes anyway (radius
well above PDQ's usual 31), the index compares with every hash instead.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _mih
from .layout import (
    HASH_WORDS,
    Tables,
    base_entries,
    bucket_entries,
    check_arrays,
    choose_widths,
    expected_work,
    id_bytes_for,
    plan_units,
)
from .snapshot import SnapshotError

MAX_RADIUS = 256
# Recent hashes are compared one by one; past this many they are folded into the tables.
RECENT_LIMIT = 65_536
SMALL_INDEX = 4_096  # below this many hashes, comparing with every one is the fastest
BATCH_MIN = 256  # from this many queries on, a search may sort its memory accesses instead
DAMAGED_TABLES = (
    "the index's chunk tables are damaged (was its snapshot changed on disk after loading?); "
    "load another snapshot or rebuild the index"
)


def hashes_from_hex(values: Iterable[str]) -> NDArray[np.uint64]:
    """An (n, 4) uint64 array from 64-hex-digit strings (word 0 = the first 16 digits)."""
    values = list(values)
    if not values:
        return np.zeros((0, HASH_WORDS), dtype=np.uint64)
    joined = "".join(values)
    if len(joined) != 64 * len(values):
        raise ValueError("every PDQ hash is 64 hex digits")
    raw = np.frombuffer(bytes.fromhex(joined), dtype=">u8").reshape(-1, HASH_WORDS)
    return raw.astype(np.uint64)


def hashes_to_hex(hashes: NDArray[np.uint64]) -> list[str]:
    raw = np.ascontiguousarray(hashes, dtype=">u8").tobytes().hex()
    return [raw[i : i + 64] for i in range(0, len(raw), 64)]


@dataclass(frozen=True)
class Matches:
    """Hits of a batch query: parallel arrays, sorted by query then distance then slot."""

    query: NDArray[np.int32]
    slot: NDArray[np.uint32]
    distance: NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.query.shape[0])

    def for_query(self, q: int) -> list[tuple[int, int]]:
        lo, hi = np.searchsorted(self.query, [q, q + 1])
        return [
            (int(s), int(d)) for s, d in zip(self.slot[lo:hi], self.distance[lo:hi], strict=True)
        ]


class LoopChooser:
    """Which of the two search loops is faster on this machine, measured on real batches.

    Both give the same answer; which is faster depends on the machine's memory system (one
    machine of this project measured the sorted loop faster, another the prefetching loop, by
    up to 1.7x). So every large search is timed, cost per query is averaged per loop, and the
    cheaper loop is used, with the other one tried now and then in case that changes.
    """

    RETRY_EVERY = 32

    def __init__(self) -> None:
        self.cost: list[float | None] = [None, None]  # seconds per query: prefetching, sorted
        self.calls = 0

    def pick(self) -> int:
        self.calls += 1
        untried = [i for i, c in enumerate(self.cost) if c is None]
        if untried:
            return untried[0]
        best = min((0, 1), key=lambda i: self.cost[i] or 0.0)
        return 1 - best if self.calls % self.RETRY_EVERY == 0 else best

    def record(self, loop: int, seconds: float, queries: int) -> None:
        per_query = seconds / max(queries, 1)
        old = self.cost[loop]
        self.cost[loop] = per_query if old is None else 0.7 * old + 0.3 * per_query


class PdqIndex:
    """Exact radius search over PDQ hashes; see the module docstring."""

    _hashes: NDArray[np.uint64]
    _alive: NDArray[np.uint8]
    _widths: tuple[int, ...]
    _base: NDArray[Any]
    _rel: NDArray[Any]
    _ids: NDArray[Any]

    def __init__(self, hashes: NDArray[np.uint64] | None = None, *, threads: int | None = None):
        self._start(threads)
        base = np.zeros((0, HASH_WORDS), np.uint64) if hashes is None else hashes
        self._set_tables(np.ascontiguousarray(base, dtype=np.uint64), None)

    # -- construction -------------------------------------------------------------------------

    def _start(self, threads: int | None) -> None:
        self._threads = threads or os.cpu_count() or 1
        self._chooser = LoopChooser()
        self._recent: list[NDArray[np.uint64]] = []
        self._recent_array = np.zeros((0, HASH_WORDS), dtype=np.uint64)
        self._recent_count = 0
        # One thread pool for all of this index's batches, made at the first batch that is
        # split; its threads end when the index is gone. Scratch buffers of the sorted loop
        # are kept for reuse, at most one per thread, and freed with the index.
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._workspaces: list[Any] = []

    def _set_tables(
        self, hashes: NDArray[np.uint64], alive: NDArray[np.uint8] | None,
        tables: Tables | None = None,
    ) -> None:  # fmt: skip
        self._hashes = hashes
        self._plans: dict[int, NDArray[np.int32] | None] = {}  # per radius, for these tables
        count = hashes.shape[0]
        self._alive = np.ones(count, dtype=np.uint8) if alive is None else alive
        self._dead = int(count - int(self._alive.sum()))
        if tables is not None:
            self._widths, self._base, self._rel, self._ids = tables
        elif count >= SMALL_INDEX:
            self._widths = choose_widths(count)
            self._build_tables(hashes)
        else:
            self._widths = ()
            self._base = np.zeros(0, dtype=np.uint32)
            self._rel = np.zeros(0, dtype=np.uint16)
            self._ids = np.zeros(0, dtype=np.uint8)

    def _build_tables(self, hashes: NDArray[np.uint64]) -> None:
        count = hashes.shape[0]
        widths = self._widths
        bases, buckets = base_entries(widths), bucket_entries(widths)
        id_bytes = id_bytes_for(count)
        self._ids = np.empty(id_bytes * count * len(widths) + 4, dtype=np.uint8)
        self._base = np.empty(bases, dtype=np.uint32)
        for rel_dtype in (np.uint16, np.uint32):  # 4-byte starts only for very duplicated data
            self._rel = np.empty(buckets, dtype=rel_dtype)
            itemsize = self._rel.dtype.itemsize
            if _mih.build(hashes, widths, self._base, self._rel, itemsize, self._ids, id_bytes):
                return
        raise AssertionError("4-byte bucket starts cannot overflow")

    @classmethod
    def from_hex(cls, values: Iterable[str], **kwargs: Any) -> PdqIndex:
        return cls(hashes_from_hex(values), **kwargs)

    def __len__(self) -> int:
        """Live hashes."""
        return self.slots - self._dead

    @property
    def slots(self) -> int:
        return int(self._hashes.shape[0]) + self._recent_count

    @property
    def nbytes(self) -> int:
        parts = (self._hashes, self._alive, self._base, self._rel, self._ids, self._recent_array)
        return sum(int(p.nbytes) for p in parts)

    def add(self, hashes: NDArray[np.uint64] | Sequence[str]) -> NDArray[np.int64]:
        """Add hashes; returns their slots."""
        if not isinstance(hashes, np.ndarray):
            hashes = hashes_from_hex(hashes)
        hashes = np.ascontiguousarray(hashes, dtype=np.uint64).reshape(-1, HASH_WORDS)
        first = self.slots
        self._recent.append(hashes)
        self._recent_count += hashes.shape[0]
        self._recent_alive_extend(hashes.shape[0])
        if self._recent_count > max(RECENT_LIMIT, self._hashes.shape[0] // 16):
            self.compact()
        return np.arange(first, first + hashes.shape[0], dtype=np.int64)

    def _recent_alive_extend(self, n: int) -> None:
        self._alive = np.concatenate([self._alive, np.ones(n, dtype=np.uint8)])
        self._recent_array = np.zeros((0, HASH_WORDS), dtype=np.uint64)  # rebuilt lazily

    def remove(self, slots: Iterable[int]) -> int:
        """Mark slots dead; returns how many were alive."""
        chosen = np.fromiter((int(s) for s in slots), dtype=np.int64)
        if chosen.size == 0:
            return 0
        if chosen.min() < 0 or chosen.max() >= self.slots:
            raise IndexError("no such slot")
        removed = int(self._alive[chosen].sum())
        self._alive[chosen] = 0
        self._dead += removed
        return removed

    def is_alive(self, slot: int) -> bool:
        return bool(self._alive[slot])

    def hash_at(self, slot: int) -> str:
        main = self._hashes.shape[0]
        row = self._hashes[slot] if slot < main else self._recent_hashes()[slot - main]
        return hashes_to_hex(row.reshape(1, HASH_WORDS))[0]

    def _recent_hashes(self) -> NDArray[np.uint64]:
        if self._recent_array.shape[0] != self._recent_count:
            parts = self._recent or [np.zeros((0, HASH_WORDS), np.uint64)]
            self._recent_array = np.ascontiguousarray(np.concatenate(parts))
            self._recent = [self._recent_array]
        return self._recent_array

    def compact(self) -> None:
        """Fold recent hashes into the chunk tables (slots stay the same)."""
        if self._recent_count == 0:
            return
        merged = np.ascontiguousarray(np.concatenate([self._hashes, self._recent_hashes()]))
        alive = self._alive
        self._recent = []
        self._recent_array = np.zeros((0, HASH_WORDS), dtype=np.uint64)
        self._recent_count = 0
        self._set_tables(merged, alive)

    # -- search -------------------------------------------------------------------------------

    def query(self, value: str, radius: int = 31) -> list[tuple[int, int]]:
        """(slot, distance) of every live hash within ``radius`` bits of ``value``."""
        return self.query_batch(hashes_from_hex([value]), radius).for_query(0)

    def query_batch(self, queries: NDArray[np.uint64] | Sequence[str], radius: int = 31) -> Matches:
        if not isinstance(queries, np.ndarray):
            queries = hashes_from_hex(queries)
        if not 0 <= radius <= MAX_RADIUS:
            raise ValueError(f"radius must be 0..{MAX_RADIUS}")
        queries = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, HASH_WORDS)
        parts = self._split(queries.shape[0])
        if len(parts) == 1:
            found = [self._search(queries, 0, radius)]
        else:
            found = list(self._executor().map(
                lambda p: self._search(queries[p[0] : p[1]], p[0], radius), parts))  # fmt: skip
        query = np.concatenate([f[0] for f in found])
        slot = np.concatenate([f[1] for f in found])
        distance = np.concatenate([f[2] for f in found])
        order = np.lexsort((slot, distance, query))
        return Matches(query[order], slot[order], distance[order])

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            # a forked child's copy of the pool has no threads: it gets its own
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="pdq-search")
                self._pool_pid = os.getpid()
            return self._pool

    def close(self) -> None:
        """End the search threads and free scratch buffers now rather than when the index is
        collected (searching afterwards starts them again)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._workspaces.clear()

    def _split(self, count: int) -> list[tuple[int, int]]:
        work_per_query = max(1, self._hashes.shape[0] // 10_000)
        if self._threads <= 1 or count * work_per_query < 64:
            return [(0, count)]
        step = -(-count // self._threads)
        return [(i, min(count, i + step)) for i in range(0, count, step)]

    def _plan(self, radius: int) -> NDArray[np.int32] | None:
        """Per-chunk bit budgets for ``radius``, or None when comparing with every hash is
        cheaper than probing the tables."""
        if radius not in self._plans:
            main, plan = self._hashes.shape[0], None
            if self._widths:
                units = plan_units(self._widths, radius, main)
                if expected_work(self._widths, units, main) < main / 3:
                    plan = np.asarray(units, dtype=np.int32)
            self._plans[radius] = plan
        return self._plans[radius]

    def _search(self, queries: NDArray[np.uint64], first: int, radius: int) -> tuple[Any, ...]:
        results = []
        main = self._hashes.shape[0]
        alive_main = self._alive[:main] if self._dead else np.zeros(0, np.uint8)
        if main:
            units = self._plan(radius)
            if units is not None:
                tables = (self._widths, self._base, self._rel, self._rel.dtype.itemsize,
                          self._ids, id_bytes_for(main))  # fmt: skip
                args = (self._hashes, alive_main, *tables, units, queries, radius)
                if queries.shape[0] < BATCH_MIN:
                    results.append(self._run(_mih.search, queries, *args))
                else:
                    loop = self._chooser.pick()
                    started = time.perf_counter()
                    if loop == 0:
                        results.append(self._run(_mih.search, queries, *args))
                    else:
                        results.append(self._run_sorted(queries, *args))
                    self._chooser.record(loop, time.perf_counter() - started, queries.shape[0])
            else:
                results.append(self._run(_mih.scan, queries, self._hashes, alive_main,
                                         queries, radius, 0))  # fmt: skip
        if self._recent_count:
            recent = self._recent_hashes()
            results.append(self._run(_mih.scan, queries, recent, self._alive[main:], queries,
                                     radius, main))  # fmt: skip
        if not results:
            empty = np.zeros(0, np.int32)
            return empty, np.zeros(0, np.uint32), np.zeros(0, np.uint8)
        if len(results) == 1:
            query, slot, distance = results[0]
            return (query + first if first else query), slot, distance
        query = np.concatenate([r[0] for r in results]) + first
        return (
            query,
            np.concatenate([r[1] for r in results]),
            np.concatenate([r[2] for r in results]),
        )

    def _run_sorted(self, queries: NDArray[np.uint64], *args: Any) -> tuple[Any, ...]:
        try:  # list.pop and list.append are atomic: each workspace serves one search at a time
            workspace = self._workspaces.pop()
        except IndexError:
            workspace = _mih.workspace()
        try:
            return self._run(_mih.search_batch, queries, *args, tail=(workspace,))
        finally:
            if len(self._workspaces) < self._threads:
                self._workspaces.append(workspace)

    @staticmethod
    def _run(
        function: Any, queries: NDArray[np.uint64], *args: Any, tail: tuple[Any, ...] = ()
    ) -> tuple[Any, ...]:
        capacity = max(256, 16 * queries.shape[0])
        while True:
            out_q = np.empty(capacity, np.int32)
            out_s = np.empty(capacity, np.uint32)
            out_d = np.empty(capacity, np.uint8)
            count = function(*args, out_q, out_s, out_d, *tail)
            if count < 0:  # the C loops found a bucket start or slot id out of range
                raise SnapshotError(DAMAGED_TABLES)
            if count <= capacity:
                return out_q[:count], out_s[:count], out_d[:count]
            capacity = count

    # -- snapshots ----------------------------------------------------------------------------

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Everything needed to restore this index (after folding in recent hashes)."""
        self.compact()
        return {
            "hashes": self._hashes,
            "alive": self._alive,
            "base": self._base,
            "rel": self._rel,
            "ids": self._ids,
            "widths": np.asarray(self._widths, dtype=np.int32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]], **kwargs: Any) -> PdqIndex:
        """The index saved by ``arrays()``; raises ``SnapshotError`` when they are damaged."""
        hashes, alive, tables = check_arrays(arrays)
        index = cls.__new__(cls)
        index._start(kwargs.get("threads"))
        index._set_tables(hashes, (np.asarray(alive) != 0).astype(np.uint8), tables)
        return index
