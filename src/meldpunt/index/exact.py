"""Exact lookup of fixed-length digests (MD5, SHA-1, SHA-256) among tens of millions.

Digests are kept as raw bytes in one sorted array per index (16-32 bytes each plus an 8-byte
slot), searched with binary search; additions go to a dictionary until ``compact()`` merges them.
Slots are assigned by the caller (the same numbering as ``PdqIndex`` or any other).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .snapshot import SnapshotError

RECENT_LIMIT = 100_000


class ExactIndex:
    """Digest -> slots, for one digest length."""

    def __init__(self, digest_bytes: int) -> None:
        if not 1 <= digest_bytes <= 64:
            raise ValueError("digest length must be 1..64 bytes")
        self.digest_bytes = digest_bytes
        self._dtype = np.dtype(f"S{digest_bytes}")
        self._keys: NDArray[Any] = np.zeros(0, dtype=self._dtype)
        self._slots: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._recent: dict[bytes, list[int]] = {}
        self._removed: set[int] = set()

    def _check(self, digest: bytes) -> bytes:
        if len(digest) != self.digest_bytes:
            raise ValueError(f"expected a {self.digest_bytes}-byte digest, got {len(digest)}")
        return digest

    def add(self, digests: Iterable[bytes], slots: Iterable[int]) -> None:
        for digest, slot in zip(digests, slots, strict=True):
            self._recent.setdefault(self._check(digest), []).append(int(slot))
            self._removed.discard(int(slot))
        if sum(len(v) for v in self._recent.values()) > max(RECENT_LIMIT, len(self._keys) // 16):
            self.compact()

    def add_hex(self, values: Sequence[str], slots: Iterable[int]) -> None:
        self.add((bytes.fromhex(v) for v in values), slots)

    def remove(self, slots: Iterable[int]) -> None:
        self._removed.update(int(s) for s in slots)

    def __len__(self) -> int:
        recent = sum(len(v) for v in self._recent.values())
        return len(self._keys) + recent - len(self._removed)

    def slot_bound(self) -> int:
        """One more than the highest slot held (0 when empty)."""
        recent = max((max(v) for v in self._recent.values()), default=-1)
        return max(int(self._slots.max()) if len(self._slots) else -1, recent) + 1

    def lookup(self, digest: bytes) -> list[int]:
        """Live slots holding exactly this digest."""
        if len(digest) != self.digest_bytes:
            return []
        key = np.array([digest], dtype=self._dtype)
        lo, hi = (
            np.searchsorted(self._keys, key[0], "left"),
            np.searchsorted(self._keys, key[0], "right"),
        )
        found = [int(s) for s in self._slots[lo:hi]]
        found.extend(self._recent.get(digest, ()))
        return [s for s in found if s not in self._removed]

    def lookup_batch(self, digests: Sequence[bytes]) -> list[list[int]]:
        if not len(self._keys) or len(digests) < 64:
            return [self.lookup(d) for d in digests]
        keys = np.array(list(digests), dtype=self._dtype)
        lo = np.searchsorted(self._keys, keys, "left").tolist()
        hi = np.searchsorted(self._keys, keys, "right").tolist()
        out: list[list[int]] = []
        for digest, a, b in zip(digests, lo, hi, strict=True):
            if len(digest) != self.digest_bytes:
                out.append([])
                continue
            found = self._slots[a:b].tolist() if b > a else []
            if self._recent:
                found.extend(self._recent.get(digest, ()))
            out.append([s for s in found if s not in self._removed] if self._removed else found)
        return out

    def compact(self) -> None:
        """Merge recent additions into the sorted arrays and drop removed slots."""
        keys = [self._keys]
        slots = [self._slots]
        if self._recent:
            pairs = [(k, s) for k, v in self._recent.items() for s in v]
            keys.append(np.array([k for k, _ in pairs], dtype=self._dtype))
            slots.append(np.array([s for _, s in pairs], dtype=np.int64))
        merged_keys = np.concatenate(keys)
        merged_slots = np.concatenate(slots)
        if self._removed:
            keep = ~np.isin(merged_slots, np.fromiter(self._removed, dtype=np.int64))
            merged_keys, merged_slots = merged_keys[keep], merged_slots[keep]
        order = np.argsort(merged_keys, kind="stable")
        self._keys, self._slots = merged_keys[order], merged_slots[order]
        self._recent = {}
        self._removed = set()

    def arrays(self, prefix: str) -> dict[str, NDArray[Any]]:
        self.compact()
        return {f"{prefix}.keys": self._keys.view(np.uint8), f"{prefix}.slots": self._slots}

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, NDArray[Any]], prefix: str, digest_bytes: int
    ) -> ExactIndex:
        """The index saved by ``arrays(prefix)``; raises ``SnapshotError`` when they are
        damaged (missing, of the wrong type or size, digests out of order, negative slots)."""
        index = cls(digest_bytes)
        try:
            raw, slots = arrays[f"{prefix}.keys"], arrays[f"{prefix}.slots"]
        except KeyError as exc:
            raise SnapshotError(f"the snapshot lacks the array {exc}") from exc
        fits = (
            raw.ndim == 1 and raw.dtype == np.uint8 and slots.ndim == 1
            and slots.dtype == np.int64 and raw.size == digest_bytes * slots.shape[0]
        )  # fmt: skip
        if not fits:
            raise SnapshotError(f"the snapshot's arrays for {prefix} do not fit together")
        keys = np.ascontiguousarray(raw).view(index._dtype)
        # binary search needs sorted digests; slots are looked up by the caller
        if (len(keys) > 1 and not bool(np.all(keys[:-1] <= keys[1:]))) or (
            slots.size and int(slots.min()) < 0
        ):
            raise SnapshotError(f"the snapshot's arrays for {prefix} are damaged")
        index._keys = keys
        index._slots = np.asarray(slots, dtype=np.int64)
        return index
