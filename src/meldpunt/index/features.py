"""Finding pictures by their local features: descriptors that vote for the pictures they came from.

Each stored picture (an *owner*, any integer the caller chooses) has up to a few hundred 256-bit
binary descriptors with a position each. They live in one ``PdqIndex`` (the descriptors are
256-bit values like PDQ hashes), so finding every stored descriptor within ``radius`` bits of a
query's descriptor is exact and fast. Every query descriptor votes once for each owner it finds
(its nearest descriptor of that owner); owners with enough votes are the *candidates*, each with
its correspondences (query row, stored position) for a geometric check by the caller.

Additions and removals change the index in place, like ``PdqIndex``. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .pdq import PdqIndex
from .snapshot import SnapshotError


@dataclass(frozen=True)
class Candidate:
    owner: int
    votes: int
    query_rows: NDArray[np.int64]  # the query's descriptor rows, one per vote
    points: NDArray[np.float32]  # the owner's position for each of them


class FeatureIndex:
    def __init__(self, *, threads: int | None = 1) -> None:
        self._index = PdqIndex(threads=threads)
        self._owner = np.zeros(0, dtype=np.int64)
        self._points = np.zeros((0, 2), dtype=np.float32)
        self._words = np.zeros((0, 4), dtype=np.uint64)  # kept for snapshots
        self._size = 0
        self._slots: dict[int, NDArray[np.int64]] = {}

    def __len__(self) -> int:
        """Owners in the index."""
        return len(self._slots)

    @property
    def descriptors(self) -> int:
        return len(self._index)

    @property
    def nbytes(self) -> int:
        return int(
            self._index.nbytes + self._owner.nbytes + self._points.nbytes + self._words.nbytes
        )

    def __contains__(self, owner: int) -> bool:
        return owner in self._slots

    def _grow(self, count: int) -> None:
        need = self._size + count
        if need > len(self._owner):
            room = max(need, 2 * len(self._owner), 1024)
            self._owner = np.resize(self._owner, room)
            self._points = np.resize(self._points, (room, 2))
            self._words = np.resize(self._words, (room, 4))

    def add(self, owner: int, points: NDArray[np.float32], words: NDArray[np.uint64]) -> None:
        """An owner's descriptors (``(n, 4)`` uint64 words) and their positions (``(n, 2)``).
        Adding an owner that is already there replaces its descriptors."""
        self.add_many(np.full(len(words), owner, dtype=np.int64), points, words)

    def add_many(
        self, owners: NDArray[np.int64], points: NDArray[np.float32], words: NDArray[np.uint64]
    ) -> None:
        """Many owners' descriptors at once, one row each (rows of one owner together)."""
        owners = np.asarray(owners, dtype=np.int64).reshape(-1)
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        words = np.asarray(words, dtype=np.uint64).reshape(-1, 4)
        if not len(owners) == len(points) == len(words):
            raise ValueError("every descriptor needs one owner and one position")
        for owner in np.unique(owners).tolist():
            if owner in self._slots:
                self.remove(owner)
        if not len(words):
            return
        slots = np.asarray(self._index.add(words), dtype=np.int64)
        if int(slots[0]) != self._size or int(slots[-1]) != self._size + len(slots) - 1:
            raise AssertionError("descriptor slots are handed out in order")
        self._grow(len(slots))
        end = self._size + len(slots)
        self._owner[self._size : end] = owners
        self._points[self._size : end] = points
        self._words[self._size : end] = words
        self._size = end
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(owners)], strict=True):
            self._slots[int(owners[start])] = slots[start:stop]

    def remove(self, owner: int) -> bool:
        slots = self._slots.pop(owner, None)
        if slots is None:
            return False
        if len(slots):
            self._index.remove(slots.tolist())
        return True

    def candidates(
        self,
        words: NDArray[np.uint64],
        *,
        radius: int = 32,
        min_votes: int = 6,
        limit: int = 10,
    ) -> list[Candidate]:
        """The owners that at least ``min_votes`` of the query's descriptors find within
        ``radius`` bits, most votes first, at most ``limit`` of them."""
        words = np.asarray(words, dtype=np.uint64).reshape(-1, 4)
        if not len(words) or not self._slots:
            return []
        found = self._index.query_batch(words, radius)
        if not len(found):
            return []
        query = np.asarray(found.query, dtype=np.int64)
        slot = np.asarray(found.slot, dtype=np.int64)
        owner = self._owner[slot]
        # hits come sorted by query, then distance: the first of each (query, owner) is nearest
        order = np.lexsort((np.arange(len(query)), owner, query))
        query, slot, owner = query[order], slot[order], owner[order]
        first = np.ones(len(query), dtype=bool)
        first[1:] = (query[1:] != query[:-1]) | (owner[1:] != owner[:-1])
        query, slot, owner = query[first], slot[first], owner[first]
        owners, votes = np.unique(owner, return_counts=True)
        chosen = owners[votes >= min_votes]
        if not len(chosen):
            return []
        ranked = sorted(
            ((int(v), int(o)) for o, v in zip(owners, votes, strict=True) if v >= min_votes),
            reverse=True,
        )[:limit]
        out = []
        for count, who in ranked:
            mine = owner == who
            out.append(Candidate(who, count, query[mine], self._points[slot[mine]]))
        return out

    # -- snapshots ---------------------------------------------------------------------------

    def arrays(self) -> dict[str, NDArray[np.generic]]:
        """The live owners' descriptors as plain arrays (owner, position, words)."""
        if not self._slots:
            return {
                "owner": np.zeros(0, np.int64),
                "points": np.zeros((0, 2), np.float32),
                "words": np.zeros((0, 4), np.uint64),
            }
        slots = np.concatenate(list(self._slots.values()))
        return {
            "owner": self._owner[slots],
            "points": self._points[slots],
            "words": self._words[slots],
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[np.generic]]) -> FeatureIndex:
        try:
            owner = np.asarray(arrays["owner"], dtype=np.int64).reshape(-1)
            points = np.asarray(arrays["points"], dtype=np.float32).reshape(-1, 2)
            words = np.asarray(arrays["words"], dtype=np.uint64).reshape(-1, 4)
        except (KeyError, ValueError) as exc:
            raise SnapshotError(f"feature arrays do not fit together: {exc}") from exc
        if not len(owner) == len(points) == len(words):
            raise SnapshotError("feature arrays do not fit together")
        index = cls()
        order = np.argsort(owner, kind="stable")
        index.add_many(owner[order], points[order], words[order])
        return index
