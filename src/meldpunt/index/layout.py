"""How a PDQ index's chunk tables are laid out, planned and checked (see ``_mih.c``).

The layout is chosen from the number of hashes alone, so a snapshot only needs to store the
chunk widths; ``check_arrays`` verifies arrays read from a file before the C loops see them.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _mih
from .snapshot import SnapshotError

HASH_WORDS = 4
# The memory the index may take per hash when choosing its chunks: wider chunks mean fewer
# candidates to compare but bigger tables (2 bytes per possible chunk value).
BYTES_PER_HASH_BUDGET = 96
BLOCK = 64  # buckets per 4-byte block base (see _mih.c)
MAX_CHUNKS = 64  # as _mih.c allows
MAX_WIDTH = 30

Tables = tuple[tuple[int, ...], NDArray[Any], NDArray[Any], NDArray[Any]]


def _even_widths(chunks: int) -> tuple[int, ...]:
    widths = [256 // chunks] * chunks
    for i in range(256 - sum(widths)):
        widths[i] += 1
    return tuple(widths)


def id_bytes_for(count: int) -> int:
    return 3 if count < (1 << 24) else 4


def base_entries(widths: tuple[int, ...]) -> int:
    return sum(((1 << w) >> 6) + 2 for w in widths)


def bucket_entries(widths: tuple[int, ...]) -> int:
    return sum((1 << w) + 1 for w in widths)


def bytes_per_hash(widths: tuple[int, ...], count: int) -> float:
    """Hash, alive flag, slot ids and bucket starts, per hash (2-byte bucket starts)."""
    tables = 2 * bucket_entries(widths) + 4 * base_entries(widths)
    return 33 + id_bytes_for(count) * len(widths) + tables / max(count, 1)


def choose_widths(count: int) -> tuple[int, ...]:
    """The fewest chunks (so the widest, most selective ones) that fit the memory budget."""
    for chunks in range(9, 17):
        widths = _even_widths(chunks)
        if bytes_per_hash(widths, count) <= BYTES_PER_HASH_BUDGET:
            return widths
    return _even_widths(16)


def _probes(width: int, units: int) -> int:
    return sum(math.comb(width, k) for k in range(units))


@lru_cache(maxsize=512)
def plan_units(widths: tuple[int, ...], radius: int, count: int) -> tuple[int, ...]:
    """Bit budgets per chunk (units - 1 = bits that may differ) adding up to radius + 1,
    placed where they cost the fewest probes and candidates."""
    units = [0] * len(widths)

    def cost(i: int, u: int) -> float:
        return float(_probes(widths[i], u) * (1.0 + count / 2 ** widths[i]))

    for _ in range(radius + 1):
        best = min(range(len(widths)), key=lambda i: cost(i, units[i] + 1) - cost(i, units[i]))
        units[best] += 1
    return tuple(units)


def expected_work(widths: tuple[int, ...], units: tuple[int, ...], count: int) -> float:
    pairs = zip(widths, units, strict=True)
    return float(sum(_probes(w, u) * (1.0 + count / 2**w) for w, u in pairs))


def _is(array: NDArray[Any], dtypes: tuple[type, ...], shape: tuple[int, ...]) -> bool:
    return array.shape == shape and array.dtype in dtypes


def check_arrays(arrays: dict[str, NDArray[Any]]) -> tuple[NDArray[Any], NDArray[Any], Tables]:
    """Hashes, alive flags and tables from a snapshot's arrays, each checked: dtypes, shapes,
    widths, and (in C, one pass) that every bucket start and slot id lies within the hashes.
    Raises ``SnapshotError`` saying what does not fit."""
    try:
        hashes, alive, raw_widths = arrays["hashes"], arrays["alive"], arrays["widths"]
        base, rel, ids = arrays["base"], arrays["rel"], arrays["ids"]
    except KeyError as exc:
        raise SnapshotError(f"the snapshot lacks the array {exc}") from exc
    if raw_widths.ndim != 1 or raw_widths.size > MAX_CHUNKS or raw_widths.dtype.kind not in "iu":
        raise SnapshotError("the snapshot's chunk widths are damaged")
    widths = tuple(int(w) for w in raw_widths)
    if widths and (sum(widths) != 256 or not all(1 <= w <= MAX_WIDTH for w in widths)):
        raise SnapshotError("the snapshot's chunk widths are damaged")
    if hashes.ndim != 2 or not _is(hashes, (np.uint64,), (hashes.shape[0], HASH_WORDS)):
        raise SnapshotError("the snapshot's hashes are not an (n, 4) uint64 array")
    count = int(hashes.shape[0])
    if count >= 1 << 32 or not _is(alive, (np.uint8, np.bool_), (count,)):
        raise SnapshotError("the snapshot's alive flags do not fit its hashes")
    if widths:
        id_bytes = id_bytes_for(count)
        fits = (
            _is(base, (np.uint32,), (base_entries(widths),))
            and _is(rel, (np.uint16, np.uint32), (bucket_entries(widths),))
            and _is(ids, (np.uint8,), (id_bytes * count * len(widths) + 4,))
        )
        if not fits:
            raise SnapshotError("the snapshot's chunk tables do not fit its hashes")
        empty = np.zeros(0, np.uint8)
        problem = _mih.check(hashes, empty, widths, base, rel, rel.dtype.itemsize, ids, id_bytes)
        if problem is not None:
            raise SnapshotError(f"the snapshot's chunk tables are damaged ({problem})")
    return hashes, alive, (widths, base, rel, ids)
