"""Exact digest lookup."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np

from meldpunt.index import ExactIndex, load, save


def test_lookup_add_remove_compact_and_snapshot(tmp_path: Path):
    digests = [secrets.token_bytes(16) for _ in range(5_000)]
    digests[0] = digests[0][:-1] + b"\x01"  # so that the next one differs from it for sure
    digests.append(digests[0][:-1] + b"\x00")  # trailing zero bytes are significant
    index = ExactIndex(16)
    index.add(digests, range(len(digests)))
    index.compact()
    assert index.lookup(digests[10]) == [10]
    assert index.lookup(digests[-1]) == [len(digests) - 1]
    assert index.lookup(secrets.token_bytes(16)) == []
    assert index.lookup(b"short") == []
    index.add([digests[10]], [9_000])  # the same digest in a second set
    assert sorted(index.lookup(digests[10])) == [10, 9_000]
    index.remove([10])
    assert index.lookup(digests[10]) == [9_000]
    batch = index.lookup_batch(digests[:100] + [secrets.token_bytes(16)])
    assert batch[5] == [5] and batch[10] == [9_000] and batch[-1] == []
    # a digest of the wrong length is not padded into another one
    odd = index.lookup_batch([*digests[:100], digests[20][:15], digests[20] + b"\x00"])
    assert odd[20] == [20] and odd[-2:] == [[], []]
    save(tmp_path / "x.idx", index.arrays("md5"), {})
    arrays, _ = load(tmp_path / "x.idx")
    restored = ExactIndex.from_arrays(arrays, "md5", 16)
    assert restored.lookup(digests[10]) == [9_000]
    assert len(restored) == len(digests)
    assert isinstance(arrays["md5.keys"], np.memmap)
