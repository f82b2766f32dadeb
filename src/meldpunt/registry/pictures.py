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
from meldpunt.registry.locking import lock_registry
from meldpunt.registry.matching import Query
from meldpunt.registry.sets import SetRef, get_set
from meldpunt.signals import ExactDigests, HashOptions, PdqSignal, SignalError, digest_bytes
from meldpunt.signals.features import LocalFeatures
from meldpunt.signals.hashing import ENTRY, pdq_signal
from meldpunt.text import TextError, check_text, printable_line

__all__ = [
    "PictureEntry",
    "PictureOutcome",
    "add_entry",
    "add_pictures",
    "check_category",
    "entry_of_query",
    "entry_options",
    "entry_signals",
    "keep_features",
    "picture_label",
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
    code: str | None = None  # why it was rejected, for machines: not_an_image, low_quality, ...


#: A reference (a picture's name) and a category as an entry keeps them.
MAX_REFERENCE = 200
MAX_CATEGORY = 100


def picture_label(name: str) -> str:
    """A picture's name as its outcome and its entry's reference carry it: a file's name is
    only a label, so characters that could not be stored or shown are replaced, not refused."""
    return printable_line(name, max_length=MAX_REFERENCE) or "picture"


def check_category(category: str | None) -> str | None:
    """The category pictures are added with, or None for the set's default; InvalidInput for
    text no entry could carry (checked once, before any picture is decoded)."""
    if category is None or not category.strip():
        return None
    try:
        return check_text(category.strip(), "the category", max_length=MAX_CATEGORY)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None


def add_pictures(
    session: Session,
    hash_set: SetRef,
    pictures: Iterable[tuple[str, bytes | SignalError]],
    options: HashOptions,
    *,
    category: str | None = None,
    actor: str = "system",
    decode: Callable[[bytes, HashOptions], PdqSignal] = pdq_signal,
    batch_size: int | None = None,
) -> list[PictureOutcome]:
    """Entries from pictures (name, bytes): each hashed under ``options`` (its limits apply) with
    every signal meldpunt derives from pixels. A picture that cannot be hashed (or that comes
    as the ``SignalError`` that says why it could not be read) is named with why, and the others
    go on; the bytes are not kept. ``decode`` computes the PDQ signal (the service passes one
    that reserves the decoding memory first, and raises when none is free).

    The pictures are decoded first, one at a time and outside any transaction, and their
    entries (a few kilobytes each) written after, under the registry's write lock taken before
    anything is read: the lock is never held while pixels are decoded, and an error while
    decoding (other than the pictures' own) leaves nothing written. With ``batch_size``, the
    entries are written and committed that many pictures at a time (the command line: a folder
    of any size in bounded memory); without it the caller commits. Call it with ``session``
    outside a transaction. Raises NotFound for an unknown set and InvalidInput for a category
    no entry could carry, before any picture is decoded."""
    wanted = entry_options(options)
    category = check_category(category)
    fresh = not session.in_transaction()
    set_id = get_set(session, hash_set).id  # an unknown set is named before any decoding
    if fresh:
        session.rollback()  # no read before the lock: the writes below begin their own
    out: list[PictureOutcome | None] = []  # in the pictures' order; None: not written yet
    pending: list[tuple[int, str, PictureEntry]] = []  # (place in out, name, entry)

    def write() -> None:
        if not pending:
            return
        lock_registry(session)  # before the first read (see locking)
        for place, name, entry in pending:
            out[place] = _write_entry(session, set_id, name, entry, category, actor)
        pending.clear()
        if batch_size is not None:
            session.commit()

    for raw_name, data in pictures:
        name = picture_label(raw_name)
        made = data if isinstance(data, SignalError) else _entry_of(data, decode, wanted, options)
        if isinstance(made, PictureEntry):
            pending.append((len(out), name, made))
            out.append(None)
        else:
            out.append(_refused(name, made))
        if batch_size is not None and len(pending) >= batch_size:
            write()
    write()
    return [o for o in out if o is not None]


def _entry_of(
    data: bytes,
    decode: Callable[[bytes, HashOptions], PdqSignal],
    wanted: HashOptions,
    options: HashOptions,
) -> PictureEntry | SignalError:
    try:
        pdq = decode(data, wanted)
    except SignalError as exc:
        return exc
    entry = entry_signals(digest_bytes(data), pdq, min_quality=options.min_quality)
    if not any(kind == "pdq" for kind, _ in entry.signals):
        problem = f"PDQ quality {pdq.quality} is below {options.min_quality}: not added"
        return SignalError(problem, code="low_quality")
    return entry


def _refused(name: str, why: SignalError | InvalidInput) -> PictureOutcome:
    return PictureOutcome(name, None, "rejected", problem=str(why), code=why.code)


def _write_entry(
    session: Session,
    set_id: int,
    name: str,
    entry: PictureEntry,
    category: str | None,
    actor: str,
) -> PictureOutcome:
    try:
        with session.begin_nested():
            result = add_entry(session, set_id, entry, category=category, reference=name,
                               actor=actor)  # fmt: skip
    except InvalidInput as exc:
        return _refused(name, exc)
    return PictureOutcome(name, result.item.id, result.outcome, len(entry.signals))
