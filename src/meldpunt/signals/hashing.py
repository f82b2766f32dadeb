"""Bytes to signals: the one entry point the rest of meldpunt calls.

Two PDQ paths, both public:

* ``fast`` (the default): reduced-scale decoding (JPEG DCT scaling, luminance only) and the
  weight-matrix filter of ``pdq.py``, which follows the full-resolution filter; for pictures of
  quality >= 80 it stays within a few bits of the reference (see bench/README.md for figures).
  Pictures of low contrast are decoded a second time, in colour and at full size (see
  ``DEFAULT_PRECISE_BELOW``), where the hash follows the reference's to the bit in practice.
* ``exact``: full-resolution RGB through Meta's C++ reference (the ``pdqhash`` bindings), bit for
  bit the reference hash of the same pixels.

Orientation hashes (``dihedral=True``) are the hashes of the picture turned by 90, 180 and 270
degrees and mirrored, in the order of ``pdq.ORIENTATIONS``. The fast path computes them from the
same decoded pixels; the exact path hashes the eight turned pixel arrays with the reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .borders import find_border
from .errors import FileTooLarge, ImageTooLarge, SignalError, UnreadableFile
from .exact import ExactDigests, digest_bytes, digest_file
from .features import ENTRY_FEATURES, QUERY_FEATURES, LocalFeatures, local_features
from .image import ImageInfo, ImageLimits, Source, decode_cost, decode_luma, decode_rgb
from .pdq import (
    ORIENTATION_TRANSFORMS,
    ORIENTATIONS,
    LumaBuffers,
    PdqHash,
    Transform,
    luma_from_rgb,
)

# The shorter side, in pixels, that reduced decoding keeps at least (measured in bench/hashing.py).
DEFAULT_MIN_SIDE = 320
DEFAULT_MIN_QUALITY = 50
# Reduced decoding differs from the reference's pixels by an amount that does not depend on the
# picture (rounding, the Y channel instead of clipped RGB). When the coefficients lie close to
# the hash's threshold (low contrast: a copy with contrast lowered to 60%, a dark or washed-out
# picture) that flips enough bits to lose matches the reference finds at distance 31, so below
# this spread (``pdq.spread_of``) the picture is decoded again in colour at full size, as the
# reference decodes it. Measured on 900 copies of benign photos: below 12, up to 18 bits from the
# reference (the second decoding brings them to 0); above it, at most 4 bits. About 1 in 12
# unedited photos and 1 in 4 copies with contrast lowered to 60% are decoded twice.
DEFAULT_PRECISE_BELOW = 12.0


@dataclass(frozen=True)
class HashOptions:
    exact: bool = False
    dihedral: bool = False
    exif_transpose: bool = True
    min_quality: int = DEFAULT_MIN_QUALITY
    min_side: int = DEFAULT_MIN_SIDE
    precise_below: float = DEFAULT_PRECISE_BELOW  # 0: never decode a second time
    limits: ImageLimits = field(default_factory=ImageLimits)
    # a second PDQ hash of the picture without its uniform border, when it has one
    trim: bool = True
    # local features (``features.py``): 0 for none, else how many to keep
    features: int = 0


#: ``HashOptions.features`` for a picture that is checked, and for one that becomes an entry.
QUERY = QUERY_FEATURES
ENTRY = ENTRY_FEATURES


@dataclass(frozen=True)
class PdqSignal:
    """A PDQ hash with its quality; ``dihedral`` holds the 8 orientation hashes when asked."""

    hash: str
    quality: int
    low_quality: bool
    dihedral: tuple[str, ...] | None = None
    # the hash of the picture inside its border (``borders.py``), when it has one
    trimmed: str | None = None
    features: LocalFeatures | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class _Extras:
    trimmed: str | None = None
    features: LocalFeatures | None = None


def _extras(
    luma: np.ndarray[Any, Any], orientation: Transform, scale: int, options: HashOptions
) -> _Extras:
    """The trimmed hash and the local features of a (possibly reduced) luminance array in its
    stored orientation; ``orientation`` turns it the way people see it."""
    if not options.trim and not options.features:
        return _Extras()
    trimmed = None
    if options.trim:
        box = find_border(luma)
        if box is not None:
            inside = luma[box.top : box.bottom, box.left : box.right]
            buffers = LumaBuffers(
                inside,
                (box.height * scale, box.width * scale),
                scale,
                with_flips=orientation != ORIENTATION_TRANSFORMS[ORIENTATIONS[0]],
            )
            trimmed = buffers.hash(orientation)
    features = None
    if options.features:
        features = local_features(orientation.apply(luma), options.features)
    return _Extras(trimmed, features)


_Hashes = tuple[PdqHash, tuple[str, ...] | None, _Extras]


def _pdq_fast(source: Source, options: HashOptions) -> _Hashes:
    rewind = _rewinder(source, options)
    if rewind is not None:
        source = rewind()
    primary, turned, extras, precise = _pdq_decoded(source, options, options.min_side)
    if precise or primary.spread is None or primary.spread >= options.precise_below:
        return primary, turned, extras
    # low contrast: the reduced decoding's small errors would flip too many bits (the border
    # and the features are found well enough in the first decoding)
    try:
        again = _pdq_decoded(
            rewind() if rewind is not None else source,
            replace(options, trim=False, features=0),
            0,
        )
        return again[0], again[1], extras
    except ImageTooLarge:  # the full-size decoding does not fit the limits: keep the first
        return primary, turned, extras


def pdq_cost(info: ImageInfo, options: HashOptions = HashOptions()) -> int:
    """An upper estimate of the bytes ``pdq_signal(..., options)`` holds at its peak for a
    picture with this header: the larger of its two decodings when a low-contrast picture may
    be decoded again at full size (the first is freed before the second starts)."""
    if options.exact:
        return decode_cost(info, min_side=0) + info.pixels * 3  # its RGB array as well
    cost = decode_cost(info, min_side=options.min_side)
    if options.precise_below > 0:
        cost = max(cost, decode_cost(info, min_side=0))
    return cost


def _pdq_decoded(
    source: Source, options: HashOptions, min_side: int
) -> tuple[PdqHash, tuple[str, ...] | None, _Extras, bool]:
    """The fast hashes of ``source`` decoded with ``min_side``; True when the pixels were those
    the reference hashes (full size, luminance converted from RGB)."""
    decoded = decode_luma(
        source, limits=options.limits, min_side=min_side, exif_transpose=options.exif_transpose
    )
    precise = decoded.scale == 1 and not decoded.y_channel
    needs_flips = options.dihedral or decoded.orientation != ORIENTATION_TRANSFORMS[ORIENTATIONS[0]]
    buffers = LumaBuffers(decoded.luma, decoded.full_shape, decoded.scale, with_flips=needs_flips)
    primary = buffers.pdq(decoded.orientation)
    extras = _extras(decoded.luma, decoded.orientation, decoded.scale, options)
    if not options.dihedral:
        return primary, None, extras, precise
    turned = tuple(
        buffers.hash(decoded.orientation.then(ORIENTATION_TRANSFORMS[o])) for o in ORIENTATIONS
    )
    return primary, turned, extras, precise


def _rewinder(source: Source, options: HashOptions) -> Callable[[], Source] | None:
    """For a stream, a function that gives it back from its start, so that a low-contrast
    picture can be decoded twice; None for bytes and paths, which can simply be read again."""
    if isinstance(source, (bytes, str, os.PathLike)):
        return None
    if source.seekable():
        start = source.tell()

        def seek_back() -> Source:
            source.seek(start)
            return source

        return seek_back
    data = source.read(options.limits.max_bytes + 1)
    if len(data) > options.limits.max_bytes:
        limit = options.limits.max_bytes
        raise FileTooLarge(f"stream is over the limit for images of {limit:,} bytes")
    return lambda: data


def _reference_pdq(rgb: np.ndarray[Any, Any]) -> PdqHash:
    import pdqhash  # the C++ reference; imported lazily, the fast path does not need it

    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    value = int("".join("1" if b else "0" for b in bits), 2)
    return PdqHash(f"{value:064x}", int(quality))


def _pdq_exact(source: Source, options: HashOptions) -> _Hashes:
    decoded = decode_rgb(source, limits=options.limits, exif_transpose=options.exif_transpose)
    seen = decoded.orientation.apply(decoded.rgb)
    primary = _reference_pdq(seen)
    extras = _Extras()
    if options.trim or options.features:
        luma = luma_from_rgb(np.asarray(seen, dtype=np.uint8))
        identity = ORIENTATION_TRANSFORMS[ORIENTATIONS[0]]
        extras = _extras(luma, identity, 1, replace(options, trim=False))
        box = find_border(luma) if options.trim else None
        if box is not None:  # the reference's own hash of the pixels inside the border
            inside = seen[box.top : box.bottom, box.left : box.right]
            extras = _Extras(_reference_pdq(inside).hash, extras.features)
    if not options.dihedral:
        return primary, None, extras
    turned = tuple(_reference_pdq(ORIENTATION_TRANSFORMS[o].apply(seen)).hash for o in ORIENTATIONS)
    return primary, turned, extras


def pdq_signal(source: Source, options: HashOptions = HashOptions()) -> PdqSignal:
    """The PDQ signal of an image (path, bytes or binary stream). Raises a ``SignalError``."""
    compute = _pdq_exact if options.exact else _pdq_fast
    primary, turned, extras = compute(source, options)
    return PdqSignal(
        hash=primary.hash,
        quality=primary.quality,
        low_quality=primary.quality < options.min_quality,
        dihedral=turned,
        trimmed=extras.trimmed if extras.trimmed != primary.hash else None,
        features=extras.features,
    )


@dataclass(frozen=True)
class FileSignals:
    """Everything meldpunt knows of one file. ``error`` says why a part is missing."""

    path: str
    digests: ExactDigests | None = None
    pdq: PdqSignal | None = None
    error: str | None = None
    error_code: str | None = None

    def as_record(self, *, dihedral: bool = False) -> dict[str, object]:
        record: dict[str, object] = {"path": self.path}
        if self.digests is not None:
            record.update(md5=self.digests.md5, sha1=self.digests.sha1, sha256=self.digests.sha256)
        if self.digests is not None or self.pdq is not None:
            record["pdq"] = self.pdq.hash if self.pdq else None
            record["pdq_quality"] = self.pdq.quality if self.pdq else None
            if self.pdq is not None and self.pdq.low_quality:
                record["pdq_low_quality"] = True
            if dihedral:
                record["pdq_dihedral"] = list(self.pdq.dihedral or ()) if self.pdq else None
            if self.pdq is not None and self.pdq.trimmed:
                record["pdq_trimmed"] = self.pdq.trimmed
        if self.error is not None:
            record["error"] = self.error
            record["error_code"] = self.error_code
        return record


def hash_file(path: str | os.PathLike[str], options: HashOptions = HashOptions()) -> FileSignals:
    """Exact digests and PDQ of one file; never raises for bad input, it reports it.

    A file within the image size limit is read once and both hashed and decoded from memory; a
    larger one is streamed for its digests and gets no PDQ.
    """
    name = os.fspath(path)
    try:
        size = os.stat(path).st_size
        if size > options.limits.max_bytes:
            digests = digest_file(path)
            raise _Partial(
                digests,
                FileTooLarge(
                    f"file is {size:,} bytes; the limit for images is {options.limits.max_bytes:,}"
                ),
            )
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as exc:
            raise UnreadableFile(f"cannot read {name}: {exc.strerror or exc}") from exc
        digests = digest_bytes(data)
        try:
            pdq = pdq_signal(data, options)
        except SignalError as exc:
            raise _Partial(digests, exc) from exc
        return FileSignals(name, digests, pdq)
    except _Partial as partial:
        return FileSignals(name, partial.digests, None, str(partial.cause), partial.cause.code)
    except OSError as exc:
        return FileSignals(name, None, None, f"cannot read {name}: {exc.strerror or exc}",
                           UnreadableFile.code)  # fmt: skip
    except SignalError as exc:
        return FileSignals(name, None, None, str(exc), exc.code)


class _Partial(Exception):
    def __init__(self, digests: ExactDigests, cause: SignalError) -> None:
        super().__init__(str(cause))
        self.digests = digests
        self.cause = cause


__all__ = [
    "DEFAULT_MIN_QUALITY",
    "DEFAULT_MIN_SIDE",
    "DEFAULT_PRECISE_BELOW",
    "FileSignals",
    "HashOptions",
    "PdqSignal",
    "Transform",
    "ENTRY",
    "QUERY",
    "hash_file",
    "pdq_signal",
]
