"""Damaged snapshot files give a clear error or the right answers, never a crash.

The fuzzing runs in a child process (this file run as a script), so that a segmentation fault
fails the test instead of ending pytest. Three kinds of damage, from a seeded generator:

* ``file``: bytes flipped, the file truncated, regions overwritten (anywhere, or inside one array
  such as the slot id table or the bucket starts). Loading must raise ``SnapshotError`` or give
  exactly the answers of brute force over the original hashes.
* ``unverified``: the same damage loaded with ``verify=False``, as a hostile file whose checksums
  were recomputed would be: an error, or answers in which every hit is a real one.
* ``memory``: the tables changed after loading (a snapshot file changed on disk while it is
  memory-mapped): the search loops must refuse (``SnapshotError``) or answer soundly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from meldpunt.index import ExactIndex, PdqIndex, SnapshotError, load, save
from meldpunt.index import snapshot as snapshot_format

RADIUS = 31
LOOPS = {"prefetching": [0.0, 1.0], "sorted": [1.0, 0.0]}  # LoopChooser costs that pick each


def build_snapshot(path: Path, seed: int = 5) -> dict[str, Any]:
    """A PDQ index (with removed slots) and a SHA-256 index in one snapshot, and what they hold."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=(6_000, 4), dtype=np.uint64)
    hashes[3_000:3_200] = hashes[:200] ^ np.uint64(0xFF)  # near copies: hits at distance 8
    index = PdqIndex(hashes, threads=1)
    removed = rng.choice(len(hashes), 300, replace=False)
    index.remove(removed.tolist())
    digests = [rng.bytes(32) for _ in range(500)]
    exact = ExactIndex(32)
    exact.add(digests, range(500))
    arrays = {**index.arrays(), **exact.arrays("sha256")}
    save(path, arrays, {"seq": 7})
    alive = np.ones(len(hashes), bool)
    alive[removed] = False
    return {"hashes": hashes, "alive": alive, "digests": digests}


def brute(hashes: np.ndarray, alive: np.ndarray, queries: np.ndarray) -> set[tuple[int, int, int]]:
    distance = np.zeros((len(queries), len(hashes)), dtype=np.int64)
    for w in range(4):
        distance += np.bitwise_count(queries[:, w, None] ^ hashes[None, :, w]).astype(np.int64)
    q, s = np.nonzero((distance <= RADIUS) & alive[None, :])
    return {(int(a), int(b), int(distance[a, b])) for a, b in zip(q, s, strict=True)}


def answers(index: PdqIndex, queries: np.ndarray, loop: str) -> list[tuple[int, int, int]]:
    index._chooser.cost = list(LOOPS[loop])  # large batches: the loop measured cheaper is used
    index._chooser.calls = 1
    found = index.query_batch(queries, RADIUS)
    return list(
        zip(found.query.tolist(), found.slot.tolist(), found.distance.tolist(), strict=True)
    )


def all_real(index: PdqIndex, queries: np.ndarray, hits: list[tuple[int, int, int]]) -> bool:
    """Every hit names a live hash of what was loaded, at its true distance within the radius."""
    if not hits:
        return True
    q, s, d = (np.asarray(column) for column in zip(*hits, strict=True))
    hashes, alive = np.asarray(index._hashes), np.asarray(index._alive)
    if s.max() >= len(hashes):
        return False
    distance = np.bitwise_count(queries[q] ^ hashes[s]).sum(axis=1)
    return bool(np.all(distance == d) and np.all(d <= RADIUS) and np.all(alive[s] != 0))


def array_region(data: bytes, name: str) -> tuple[int, int]:
    """Where the array ``name`` lies in a snapshot file (start, end)."""
    length = int.from_bytes(data[len(snapshot_format.MAGIC) :][:8], "little")
    header = json.loads(data[len(snapshot_format.MAGIC) + 8 :][:length])
    entry = header["arrays"][name]
    start = snapshot_format._data_start(length) + entry["offset"]
    size = int(np.prod(entry["shape"])) * np.dtype(entry["dtype"]).itemsize
    return start, start + size


