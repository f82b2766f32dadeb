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
* the PDQ query is the picture's hash and, when given, its 8 orientation hashes; a hash sent
  alone (no orientation hashes) is also searched in the 7 orientations estimated from it
  (``signals.pdq.estimate_orientations``), under ``estimated_threshold`` when that is tighter
  than the set's own; the hash of the picture without its border, when it has one;
* entries made from pictures carry their own orientation hashes, their trimmed hash and local
  features; a query with local features (meldpunt hashed the picture) is also looked up by them:
  entries that enough of its features find are checked geometrically, and a match needs
  ``min_inliers`` features in one placement (``signals.features.verify``);
* every match says which way it was found (``MatchWay``), and a set can turn ways off.
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
from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt.index import ExactIndex, PdqIndex, SnapshotError, hashes_from_hex, load, save
from meldpunt.index.features import FeatureIndex
from meldpunt.registry.categories import NEVER_MATCHED
from meldpunt.registry.changes import Change, active_signals, changes_since, current_seq
from meldpunt.registry.sets import HashSetInfo, get_set, list_sets
from meldpunt.registry.signal_types import EMPTY_CONTENT_DIGESTS
from meldpunt.registry.vocabulary import MatchWay
from meldpunt.signals import (
    ExactDigests,
    HashOptions,
    PdqSignal,
    SignalError,
    digest_bytes,
    pdq_signal,
)
from meldpunt.signals import types as signal_types
from meldpunt.signals.features import LocalFeatures, descriptor_words, verify
from meldpunt.signals.pdq import estimate_orientations
from meldpunt.store.models import ItemFeatures

log = logging.getLogger(__name__)

DIGEST_BYTES = {"md5": 16, "sha1": 20, "sha256": 32}
EXACT_TYPES = tuple(DIGEST_BYTES)
MAX_PDQ_RADIUS = 64
SNAPSHOT_VERSION = 2
#: The way each PDQ-like type was stored, as the PDQ payload's ``way`` code.
STORED_WAYS = {"pdq": MatchWay.plain, "pdq_orientation": MatchWay.orientation,
               "pdq_trimmed": MatchWay.trimmed}  # fmt: skip
WAY_CODES = {way: code for code, way in enumerate(MatchWay)}
WAYS = tuple(MatchWay)


@dataclass(frozen=True)
class FeatureRules:
    """How local features are looked up and checked (``Settings.match_feature_*``)."""

    radius: int = 32  # bits between a query's descriptor and a stored one
    min_votes: int = 6  # descriptors that must find an entry before it is checked
    min_inliers: int = 15  # features in one placement for a verified match
    candidates: int = 10  # entries checked per picture at most


@dataclass(frozen=True)
class MatchRules:
    """The service's choices for the ways beyond plain matching (settings ``match_*``)."""

    #: search a lone PDQ hash's estimated orientations (a query can say otherwise)
    estimate: bool = True
    #: the most bits an estimated orientation may be from an entry (None: the set's threshold)
    estimated_threshold: int | None = None
    features: FeatureRules = FeatureRules()

    @classmethod
    def from_settings(cls, settings: Any) -> MatchRules:
        return cls(
            estimate=settings.match_orientation_estimates,
            estimated_threshold=settings.match_estimated_threshold,
            features=FeatureRules(
                radius=settings.match_feature_radius,
                min_votes=settings.match_feature_min_votes,
                min_inliers=settings.match_feature_min_inliers,
            ),
        )


DEFAULT_RULES = MatchRules()


def _configured_rules() -> MatchRules:
    from meldpunt.config import get_settings

    return MatchRules.from_settings(get_settings())


