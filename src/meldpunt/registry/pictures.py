"""Entries made from pictures: every signal meldpunt derives from pixels, the pixels not kept.

A list that arrives as hashes has one PDQ hash per picture; when meldpunt holds the picture (a
file added to a set, the hotline's fetch of new material), its entry gets more:

* ``md5``, ``sha1``, ``sha256`` and ``pdq`` as always;
* ``pdq_orientation``: the hashes of the picture turned and mirrored (7 at most; a platform that
  hashes a turned copy itself then matches one of them exactly, no estimate needed);
* ``pdq_trimmed``: the hash of the picture without its border, when it has one;
* ``features``: the digest of its local features (``signals.features``), which are kept in
  ``item_features``; they find crops, overlays and small rotations of it.

``entry_signals`` turns a picture's signals into the (type, value) pairs and the features to
keep; ``keep_features`` stores features once per digest; ``add_pictures`` adds files to a set.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from meldpunt.registry.errors import InvalidInput
from meldpunt.registry.features import keep_features
from meldpunt.registry.items import ItemResult, add_item
from meldpunt.registry.matching import Query
from meldpunt.registry.sets import SetRef
from meldpunt.signals import ExactDigests, HashOptions, PdqSignal, SignalError, digest_bytes
from meldpunt.signals.features import LocalFeatures
from meldpunt.signals.hashing import ENTRY, pdq_signal

__all__ = [
    "PictureEntry",
    "PictureOutcome",
    "add_entry",
    "add_pictures",
    "entry_of_query",
    "entry_options",
    "entry_signals",
    "keep_features",
    "pixel_signals_json",
    "signals_from_json",
]


@dataclass(frozen=True)
class PictureEntry:
    """What one picture adds to a set: the signals, and the features their digest names."""

    signals: list[tuple[str, str]]
    features: bytes | None = None


def entry_options(options: HashOptions) -> HashOptions:
    """``options`` as an entry needs them: orientation hashes, the trimmed hash, features."""
    from dataclasses import replace

    return replace(options, dihedral=True, trim=True, features=ENTRY)


def entry_signals(
    digests: ExactDigests | None, pdq: PdqSignal | None, *, min_quality: int = 0
) -> PictureEntry:
    """The signals an entry made from this picture carries. PDQ hashes below ``min_quality``
    are left out (they would not be matched), and so are features then."""
    pairs: list[tuple[str, str]] = []
    if digests is not None:
        pairs += [("md5", digests.md5), ("sha1", digests.sha1), ("sha256", digests.sha256)]
    blob = None
    if pdq is not None and pdq.quality >= min_quality:
        pairs.append(("pdq", pdq.hash))
        turned = [h for h in dict.fromkeys(pdq.dihedral or ()) if h != pdq.hash]
        pairs += [("pdq_orientation", h) for h in turned]
        if pdq.trimmed and pdq.trimmed != pdq.hash:
            pairs.append(("pdq_trimmed", pdq.trimmed))
        if pdq.features is not None and len(pdq.features):
            blob = pdq.features.strongest(ENTRY).to_bytes()
            pairs.append(("features", hashlib.sha256(blob).hexdigest()))
    return PictureEntry(pairs, blob)


def entry_of_query(query: Query, *, min_quality: int = 0) -> PictureEntry:
    """``entry_signals`` of a picture's query as ``matching.picture_query`` built it."""
    pdq = None
    if query.pdq is not None:
        quality = query.pdq_quality if query.pdq_quality is not None else 0
        pdq = PdqSignal(query.pdq, quality, quality < min_quality, query.pdq_dihedral or None,
                        query.pdq_trimmed, query.local_features)  # fmt: skip
    entry = entry_signals(None, pdq, min_quality=min_quality)
    digests = [(kind, str(getattr(query, kind))) for kind in ("md5", "sha1", "sha256")
               if getattr(query, kind)]  # fmt: skip
    return PictureEntry(digests + entry.signals, entry.features)


def pixel_signals_json(entry: PictureEntry) -> str:
    """An entry's signals as JSON, to keep beside something that may become an entry later
    (the hotline's fetched item): the pairs and the features (base64)."""
    record: dict[str, object] = {"signals": entry.signals}
    if entry.features is not None:
        record["features"] = base64.b64encode(entry.features).decode()
    return json.dumps(record, separators=(",", ":"))


def signals_from_json(text: str | None) -> PictureEntry | None:
    """What ``pixel_signals_json`` wrote; None for nothing or anything damaged."""
    if not text:
        return None
    try:
        record = json.loads(text)
        pairs = [(str(kind), str(value)) for kind, value in record["signals"]]
        blob = base64.b64decode(record["features"]) if record.get("features") else None
    except (ValueError, KeyError, TypeError):
        return None
    if blob is not None:
        try:
            LocalFeatures.from_bytes(blob)
        except SignalError:
            blob = None
            pairs = [p for p in pairs if p[0] != "features"]
    return PictureEntry(pairs, blob)


def add_entry(
    session: Session,
    hash_set: SetRef,
    entry: PictureEntry,
    *,
    category: str | None = None,
    reference: str | None = None,
    actor: str = "system",
) -> ItemResult:
    """Add (or update) the item of one picture's signals."""
    if not entry.signals:
        raise InvalidInput("the picture gave no signals")
    if entry.features is not None:
        keep_features(session, entry.features)
    return add_item(session, hash_set, entry.signals, category=category, reference=reference,
                    actor=actor)  # fmt: skip


@dataclass(frozen=True)
class PictureOutcome:
    name: str
    item_id: int | None
    outcome: str  # added, updated, unchanged, rejected
    signals: int = 0
    problem: str | None = None


def add_pictures(
    session: Session,
    hash_set: SetRef,
    pictures: Iterable[tuple[str, bytes | SignalError]],
    options: HashOptions,
    *,
    category: str | None = None,
    actor: str = "system",
    decode: Callable[[bytes, HashOptions], PdqSignal] = pdq_signal,
) -> list[PictureOutcome]:
    """Entries from pictures (name, bytes): each hashed under ``options`` (its limits apply) with
    every signal meldpunt derives from pixels. A picture that cannot be hashed (or that comes
    as the ``SignalError`` that says why it could not be read) is named with why, and the others
    go on; the bytes are not kept. ``decode`` computes the PDQ signal (the service passes one
    that reserves the decoding memory first)."""
    out = []
    wanted = entry_options(options)
    for name, data in pictures:
        if isinstance(data, SignalError):
            out.append(PictureOutcome(name, None, "rejected", problem=str(data)))
            continue
        try:
            pdq = decode(data, wanted)
        except SignalError as exc:
            out.append(PictureOutcome(name, None, "rejected", problem=str(exc)))
            continue
        entry = entry_signals(digest_bytes(data), pdq, min_quality=options.min_quality)
        if not any(kind == "pdq" for kind, _ in entry.signals):
            problem = f"PDQ quality {pdq.quality} is below {options.min_quality}: not added"
            out.append(PictureOutcome(name, None, "rejected", problem=problem))
            continue
        try:
            with session.begin_nested():
                result = add_entry(session, hash_set, entry, category=category,
                                   reference=name[:200] or None, actor=actor)  # fmt: skip
        except InvalidInput as exc:
            out.append(PictureOutcome(name, None, "rejected", problem=str(exc)))
            continue
        out.append(PictureOutcome(name, result.item.id, result.outcome, len(entry.signals)))
    return out
