"""Matching: the signals of one picture against the registry.

A ``Matcher`` keeps in-memory indexes (``meldpunt.index``) of every active signal, and follows
the registry's change numbers: it is built from the registry (or loaded from a snapshot) at
change number N, then ``refresh()`` applies the changes after N, in order. Applying a change
twice does no harm, so a snapshot taken while the registry changes still converges.

What a match means:

* a blocklist match names the set, the entry (item id), its category and the distance
  (0 for MD5/SHA-1/SHA-256, the Hamming distance for PDQ, within the set's own threshold);
* a match with an allow-list entry (a known false positive) suppresses blocklist matches, and
  the answer lists them as suppressed: an exact (MD5/SHA) allow-list match suppresses every
  blocklist match of the picture, a PDQ allow-list match suppresses the PDQ matches;
* entries assessed as not pertinent (``categories.NEVER_MATCHED``) never make a blocklist match,
  and the digests of empty content are never looked up (they would match every empty file);
* PDQ hashes of quality below the minimum are not matched, and the answer says why;
* the PDQ query is the picture's hash and, when given, its 8 orientation hashes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from meldpunt.index import ExactIndex, PdqIndex, SnapshotError, hashes_from_hex, load, save
from meldpunt.registry.categories import NEVER_MATCHED
from meldpunt.registry.changes import Change, active_signals, changes_since, current_seq
from meldpunt.registry.sets import HashSetInfo, get_set, list_sets
from meldpunt.registry.signal_types import EMPTY_CONTENT_DIGESTS
from meldpunt.signals import (
    ExactDigests,
    HashOptions,
    PdqSignal,
    SignalError,
    digest_bytes,
    pdq_signal,
)
from meldpunt.signals import types as signal_types

log = logging.getLogger(__name__)

DIGEST_BYTES = {"md5": 16, "sha1": 20, "sha256": 32}
EXACT_TYPES = tuple(DIGEST_BYTES)
MAX_PDQ_RADIUS = 64
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class Match:
    set: str
    set_id: int
    entry: int
    category: str
    signal_type: str
    distance: int

    def as_dict(self) -> dict[str, object]:
        return {
            "set": self.set,
            "entry": self.entry,
            "category": self.category,
            "signal_type": self.signal_type,
            "distance": self.distance,
        }


@dataclass(frozen=True)
class MatchAnswer:
    matches: tuple[Match, ...] = ()
    allowlisted: tuple[Match, ...] = ()
    suppressed: tuple[Match, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return bool(self.matches)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "known": self.known,
            "matches": [m.as_dict() for m in self.matches],
        }
        if self.allowlisted:
            out["allowlisted"] = [m.as_dict() for m in self.allowlisted]
            out["suppressed"] = [m.as_dict() for m in self.suppressed]
        if self.notes:
            out["notes"] = list(self.notes)
        return out


NO_MATCH = MatchAnswer()


@dataclass(frozen=True)
class Query:
    """The signals of one picture (any may be missing)."""

    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None
    pdq_dihedral: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Query:
        """From (type, value) pairs; raises ``InvalidSignal`` for a bad type or value."""
        values: dict[str, Any] = {}
        for kind, value in pairs:
            signal_type = signal_types.get(kind)
            values[signal_type.name] = signal_type.normalize(value)
        known = {k: v for k, v in values.items() if k in ("md5", "sha1", "sha256", "pdq")}
        return cls(**known)

    @classmethod
    def of_signals(cls, digests: ExactDigests | None, pdq: PdqSignal | None) -> Query:
        """From a picture's signals as ``meldpunt.signals`` computes them; either may be missing
        (a file that is not a picture still has digests). The orientation hashes come along when
        they were computed."""
        return cls(
            md5=digests.md5 if digests else None,
            sha1=digests.sha1 if digests else None,
            sha256=digests.sha256 if digests else None,
            pdq=pdq.hash if pdq else None,
            pdq_quality=pdq.quality if pdq else None,
            pdq_dihedral=(pdq.dihedral or ()) if pdq else (),
        )


def picture_query(
    data: bytes,
    options: HashOptions,
    decode: Callable[[bytes, HashOptions], PdqSignal] = pdq_signal,
) -> tuple[Query, SignalError | None]:
    """The query of a picture's bytes, as the check service, its pages and ``meldpunt match``
    build it: the digests always, the PDQ signal when the bytes decode as a picture under
    ``options``' limits, else the ``SignalError`` that says why not (the digests can still
    match). The caller decides whether that error ends the check. ``decode`` computes the PDQ
    signal (the service passes one that first reserves the decoding memory); its errors other
    than a ``SignalError`` go to the caller."""
    digests = digest_bytes(data)
    try:
        signal = decode(data, options)
    except SignalError as exc:
        return Query.of_signals(digests, None), exc
    return Query.of_signals(digests, signal), None


class _Payload:
    """What each slot of an index stands for, in growable numpy arrays."""

    def __init__(self) -> None:
        self.size = 0
        self.set_id = np.zeros(1024, dtype=np.int32)
        self.item_id = np.zeros(1024, dtype=np.int64)
        self.category = np.zeros(1024, dtype=np.int16)

    def extend(self, set_ids: Sequence[int], item_ids: Sequence[int], codes: Sequence[int]) -> int:
        first, count = self.size, len(set_ids)
        if first + count > len(self.set_id):
            room = max(first + count, 2 * len(self.set_id))
            self.set_id = np.resize(self.set_id, room)
            self.item_id = np.resize(self.item_id, room)
            self.category = np.resize(self.category, room)
        self.set_id[first : first + count] = set_ids
        self.item_id[first : first + count] = item_ids
        self.category[first : first + count] = codes
        self.size += count
        return first

    def arrays(self, prefix: str) -> dict[str, NDArray[Any]]:
        return {
            f"{prefix}.set_id": self.set_id[: self.size],
            f"{prefix}.item_id": self.item_id[: self.size],
            f"{prefix}.category": self.category[: self.size],
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]], prefix: str) -> _Payload:
        payload = cls()
        try:
            payload.set_id = np.array(arrays[f"{prefix}.set_id"], dtype=np.int32).reshape(-1)
            payload.item_id = np.array(arrays[f"{prefix}.item_id"], dtype=np.int64).reshape(-1)
            payload.category = np.array(arrays[f"{prefix}.category"], dtype=np.int16).reshape(-1)
        except KeyError as exc:
            raise SnapshotError(f"the snapshot lacks the array {exc}") from exc
        payload.size = len(payload.set_id)
        if not len(payload.item_id) == len(payload.category) == payload.size:
            raise SnapshotError(f"snapshot payload {prefix} does not fit together")
        return payload

    def check(self, slots: int, codes: int, name: str) -> None:
        """Refuse a loaded payload that an index slot or a category code would read past."""
        category = self.category[: self.size]
        if slots > self.size or (
            self.size and not 0 <= int(category.min()) <= int(category.max()) < codes
        ):
            raise SnapshotError(f"snapshot payload {name} does not fit its index")


@dataclass
class Matcher:
    """In-memory indexes of the registry's active signals at change number ``seq``."""

    seq: int = 0
    sets: dict[int, HashSetInfo] = field(default_factory=dict)
    pdq: PdqIndex = field(default_factory=PdqIndex)
    pdq_payload: _Payload = field(default_factory=_Payload)
    exact: dict[str, tuple[ExactIndex, _Payload]] = field(
        default_factory=lambda: {t: (ExactIndex(n), _Payload()) for t, n in DIGEST_BYTES.items()}
    )
    codes: list[str] = field(default_factory=list)
    _code_of: dict[str, int] = field(default_factory=dict, repr=False)

    # -- building and following ---------------------------------------------------------------

    @classmethod
    def build(cls, session: Session, chunk: int = 500_000) -> Matcher:
        """Everything active in the registry now (then follow it with ``refresh``)."""
        matcher = cls(seq=current_seq(session))
        pending: dict[str, list[tuple[str, int, int, int]]] = {
            "pdq": [],
            **{t: [] for t in EXACT_TYPES},
        }
        pdq_parts: list[NDArray[np.uint64]] = []
        for signal in active_signals(session):
            rows = pending.get(signal.signal_type)
            if rows is None:
                continue  # opaque types (PhotoDNA) are kept in the registry, not matched
            rows.append(
                (signal.value, signal.set_id, signal.item_id, matcher._code(signal.category))
            )
            if len(pending["pdq"]) >= chunk:
                pdq_parts.append(matcher._stage_pdq(pending["pdq"]))
                pending["pdq"] = []
        pdq_parts.append(matcher._stage_pdq(pending["pdq"]))
        matcher.pdq = PdqIndex(np.concatenate(pdq_parts))
        for kind in EXACT_TYPES:
            index, payload = matcher.exact[kind]
            rows = pending[kind]
            first = payload.extend([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
            index.add((bytes.fromhex(r[0]) for r in rows), range(first, first + len(rows)))
            index.compact()
        matcher.sets = {s.id: s for s in list_sets(session)}
        matcher.refresh(session)
        return matcher

    def _stage_pdq(self, rows: list[tuple[str, int, int, int]]) -> NDArray[np.uint64]:
        self.pdq_payload.extend([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
        return hashes_from_hex([r[0] for r in rows])

    def _code(self, category: str | None) -> int:
        name = category or "uncategorised"
        if len(self._code_of) != len(self.codes):
            self._code_of = {code: i for i, code in enumerate(self.codes)}
        code = self._code_of.get(name)
        if code is None:
            code = self._code_of[name] = len(self.codes)
            self.codes.append(name)
        return code

    def refresh(self, session: Session, limit: int = 10_000) -> int:
        """Apply every change after ``seq``; returns how many were applied."""
        applied = 0
        while True:
            changes = changes_since(session, self.seq, limit)
            for change in changes:
                self.apply(change, session)
                self.seq = change.seq
            applied += len(changes)
            if len(changes) < limit:
                return applied

    def apply(self, change: Change, session: Session | None = None) -> None:
        if change.is_set_change:
            if session is not None:
                self.sets[change.set_id] = get_set(session, change.set_id)
            return
        if change.set_id not in self.sets and session is not None:
            self.sets[change.set_id] = get_set(session, change.set_id)
        kind, value = change.signal_type, change.value
        if kind is None or value is None or (kind != "pdq" and kind not in DIGEST_BYTES):
            return
        slots = self._slots_of(kind, value, change.set_id, change.item_id or 0)
        if change.action == "remove":
            self._remove(kind, slots)
        elif change.action in ("add", "update"):
            code = self._code(change.category)
            if slots:
                payload = self.pdq_payload if kind == "pdq" else self.exact[kind][1]
                payload.category[slots] = code
            elif change.action == "add":
                self._add(kind, value, change.set_id, change.item_id or 0, code)

    def _slots_of(self, kind: str, value: str, set_id: int, item_id: int) -> list[int]:
        if kind == "pdq":
            found = [slot for slot, _ in self.pdq.query(value, 0)]
            payload = self.pdq_payload
        else:
            index, payload = self.exact[kind]
            found = index.lookup(bytes.fromhex(value))
        return [s for s in found if payload.set_id[s] == set_id and payload.item_id[s] == item_id]

    def _add(self, kind: str, value: str, set_id: int, item_id: int, code: int) -> None:
        if kind == "pdq":
            self.pdq.add([value])
            self.pdq_payload.extend([set_id], [item_id], [code])
        else:
            index, payload = self.exact[kind]
            slot = payload.extend([set_id], [item_id], [code])
            index.add([bytes.fromhex(value)], [slot])

    def _remove(self, kind: str, slots: list[int]) -> None:
        if kind == "pdq":
            self.pdq.remove(slots)
        else:
            self.exact[kind][0].remove(slots)

    # -- matching -----------------------------------------------------------------------------

    def match(
        self,
        query: Query,
        *,
        categories: frozenset[str] | None = None,
        sets: Iterable[int] | None = None,
        min_quality: int = 50,
    ) -> MatchAnswer:
        """Match one picture's signals. ``categories`` filters blocklist matches by normalised
        category code, ``sets`` limits blocklists to those ids (allow-lists always apply)."""
        return self.match_many([query], categories=categories, sets=sets, min_quality=min_quality)[
            0
        ]

    def match_many(
        self,
        queries: Sequence[Query],
        *,
        categories: frozenset[str] | None = None,
        sets: Iterable[int] | None = None,
        min_quality: int = 50,
    ) -> list[MatchAnswer]:
        """``match`` for many pictures: their PDQ hashes are searched as one batch."""
        chosen = None if sets is None else set(sets)
        hits: list[list[tuple[str, int, int]]] = [[] for _ in queries]  # (type, slot, distance)
        notes: list[list[str]] = [[] for _ in queries]
        values: list[str] = []
        owners: list[int] = []
        for kind in EXACT_TYPES:
            asked = [(q, getattr(query, kind)) for q, query in enumerate(queries)]
            asked = [
                (q, value)
                for q, value in asked
                if value and (kind, value.lower()) not in EMPTY_CONTENT_DIGESTS
            ]
            if asked:
                digests = [bytes.fromhex(value) for _, value in asked]
                found_slots = self.exact[kind][0].lookup_batch(digests)
                for (q, _), slots in zip(asked, found_slots, strict=True):
                    hits[q].extend((kind, s, 0) for s in slots)
        for q, query in enumerate(queries):
            if not query.pdq:
                continue
            if query.pdq_quality is not None and query.pdq_quality < min_quality:
                notes[q].append(
                    f"pdq quality {query.pdq_quality} is below {min_quality}: not matched"
                )
                continue
            for value in dict.fromkeys([query.pdq, *query.pdq_dihedral]):
                values.append(value)
                owners.append(q)
        if values:
            radius = min(
                MAX_PDQ_RADIUS, max((s.pdq_threshold for s in self.sets.values()), default=0)
            )
            found = self.pdq.query_batch(values, radius)
            for v, slot, distance in zip(
                found.query.tolist(), found.slot.tolist(), found.distance.tolist(), strict=True
            ):
                hits[owners[v]].append(("pdq", slot, distance))
        return [self._answer(h, n, chosen, categories) for h, n in zip(hits, notes, strict=True)]

    def _answer(
        self,
        hits: list[tuple[str, int, int]],
        notes: list[str],
        chosen: set[int] | None,
        categories: frozenset[str] | None,
    ) -> MatchAnswer:
        if not hits:  # most checked pictures
            return MatchAnswer(notes=tuple(notes)) if notes else NO_MATCH
        best: dict[tuple[int, int, str], Match] = {}
        for kind, slot, distance in hits:
            match = self._resolve(kind, slot, distance)
            if match is None:
                continue
            key = (match.set_id, match.entry, kind)
            if key not in best or distance < best[key].distance:
                best[key] = match
        allow = [m for m in best.values() if self.sets[m.set_id].is_allowlist]
        block = [
            m
            for m in best.values()
            if not self.sets[m.set_id].is_allowlist
            and m.category not in NEVER_MATCHED
            and (chosen is None or m.set_id in chosen)
            and (categories is None or m.category in categories)
        ]
        exact_allow = any(m.signal_type in DIGEST_BYTES for m in allow)
        suppressed = [m for m in block if exact_allow or (allow and m.signal_type == "pdq")]
        kept = [m for m in block if m not in suppressed]

        def order(m: Match) -> tuple[int, str, int]:
            return (m.distance, m.set, m.entry)

        return MatchAnswer(
            tuple(sorted(kept, key=order)),
            tuple(sorted(allow, key=order)),
            tuple(sorted(suppressed, key=order)),
            tuple(notes),
        )

    def _resolve(self, kind: str, slot: int, distance: int) -> Match | None:
        payload = self.pdq_payload if kind == "pdq" else self.exact[kind][1]
        hash_set = self.sets.get(int(payload.set_id[slot]))
        if hash_set is None or not hash_set.active:
            return None
        if kind == "pdq" and distance > hash_set.pdq_threshold:
            return None
        return Match(
            hash_set.name,
            hash_set.id,
            int(payload.item_id[slot]),
            self.codes[int(payload.category[slot])],
            kind,
            distance,
        )

    # -- snapshots ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        arrays: dict[str, NDArray[Any]] = {}
        arrays.update({f"pdq.{k}": v for k, v in self.pdq.arrays().items()})
        arrays.update(self.pdq_payload.arrays("pdq.payload"))
        for kind, (index, payload) in self.exact.items():
            arrays.update(index.arrays(kind))
            arrays.update(payload.arrays(f"{kind}.payload"))
        meta = {"version": SNAPSHOT_VERSION, "seq": self.seq, "codes": self.codes}
        save(path, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str], session: Session) -> Matcher:
        """A snapshot, brought up to date with the registry's changes since it was taken."""
        arrays, meta = load(path)
        if (
            meta.get("version") != SNAPSHOT_VERSION
            or not isinstance(meta.get("seq"), int)
            or not isinstance(meta.get("codes", []), list)
        ):
            raise SnapshotError(f"{path} is not a matcher snapshot of version {SNAPSHOT_VERSION}")
        pdq = {
            k.removeprefix("pdq."): v
            for k, v in arrays.items()
            if k.startswith("pdq.") and not k.startswith("pdq.payload")
        }
        matcher = cls(seq=int(meta["seq"]), codes=[str(c) for c in meta.get("codes", [])])
        matcher.pdq = PdqIndex.from_arrays(pdq)
        matcher.pdq_payload = _Payload.from_arrays(arrays, "pdq.payload")
        for kind, size in DIGEST_BYTES.items():
            matcher.exact[kind] = (
                ExactIndex.from_arrays(arrays, kind, size),
                _Payload.from_arrays(arrays, f"{kind}.payload"),
            )
        # checked now so that a damaged file is refused here, not by failing requests later
        matcher.pdq_payload.check(matcher.pdq.slots, len(matcher.codes), "pdq")
        for kind, (index, payload) in matcher.exact.items():
            payload.check(index.slot_bound(), len(matcher.codes), kind)
        matcher.sets = {s.id: s for s in list_sets(session)}
        matcher.refresh(session)
        return matcher


# -- snapshot files in a folder ---------------------------------------------------------------

SNAPSHOT_PREFIX = "matcher-"
SNAPSHOTS_KEPT = 2


def _snapshots(directory: Path) -> list[Path]:
    found = [
        p
        for p in directory.glob(f"{SNAPSHOT_PREFIX}*.idx")
        if p.stem.removeprefix(SNAPSHOT_PREFIX).isdigit()
    ]
    return sorted(found, key=lambda p: int(p.stem.removeprefix(SNAPSHOT_PREFIX)))


def newest_snapshot(directory: Path) -> Path | None:
    found = _snapshots(directory)
    return found[-1] if found else None


def write_snapshot(session: Session, directory: Path) -> tuple[Path, Matcher]:
    """Build the matcher from the registry and save it as ``matcher-<change>.idx``; older
    snapshots beyond the newest few are removed."""
    matcher = Matcher.build(session)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{SNAPSHOT_PREFIX}{matcher.seq}.idx"
    matcher.save(path)
    for stale in _snapshots(directory)[:-SNAPSHOTS_KEPT]:
        stale.unlink()
    return path, matcher


def open_matcher(session: Session, directory: Path | None) -> Matcher:
    """The newest snapshot in ``directory`` brought up to date, else a matcher built from the
    registry. A damaged snapshot is skipped with a warning."""
    snapshot = newest_snapshot(directory) if directory is not None else None
    if snapshot is not None:
        try:
            return Matcher.load(snapshot, session)
        except (ValueError, OSError) as exc:
            log.warning("ignoring snapshot %s: %s", snapshot, exc)
    return Matcher.build(session)