@dataclass(frozen=True)
class Match:
    set: str
    set_id: int
    entry: int
    category: str
    signal_type: str
    distance: int
    way: str = MatchWay.plain
    inliers: int | None = None  # for a verified match: the features in one placement

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "set": self.set,
            "entry": self.entry,
            "category": self.category,
            "signal_type": self.signal_type,
            "distance": self.distance,
            "way": str(self.way),
        }
        if self.inliers is not None:
            out["inliers"] = self.inliers
        return out


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
    pdq_trimmed: str | None = None
    local_features: LocalFeatures | None = field(default=None, compare=False, repr=False)
    #: search the orientations estimated from a lone PDQ hash (None: as the rules say)
    estimate: bool | None = None

    def matched_value(self, signal_type: str) -> str:
        """The value of this query that a match of ``signal_type`` stands for (for a verified
        match, which has no one value, the picture's PDQ hash or else its SHA-256)."""
        if signal_type in DIGEST_BYTES or signal_type == "pdq":
            return str(getattr(self, signal_type) or "")
        return self.pdq or self.sha256 or ""

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
            pdq_trimmed=pdq.trimmed if pdq else None,
            local_features=pdq.features if pdq else None,
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
        self.way = np.zeros(1024, dtype=np.int8)  # ``WAY_CODES`` of how the value was stored

    def extend(
        self,
        set_ids: Sequence[int],
        item_ids: Sequence[int],
        codes: Sequence[int],
        ways: Sequence[int] | int = 0,
    ) -> int:
        first, count = self.size, len(set_ids)
        if first + count > len(self.set_id):
            room = max(first + count, 2 * len(self.set_id))
            self.set_id = np.resize(self.set_id, room)
            self.item_id = np.resize(self.item_id, room)
            self.category = np.resize(self.category, room)
            self.way = np.resize(self.way, room)
        self.set_id[first : first + count] = set_ids
        self.item_id[first : first + count] = item_ids
        self.category[first : first + count] = codes
        self.way[first : first + count] = ways
        self.size += count
        return first

    def arrays(self, prefix: str) -> dict[str, NDArray[Any]]:
        return {
            f"{prefix}.set_id": self.set_id[: self.size],
            f"{prefix}.item_id": self.item_id[: self.size],
            f"{prefix}.category": self.category[: self.size],
            f"{prefix}.way": self.way[: self.size],
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]], prefix: str) -> _Payload:
        payload = cls()
        try:
            payload.set_id = np.array(arrays[f"{prefix}.set_id"], dtype=np.int32).reshape(-1)
            payload.item_id = np.array(arrays[f"{prefix}.item_id"], dtype=np.int64).reshape(-1)
            payload.category = np.array(arrays[f"{prefix}.category"], dtype=np.int16).reshape(-1)
            payload.way = np.array(arrays[f"{prefix}.way"], dtype=np.int8).reshape(-1)
        except KeyError as exc:
            raise SnapshotError(f"the snapshot lacks the array {exc}") from exc
        payload.size = len(payload.set_id)
        if not len(payload.item_id) == len(payload.category) == len(payload.way) == payload.size:
            raise SnapshotError(f"snapshot payload {prefix} does not fit together")
        return payload

    def check(self, slots: int, codes: int, name: str) -> None:
        """Refuse a loaded payload that an index slot or a category code would read past."""
        category = self.category[: self.size]
        way = self.way[: self.size]
        if slots > self.size or (
            self.size
            and not (
                0 <= int(category.min()) <= int(category.max()) < codes
                and 0 <= int(way.min()) <= int(way.max()) < len(WAYS)
            )
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
    # local features of entries made from pictures: owner = a slot of ``feature_payload``
    features: FeatureIndex = field(default_factory=FeatureIndex)
    feature_payload: _Payload = field(default_factory=_Payload)
    codes: list[str] = field(default_factory=list)
    #: the ways beyond plain matching, as the settings say (a call can pass its own)
    rules: MatchRules = field(default_factory=_configured_rules)
    _code_of: dict[str, int] = field(default_factory=dict, repr=False)
    _feature_owner: dict[tuple[int, int, str], int] = field(default_factory=dict, repr=False)

    # -- building and following ---------------------------------------------------------------

    @classmethod
    def build(cls, session: Session, chunk: int = 500_000) -> Matcher:
        """Everything active in the registry now (then follow it with ``refresh``)."""
        matcher = cls(seq=current_seq(session))
        pending: dict[str, list[tuple[str, int, int, int]]] = {
            "pdq": [],
            **{t: [] for t in EXACT_TYPES},
        }
        pdq_ways: list[int] = []
        features: list[tuple[str, int, int, int]] = []
        pdq_parts: list[NDArray[np.uint64]] = []
        for signal in active_signals(session):
            kind = signal.signal_type
            row = (signal.value, signal.set_id, signal.item_id, matcher._code(signal.category))
            if kind in STORED_WAYS:
                pending["pdq"].append(row)
                pdq_ways.append(WAY_CODES[STORED_WAYS[kind]])
                if len(pending["pdq"]) >= chunk:
                    pdq_parts.append(matcher._stage_pdq(pending["pdq"], pdq_ways))
                    pending["pdq"], pdq_ways = [], []
            elif kind == "features":
                features.append(row)
            elif kind in pending:
                pending[kind].append(row)
            # opaque types (PhotoDNA) are kept in the registry, not matched
        pdq_parts.append(matcher._stage_pdq(pending["pdq"], pdq_ways))
        matcher.pdq = PdqIndex(np.concatenate(pdq_parts))
        for kind in EXACT_TYPES:
            index, payload = matcher.exact[kind]
            rows = pending[kind]
            first = payload.extend([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
            index.add((bytes.fromhex(r[0]) for r in rows), range(first, first + len(rows)))
            index.compact()
        matcher._add_features(session, features)
        matcher.sets = {s.id: s for s in list_sets(session)}
        matcher.refresh(session)
        return matcher

    def _stage_pdq(
        self, rows: list[tuple[str, int, int, int]], ways: list[int]
    ) -> NDArray[np.uint64]:
        self.pdq_payload.extend(
            [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], ways
        )
        return hashes_from_hex([r[0] for r in rows])

    def _add_features(self, session: Session, rows: list[tuple[str, int, int, int]]) -> None:
        """Entries' local features, read from ``item_features`` by the digests that their
        ``features`` signals name (a digest whose features are missing or damaged is skipped
        with a warning: the entry's hashes still match)."""
        for start in range(0, len(rows), 1000):
            part = rows[start : start + 1000]
            digests = sorted({r[0] for r in part})
            query = select(ItemFeatures.digest, ItemFeatures.data).where(
                ItemFeatures.digest.in_(digests)
            )
            found = {digest: data for digest, data in session.execute(query)}
            owners: list[NDArray[np.int64]] = []
            points: list[NDArray[np.float32]] = []
            words: list[NDArray[np.uint64]] = []
            for digest, set_id, item_id, code in part:
                key = (set_id, item_id, digest)
                data = found.get(digest)
                if data is None or key in self._feature_owner:
                    if data is None:
                        log.warning("features %s of entry %s are missing", digest, item_id)
                    continue
                try:
                    local = LocalFeatures.from_bytes(bytes(data))
                except SignalError as exc:
                    log.warning("features %s of entry %s: %s", digest, item_id, exc)
                    continue
                owner = self.feature_payload.extend([set_id], [item_id], [code])
                self._feature_owner[key] = owner
                owners.append(np.full(len(local), owner, dtype=np.int64))
                points.append(local.points)
                words.append(descriptor_words(local.descriptors))
            if owners:
                self.features.add_many(
                    np.concatenate(owners), np.concatenate(points), np.concatenate(words)
                )

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
        if kind is None or value is None:
            return
        if kind == "features":
            self._apply_features(change, session)
            return
        if kind not in STORED_WAYS and kind not in DIGEST_BYTES:
            return
        slots = self._slots_of(kind, value, change.set_id, change.item_id or 0)
        if change.action == "remove":
            self._remove(kind, slots)
        elif change.action in ("add", "update"):
            code = self._code(change.category)
            if slots:
                payload = self.pdq_payload if kind in STORED_WAYS else self.exact[kind][1]
                payload.category[slots] = code
            elif change.action == "add":
                self._add(kind, value, change.set_id, change.item_id or 0, code)

    def _apply_features(self, change: Change, session: Session | None) -> None:
        key = (change.set_id, change.item_id or 0, str(change.value))
        owner = self._feature_owner.get(key)
        if change.action == "remove":
            if owner is not None:
                self.features.remove(owner)
                del self._feature_owner[key]
        elif owner is not None:
            self.feature_payload.category[owner] = self._code(change.category)
        elif change.action == "add" and session is not None:
            row = (key[2], key[0], key[1], self._code(change.category))
            self._add_features(session, [row])

    def _slots_of(self, kind: str, value: str, set_id: int, item_id: int) -> list[int]:
        if kind in STORED_WAYS:
            found = [slot for slot, _ in self.pdq.query(value, 0)]
            payload = self.pdq_payload
            way = WAY_CODES[STORED_WAYS[kind]]
            return [
                s
                for s in found
                if payload.set_id[s] == set_id
                and payload.item_id[s] == item_id
                and payload.way[s] == way
            ]
        index, payload = self.exact[kind]
        found = index.lookup(bytes.fromhex(value))
        return [s for s in found if payload.set_id[s] == set_id and payload.item_id[s] == item_id]

    def _add(self, kind: str, value: str, set_id: int, item_id: int, code: int) -> None:
        if kind in STORED_WAYS:
            self.pdq.add([value])
            self.pdq_payload.extend([set_id], [item_id], [code], WAY_CODES[STORED_WAYS[kind]])
        else:
            index, payload = self.exact[kind]
            slot = payload.extend([set_id], [item_id], [code])
            index.add([bytes.fromhex(value)], [slot])

    def _remove(self, kind: str, slots: list[int]) -> None:
        if kind in STORED_WAYS:
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
        rules: MatchRules | None = None,
    ) -> MatchAnswer:
        """Match one picture's signals. ``categories`` filters blocklist matches by normalised
        category code, ``sets`` limits blocklists to those ids (allow-lists always apply)."""
        return self.match_many(
            [query],
            categories=categories,
            sets=sets,
            min_quality=min_quality,
            rules=rules,
        )[0]

    def match_many(
        self,
        queries: Sequence[Query],
        *,
        categories: frozenset[str] | None = None,
        sets: Iterable[int] | None = None,
        min_quality: int = 50,
        rules: MatchRules | None = None,
    ) -> list[MatchAnswer]:
        """``match`` for many pictures: their PDQ hashes are searched as one batch.

        ``rules.estimate`` (or the query's own ``estimate``): a PDQ hash sent without
        orientation hashes is searched in its 7 estimated orientations too, each within
        ``rules.estimated_threshold`` as well as the set's threshold. ``rules.features``: how
        queries' local features are looked up (queries without features are not)."""
        rules = rules or self.rules
        chosen = None if sets is None else set(sets)
        # (type, slot, distance, the query's way, its threshold or -1 for the set's own)
        hits: list[list[tuple[str, int, int, int, int]]] = [[] for _ in queries]
        notes: list[list[str]] = [[] for _ in queries]
        values: list[str] = []
        owners: list[tuple[int, int, int]] = []  # (query, way code, threshold)
        plain, turned, trimmed = (WAY_CODES[w] for w in WAYS[:3])
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
                    hits[q].extend((kind, s, 0, plain, -1) for s in slots)
        for q, query in enumerate(queries):
            if not query.pdq:
                continue
            if query.pdq_quality is not None and query.pdq_quality < min_quality:
                notes[q].append(
                    f"pdq quality {query.pdq_quality} is below {min_quality}: not matched"
                )
                continue
            searched: dict[str, tuple[int, int]] = {query.pdq: (plain, -1)}
            for value in query.pdq_dihedral:
                searched.setdefault(value, (turned, -1))
            if query.pdq_trimmed:
                searched.setdefault(query.pdq_trimmed, (trimmed, -1))
            estimate = rules.estimate if query.estimate is None else query.estimate
            if estimate and not query.pdq_dihedral:
                limit = -1 if rules.estimated_threshold is None else rules.estimated_threshold
                for value in estimate_orientations(query.pdq)[1:]:
                    searched.setdefault(value, (turned, limit))
            for value, (way, limit) in searched.items():
                values.append(value)
                owners.append((q, way, limit))
        if values:
            radius = min(
                MAX_PDQ_RADIUS, max((s.pdq_threshold for s in self.sets.values()), default=0)
            )
            found = self.pdq.query_batch(values, radius)
            for v, slot, distance in zip(
                found.query.tolist(), found.slot.tolist(), found.distance.tolist(), strict=True
            ):
                q, way, limit = owners[v]
                hits[q].append(("pdq", slot, distance, way, limit))
        verified = self._verified(queries, rules.features)
        return [
            self._answer(h, n, chosen, categories, v)
            for h, n, v in zip(hits, notes, verified, strict=True)
        ]

    def _verified(self, queries: Sequence[Query], rules: FeatureRules) -> list[list[Match]]:
        """The entries whose local features a query's own find in one placement."""
        out: list[list[Match]] = [[] for _ in queries]
        if not len(self.features):
            return out
        for q, query in enumerate(queries):
            local = query.local_features
            if local is None or len(local) < rules.min_inliers:
                continue
            words = descriptor_words(local.descriptors)
            for candidate in self.features.candidates(
                words, radius=rules.radius, min_votes=rules.min_votes, limit=rules.candidates
            ):
                if candidate.votes < rules.min_inliers:
                    continue
                geometry = verify(local.points[candidate.query_rows], candidate.points)
                if geometry.inliers < rules.min_inliers:
                    continue
                payload = self.feature_payload
                hash_set = self.sets.get(int(payload.set_id[candidate.owner]))
                if hash_set is None or not hash_set.active:
                    continue
                out[q].append(
                    Match(
                        hash_set.name,
                        hash_set.id,
                        int(payload.item_id[candidate.owner]),
                        self.codes[int(payload.category[candidate.owner])],
                        "features",
                        0,
                        MatchWay.verified,
                        geometry.inliers,
                    )
                )
        return out

    def _answer(
        self,
        hits: list[tuple[str, int, int, int, int]],
        notes: list[str],
        chosen: set[int] | None,
        categories: frozenset[str] | None,
        verified: list[Match],
    ) -> MatchAnswer:
        if not hits and not verified:  # most checked pictures
            return MatchAnswer(notes=tuple(notes)) if notes else NO_MATCH
        best: dict[tuple[int, int, str], Match] = {}
        for kind, slot, distance, way, limit in hits:
            match = self._resolve(kind, slot, distance, way, limit)
            if match is None:
                continue
            key = (match.set_id, match.entry, kind)
            known = best.get(key)
            if known is None or (distance, WAY_CODES[MatchWay(match.way)]) < (
                known.distance,
                WAY_CODES[MatchWay(known.way)],
            ):
                best[key] = match
        found = {(m.set_id, m.entry) for m in best.values()}
        for match in verified:
            if (match.set_id, match.entry) not in found and (
                MatchWay.verified not in self.sets[match.set_id].ways_off
            ):
                best[(match.set_id, match.entry, match.signal_type)] = match
        allow = [m for m in best.values() if self.sets[m.set_id].is_allowlist]
        block = [
            m
            for m in best.values()
            if not self.sets[m.set_id].is_allowlist
            and m.category not in NEVER_MATCHED
            and (chosen is None or m.set_id in chosen)
            and (categories is None or m.category in categories)
        ]
        # an exact allow-list match suppresses every match, a perceptual one the perceptual ones
        exact_allow = any(m.signal_type in DIGEST_BYTES for m in allow)
        near_allow = any(m.signal_type not in DIGEST_BYTES for m in allow)
        suppressed = [
            m for m in block if exact_allow or (near_allow and m.signal_type not in DIGEST_BYTES)
        ]
        kept = [m for m in block if m not in suppressed]

        def order(m: Match) -> tuple[int, int, str, int]:
            return (m.distance, WAY_CODES[MatchWay(m.way)], m.set, m.entry)

        return MatchAnswer(
            tuple(sorted(kept, key=order)),
            tuple(sorted(allow, key=order)),
            tuple(sorted(suppressed, key=order)),
            tuple(notes),
        )

    def _resolve(self, kind: str, slot: int, distance: int, way: int, limit: int) -> Match | None:
        payload = self.pdq_payload if kind == "pdq" else self.exact[kind][1]
        hash_set = self.sets.get(int(payload.set_id[slot]))
        if hash_set is None or not hash_set.active:
            return None
        found_way = WAYS[way]
        if kind == "pdq":
            if distance > hash_set.pdq_threshold or (limit >= 0 and distance > limit):
                return None
            stored = WAYS[int(payload.way[slot])]
            # the less direct of the two: trimmed before orientation before plain
            found_way = max(found_way, stored, key=lambda w: WAY_CODES[w])
            if stored in hash_set.ways_off or found_way in hash_set.ways_off:
                return None
        return Match(
            hash_set.name,
            hash_set.id,
            int(payload.item_id[slot]),
            self.codes[int(payload.category[slot])],
            kind,
            distance,
            found_way,
        )

    # -- snapshots ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        arrays: dict[str, NDArray[Any]] = {}
        arrays.update({f"pdq.{k}": v for k, v in self.pdq.arrays().items()})
        arrays.update(self.pdq_payload.arrays("pdq.payload"))
        for kind, (index, payload) in self.exact.items():
            arrays.update(index.arrays(kind))
            arrays.update(payload.arrays(f"{kind}.payload"))
        arrays.update({f"features.{k}": v for k, v in self.features.arrays().items()})
        arrays.update(self.feature_payload.arrays("features.payload"))
        owners = sorted(self._feature_owner.items(), key=lambda kv: kv[1])
        arrays["features.keys.owner"] = np.array([o for _, o in owners], dtype=np.int64)
        arrays["features.keys.digest"] = np.frombuffer(
            b"".join(bytes.fromhex(key[2]) for key, _ in owners), dtype=np.uint8
        ).reshape(-1, 32)
        meta = {"version": SNAPSHOT_VERSION, "seq": self.seq, "codes": self.codes}
        save(path, arrays, meta)

    def _load_features(self, arrays: dict[str, NDArray[Any]]) -> None:
        features = {
            k.removeprefix("features."): v
            for k, v in arrays.items()
            if k.startswith("features.") and k.count(".") == 1
        }
        self.features = FeatureIndex.from_arrays(features)
        self.feature_payload = _Payload.from_arrays(arrays, "features.payload")
        try:
            owners = np.asarray(arrays["features.keys.owner"], dtype=np.int64).reshape(-1)
            digests = np.asarray(arrays["features.keys.digest"], dtype=np.uint8).reshape(-1, 32)
        except (KeyError, ValueError) as exc:
            raise SnapshotError(f"the snapshot's feature keys do not fit: {exc}") from exc
        size = self.feature_payload.size
        if len(owners) != len(digests) or (
            len(owners) and not 0 <= owners.min() <= owners.max() < size
        ):
            raise SnapshotError("the snapshot's feature keys do not fit its payload")
        payload = self.feature_payload
        self._feature_owner = {
            (int(payload.set_id[o]), int(payload.item_id[o]), bytes(d).hex()): int(o)
            for o, d in zip(owners.tolist(), digests, strict=True)
        }

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
        matcher._load_features(arrays)
        for kind, size in DIGEST_BYTES.items():
            matcher.exact[kind] = (
                ExactIndex.from_arrays(arrays, kind, size),
                _Payload.from_arrays(arrays, f"{kind}.payload"),
            )
        # checked now so that a damaged file is refused here, not by failing requests later
        matcher.pdq_payload.check(matcher.pdq.slots, len(matcher.codes), "pdq")
        matcher.feature_payload.check(0, len(matcher.codes), "features")
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
