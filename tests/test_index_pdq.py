"""The PDQ index against brute force: random and clustered data, every radius up to 64."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from meldpunt.index import (
    PdqIndex,
    SnapshotError,
    hashes_from_hex,
    hashes_to_hex,
    layout,
    load,
    save,
)
from meldpunt.index import pdq as pdq_index

RNG = np.random.default_rng(11)


def random_hashes(n: int, rng=RNG) -> np.ndarray:
    return rng.integers(0, 2**64 - 1, size=(n, 4), dtype=np.uint64, endpoint=True)


def flip(hashes: np.ndarray, bits: int, rng=RNG) -> np.ndarray:
    """Copies of ``hashes`` with ``bits`` random bits flipped in each."""
    out = hashes.copy()
    for row in out:
        for b in rng.choice(256, size=bits, replace=False):
            row[b // 64] ^= np.uint64(1) << np.uint64(63 - b % 64)
    return out


def clustered(n: int, centres: int, spread: int, rng=RNG) -> np.ndarray:
    """Near-duplicate clusters, as real lists have: each hash a few bits from a centre."""
    base = random_hashes(centres, rng)
    picks = base[rng.integers(0, centres, n)]
    return np.concatenate([flip(picks[i : i + 1], int(rng.integers(0, spread + 1)), rng)
                           for i in range(n)])  # fmt: skip


def brute(hashes: np.ndarray, alive: np.ndarray, query: np.ndarray, radius: int) -> dict[int, int]:
    distance = np.zeros(len(hashes), dtype=np.int64)
    for w in range(4):
        distance += np.bitwise_count(hashes[:, w] ^ query[w]).astype(np.int64)
    hit = (distance <= radius) & alive
    return {int(s): int(distance[s]) for s in np.nonzero(hit)[0]}


def queries_for(hashes: np.ndarray, radius: int, count: int = 12) -> np.ndarray:
    near = [flip(hashes[RNG.integers(len(hashes)) : ][:1], int(RNG.integers(0, radius + 1)))
            for _ in range(count // 2)] if len(hashes) else []  # fmt: skip
    return np.concatenate([*near, random_hashes(count - len(near))])


def assert_same_as_brute(index: PdqIndex, hashes: np.ndarray, alive: np.ndarray, radius: int):
    queries = queries_for(hashes, radius)
    matches = index.query_batch(queries, radius)
    for q, query in enumerate(queries):
        got = dict(matches.for_query(q))
        assert len(got) == len(matches.for_query(q)), "a hash was reported twice"
        assert got == brute(hashes, alive, query, radius)


@pytest.mark.parametrize("radius", [0, 1, 8, 16, 31, 40, 48, 64])
@pytest.mark.parametrize("shape", ["random", "clustered"])
def test_matches_brute_force_on_a_table_index(radius, shape):
    hashes = random_hashes(30_000) if shape == "random" else clustered(30_000, 300, 40)
    index = PdqIndex(hashes)
    assert index._widths, "large enough to use the chunk tables"
    assert_same_as_brute(index, hashes, np.ones(len(hashes), bool), radius)


@pytest.mark.parametrize("n", [0, 1, 2, 100])
def test_tiny_and_empty_indexes(n):
    hashes = random_hashes(n)
    index = PdqIndex(hashes)
    assert len(index) == n
    for radius in (0, 31, 64):
        assert_same_as_brute(index, hashes, np.ones(n, bool), radius)
    if n:
        (value,) = hashes_to_hex(hashes[:1])
        assert (0, 0) in index.query(value, 0)


def test_every_layout_is_exact(monkeypatch):
    hashes = clustered(8_000, 50, 20)
    layouts = [layout._even_widths(13), layout._even_widths(16), (17,) * 8 + (15,) * 8]
    for widths in layouts:
        monkeypatch.setattr(pdq_index, "choose_widths", lambda n, w=widths: w)
        index = PdqIndex(hashes)
        assert index._widths == widths
        for radius in (5, 31, 64):
            assert_same_as_brute(index, hashes, np.ones(len(hashes), bool), radius)


def test_adds_and_removes_without_rebuild():
    hashes = random_hashes(20_000)
    index = PdqIndex(hashes)
    tables = index._ids
    extra = flip(hashes[:50], 5)
    slots = index.add(extra)
    assert list(slots) == list(range(20_000, 20_050))
    removed = index.remove([3, 7, 20_001])
    assert removed == 3 and index.remove([3]) == 0
    assert index._ids is tables, "the chunk tables were not rebuilt"
    everything = np.concatenate([hashes, extra])
    alive = np.ones(len(everything), bool)
    alive[[3, 7, 20_001]] = False
    for radius in (0, 10, 31):
        assert_same_as_brute(index, everything, alive, radius)
    index.compact()
    assert index._ids is not tables and len(index) == 20_047
    assert_same_as_brute(index, everything, alive, 31)


def test_recent_area_is_folded_in_automatically(monkeypatch):
    monkeypatch.setattr(pdq_index, "RECENT_LIMIT", 100)
    index = PdqIndex(random_hashes(5_000))
    for _ in range(5):
        index.add(random_hashes(80))
    assert index._recent_count < 100 and index.slots == 5_400


def test_dihedral_style_batch_of_eight():
    hashes = random_hashes(10_000)
    index = PdqIndex(hashes)
    turned = np.concatenate([random_hashes(7), flip(hashes[42:43], 9)])
    matches = index.query_batch(turned, 31)
    assert [(q, s) for q, s in zip(matches.query, matches.slot, strict=True)] == [(7, 42)]
    assert int(matches.distance[0]) == 9


def test_hex_round_trip_and_validation():
    values = [f"{i:064x}" for i in (0, 1, 2**255 + 5)]
    assert hashes_to_hex(hashes_from_hex(values)) == values
    with pytest.raises(ValueError):
        hashes_from_hex(["abc"])
    with pytest.raises(ValueError):
        PdqIndex(random_hashes(10)).query_batch(random_hashes(1), 300)


@pytest.mark.parametrize("mmap", [True, False])
def test_snapshot_round_trip(tmp_path: Path, mmap: bool):
    hashes = clustered(12_000, 100, 30)
    index = PdqIndex(hashes)
    index.add(random_hashes(10))
    index.remove([5])
    path = tmp_path / "pdq.idx"
    save(path, index.arrays(), {"seq": 42})
    arrays, meta = load(path, mmap=mmap)
    assert meta == {"seq": 42}
    restored = PdqIndex.from_arrays(arrays)
    assert restored.slots == index.slots and len(restored) == len(index)
    queries = queries_for(hashes, 31)
    a, b = index.query_batch(queries, 31), restored.query_batch(queries, 31)
    assert np.array_equal(a.slot, b.slot) and np.array_equal(a.distance, b.distance)
    restored.remove([6])  # a loaded index stays writable
    restored.add(random_hashes(1))


def test_damaged_snapshots_are_refused(tmp_path: Path):
    path = tmp_path / "pdq.idx"
    save(path, PdqIndex(random_hashes(5_000)).arrays(), {})
    data = path.read_bytes()
    cases = {
        "not a snapshot": b"hello world" * 10,
        "truncated": data[: len(data) // 2],
        "bad header": data[:20] + b"\xff" * 40 + data[60:],
    }
    for name, content in cases.items():
        broken = tmp_path / f"{name}.idx"
        broken.write_bytes(content)
        with pytest.raises(SnapshotError):
            PdqIndex.from_arrays(load(broken)[0])
    with pytest.raises(SnapshotError):
        load(tmp_path / "missing.idx")


@pytest.mark.parametrize("radius", [0, 31, 64])
def test_both_search_loops_of_large_batches_agree_with_brute_force(radius):
    hashes = clustered(20_000, 200, 30)
    index = PdqIndex(hashes, threads=2)
    near = np.concatenate([flip(hashes[i : i + 1], int(RNG.integers(0, 32))) for i in range(300)])
    queries = np.concatenate([near, random_hashes(300)])
    assert len(queries) >= 2 * pdq_index.BATCH_MIN  # each of the two threads gets a large part
    alive = np.ones(len(hashes), bool)
    for loop in (0, 1):  # the prefetching loop, the sorted loop
        index._chooser.cost = [1.0, 0.0] if loop else [0.0, 1.0]
        index._chooser.calls = 1
        matches = index.query_batch(queries, radius)
        for q in range(0, len(queries), 7):
            assert dict(matches.for_query(q)) == brute(hashes, alive, queries[q], radius)
    if radius == 31:  # the tables were searched (at 64 every hash is compared instead)
        assert index._chooser.calls == 3


def test_the_faster_search_loop_is_chosen_and_the_other_retried_now_and_then():
    chooser = pdq_index.LoopChooser()
    assert [chooser.pick(), chooser.record(0, 0.2, 1000)] == [0, None]
    assert [chooser.pick(), chooser.record(1, 0.1, 1000)] == [1, None]
    picks = [chooser.pick() for _ in range(2 * chooser.RETRY_EVERY)]
    assert picks.count(1) == 2 * chooser.RETRY_EVERY - 2  # the sorted loop measured cheaper
    chooser.record(1, 0.5, 1000)  # then slower for a while: the average follows
    chooser.record(1, 0.5, 1000)
    assert chooser.pick() == 0


def test_heavily_duplicated_data_switches_to_wide_bucket_starts():
    same = np.repeat(random_hashes(1), 70_000, axis=0)  # 70,000 copies of one hash
    hashes = np.concatenate([same, random_hashes(5_000)])
    index = PdqIndex(hashes)
    assert index._rel.dtype == np.uint32
    hits = index.query(pdq_index.hashes_to_hex(same[:1])[0], 0)
    assert len(hits) == 70_000