def damage(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:  # a few bits flipped anywhere
        for at in rng.integers(0, len(out), size=int(rng.integers(1, 9))):
            out[at] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # truncated
        del out[int(rng.integers(0, len(out))) :]
    elif kind == 2:  # a region anywhere overwritten with noise, zeros or ones
        start = int(rng.integers(0, len(out)))
        end = min(len(out), start + int(rng.integers(1, 4096)))
        out[start:end] = filler(rng, end - start)
    else:  # a region of one array overwritten: the slot ids, bucket starts, hashes, ...
        name = ("ids", "rel", "base", "hashes", "alive", "widths", "sha256.keys")[rng.integers(7)]
        lo, hi = array_region(data, name)
        start = int(rng.integers(lo, hi))
        end = min(hi, start + int(rng.integers(1, 64 if kind == 3 else hi - lo + 1)))
        out[start:end] = filler(rng, end - start)
    return bytes(out)


def filler(rng: np.random.Generator, size: int) -> bytes:
    choice = rng.integers(3)
    return rng.bytes(size) if choice == 0 else (b"\x00" if choice == 1 else b"\xff") * size


def fuzz(folder: Path, seed: int, cases: int) -> dict[str, int]:
    """Runs in the child process; returns how many cases ended which way."""
    rng = np.random.default_rng(seed)
    good = folder / "good.idx"
    truth = build_snapshot(good)
    data = good.read_bytes()
    hashes, alive = truth["hashes"], truth["alive"]
    strangers = rng.integers(0, 2**64, (150, 4), dtype=np.uint64)
    queries = np.concatenate([hashes[:150] ^ np.uint64(1), strangers])
    expected = sorted(brute(hashes, alive, queries))
    outcomes: dict[str, int] = {}

    def count(outcome: str) -> None:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    for case in range(cases):
        mode = ("file", "unverified", "memory")[case % 3]
        broken = folder / f"case-{case}.idx"
        broken.write_bytes(data if mode == "memory" else damage(data, rng))
        try:
            arrays, _ = load(broken, mmap=bool(rng.integers(2)), verify=mode != "unverified")
            index = PdqIndex.from_arrays(arrays, threads=1)
            exact = ExactIndex.from_arrays(arrays, "sha256", 32)
            if mode == "memory":
                tables = {"ids": index._ids, "rel": index._rel, "base": index._base}
                name = ("ids", "rel", "base")[rng.integers(3)]
                table = tables[name] = tables[name].copy()
                raw = table.view(np.uint8)
                start = int(rng.integers(0, raw.size))
                end = min(raw.size, start + int(rng.integers(1, 256)))
                raw[start:end] = np.frombuffer(filler(rng, end - start), np.uint8)
                index._ids, index._rel, index._base = tables["ids"], tables["rel"], tables["base"]
            for loop in LOOPS:
                got = answers(index, queries, loop)
                if mode == "file":
                    assert got == expected, f"case {case}: loaded, but answers differ"
                else:
                    assert all_real(index, queries, got), f"case {case}: a hit that is none"
            lookups = exact.lookup_batch(truth["digests"][:100])
            if mode == "file":
                assert lookups == [[i] for i in range(100)], f"case {case}: exact answers differ"
            count(f"{mode}: answered")
        except SnapshotError:
            count(f"{mode}: refused")
        broken.unlink()
    return outcomes


def run_fuzz(tmp_path: Path, seed: int, cases: int) -> dict[str, int]:
    child = subprocess.run(
        [sys.executable, __file__, str(tmp_path), str(seed), str(cases)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, (
        f"the fuzzing process ended with {child.returncode}:\n"
        + (child.stdout + child.stderr)[-3000:]
    )
    outcomes: dict[str, int] = json.loads(child.stdout.strip().splitlines()[-1])
    return outcomes


def test_random_damage_is_refused_or_answers_rightly_and_never_crashes(tmp_path: Path):
    outcomes = run_fuzz(tmp_path, seed=1, cases=240)
    assert sum(outcomes.values()) == 240
    # the fuzzing reached every outcome it should: refusals of each kind, damaged tables that
    # were loaded unchecked and searched, and damage that the search loops caught themselves
    for outcome in ("file: refused", "unverified: refused", "unverified: answered",
                    "memory: refused", "memory: answered"):  # fmt: skip
        assert outcomes.get(outcome, 0) > 0, (outcome, outcomes)


def test_an_overwritten_id_table_is_refused_on_loading(tmp_path: Path):
    path = tmp_path / "pdq.idx"
    build_snapshot(path)
    data = bytearray(path.read_bytes())
    lo, hi = array_region(bytes(data), "ids")
    data[lo : lo + 3000] = b"\xff" * 3000  # slot ids far past the last hash
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="the array ids is damaged"):
        load(path)
    with pytest.raises(SnapshotError, match="slot id past the last hash"):
        PdqIndex.from_arrays(load(path, verify=False)[0])


@pytest.mark.parametrize("name", ["ids", "rel", "base"])
@pytest.mark.parametrize("loop", LOOPS)
def test_tables_damaged_after_loading_stop_the_search_with_an_error(tmp_path, name, loop):
    path = tmp_path / "pdq.idx"
    truth = build_snapshot(path)
    index = PdqIndex.from_arrays(load(path, mmap=False)[0], threads=1)
    table = getattr(index, f"_{name}")
    table[:] = len(truth["hashes"]) + 1 if name == "base" else np.iinfo(table.dtype).max
    with pytest.raises(SnapshotError, match="chunk tables are damaged"):
        answers(index, truth["hashes"][:300], loop)


def test_a_matcher_snapshot_that_does_not_fit_together_is_refused(tmp_path: Path):
    path = tmp_path / "pdq.idx"
    build_snapshot(path)
    arrays, meta = load(path)
    arrays = dict(arrays)
    arrays["alive"] = arrays["alive"][:-1]  # checksums fine, shapes not
    save(path, arrays, meta)
    with pytest.raises(SnapshotError, match="alive flags do not fit"):
        PdqIndex.from_arrays(load(path)[0])
    keys = np.asarray(arrays["sha256.keys"]).reshape(-1, 32)[::-1]  # out of order
    with pytest.raises(SnapshotError, match="sha256 are damaged"):
        ExactIndex.from_arrays({**arrays, "sha256.keys": keys.reshape(-1)}, "sha256", 32)


if __name__ == "__main__":
    print(json.dumps(fuzz(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
