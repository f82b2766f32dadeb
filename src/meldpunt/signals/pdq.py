"""PDQ perceptual hashing: Meta's algorithm, computed as a linear operator.

PDQ turns an image into luminance, smooths it with a "Jarosz" tent filter (two box passes along
each axis, window ``ceil(side / 128)``), samples 64 x 64 points, takes a 16 x 16 corner of their
2-D DCT and thresholds it at the median. Everything before the threshold is linear, so the filter
and the sampling together are one 64 x n weight matrix per axis:

    buffer64 = rows(H) @ luma @ cols(W).T

That gives meldpunt three things the reference does not have:

* speed: two small matrix products instead of four passes over every pixel, each done band by
  band (a sample weighs only its neighbourhood, so most of the matrix is zero);
* reduced decoding: when the image was decoded at 1/s scale (JPEG DCT scaling, or a box
  reduction), each reduced pixel stands for an s x s block of the original, so the weights are
  summed per block and the result still follows the full-resolution filter closely;
* true orientation hashes: flipping or transposing the image permutes the weights, so the eight
  orientations of the picture are eight cheap products, each the hash the picture would get if it
  were actually rotated or flipped (PDQ's own "dihedral" hashes, derived from one DCT, are not).

The bit layout and hex format are those of the reference (pdqhash / ThreatExchange).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

HASH_BITS = 256
BUFFER_SIDE = 64
LUMA_COEFFS = (0.299, 0.587, 0.114)

FloatArray = NDArray[np.floating]


class Orientation(StrEnum):
    """The eight orientations of a picture, in the order PDQ's dihedral hashes use."""

    ORIGINAL = "original"
    ROTATE_90 = "rotate90"
    ROTATE_180 = "rotate180"
    ROTATE_270 = "rotate270"
    FLIP_X = "flipx"
    FLIP_Y = "flipy"
    FLIP_PLUS_1 = "flip_plus1"
    FLIP_MINUS_1 = "flip_minus1"


ORIENTATIONS: tuple[Orientation, ...] = tuple(Orientation)


@dataclass(frozen=True)
class Transform:
    """A dihedral transform of a pixel array: optional transpose, then optional flips.

    ``apply(a) = flip_rows? ( flip_cols? ( a.T if transpose else a ) )``
    """

    transpose: bool
    flip_rows: bool
    flip_cols: bool

    def apply(self, array: NDArray[np.generic]) -> NDArray[np.generic]:
        out = array.swapaxes(0, 1) if self.transpose else array
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return out

    def then(self, other: Transform) -> Transform:
        """The transform that applies ``self`` first and ``other`` second."""
        return _composed(self, other)


@lru_cache(maxsize=64)
def _composed(first: Transform, second: Transform) -> Transform:
    probe = np.arange(6).reshape(2, 3)
    target = second.apply(first.apply(probe))
    for candidate in _ALL_TRANSFORMS:
        result = candidate.apply(probe)
        if result.shape == target.shape and np.array_equal(result, target):
            return candidate
    raise AssertionError("dihedral transforms are closed under composition")


_ALL_TRANSFORMS = tuple(
    Transform(t, r, c) for t in (False, True) for r in (False, True) for c in (False, True)
)

# What each orientation does to the pixel array, named as PDQ's dihedral hashes and its test
# images name them: "rotate90" is np.rot90 (counter-clockwise), "flipx" mirrors top to bottom,
# "flip_plus1" mirrors about the main diagonal.
ORIENTATION_TRANSFORMS: dict[Orientation, Transform] = {
    Orientation.ORIGINAL: Transform(False, False, False),
    Orientation.ROTATE_90: Transform(True, True, False),
    Orientation.ROTATE_180: Transform(False, True, True),
    Orientation.ROTATE_270: Transform(True, False, True),
    Orientation.FLIP_X: Transform(False, True, False),
    Orientation.FLIP_Y: Transform(False, False, True),
    Orientation.FLIP_PLUS_1: Transform(True, False, False),
    Orientation.FLIP_MINUS_1: Transform(True, True, True),
}

# EXIF orientation tag (0x0112) -> the transform that shows the picture as people see it.
EXIF_TRANSFORMS: dict[int, Transform] = {
    1: Transform(False, False, False),
    2: Transform(False, False, True),
    3: Transform(False, True, True),
    4: Transform(False, True, False),
    5: Transform(True, False, False),
    6: Transform(True, False, True),
    7: Transform(True, True, True),
    8: Transform(True, True, False),
}


def jarosz_window(side: int) -> int:
    """PDQ's box window for one axis: ceil(side / 128)."""
    return (side + 2 * BUFFER_SIDE - 1) // (2 * BUFFER_SIDE)


def _tents(side: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """``_compute_tents``, cached for axes of up to 65,536 pixels (8 bytes a pixel each)."""
    return _cached_tents(side) if side <= 65_536 else _compute_tents(side)


def _compute_tents(side: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """PDQ's filter-and-sample weights for one axis, compactly: row i is ``values[i]`` placed
    at pixel ``base[i]`` onwards (each tent spans about 2 * ceil(side / 128) pixels).

    The weights are those of the reference's two box passes, shrinking windows at the edges
    included: sample i averages the first pass's outputs ``mid`` in [lo[s], hi[s]], each of
    which averages the pixels [lo[mid], hi[mid]].
    """
    if side < 1:
        raise ValueError("side must be positive")
    window = jarosz_window(side)
    half = (window + 2) // 2
    outputs = np.arange(side)
    lo = np.maximum(0, outputs - window + half)
    hi = np.minimum(side - 1, outputs + half - 1)
    inv_count = 1.0 / (hi - lo + 1)
    samples = ((np.arange(BUFFER_SIDE) + 0.5) * side / BUFFER_SIDE).astype(np.int64)
    base = lo[lo[samples]]
    spans = hi[samples] - lo[samples] + 1
    rows = np.repeat(np.arange(BUFFER_SIDE), spans)
    starts = np.repeat(np.cumsum(spans) - spans, spans)
    mids = np.repeat(lo[samples], spans) + np.arange(spans.sum()) - starts
    amount = np.repeat(inv_count[samples], spans) * inv_count[mids]
    # every (sample, mid) box is a step up at its first pixel and down after its last one
    width = int((hi[hi[samples]] - base).max()) + 2
    size = BUFFER_SIDE * width
    steps = np.bincount(rows * width + lo[mids] - base[rows], amount, size)
    steps -= np.bincount(rows * width + hi[mids] + 1 - base[rows], amount, size)
    values = np.cumsum(steps.reshape(BUFFER_SIDE, width), axis=1)
    values[np.abs(values) < 1e-12] = 0.0
    return base, values


_cached_tents = lru_cache(maxsize=128)(_compute_tents)


def _weights(side: int, scale: int, reverse: bool) -> NDArray[Any]:
    """Filter weights for an axis of ``side`` pixels that was decoded at 1/scale: reduced pixel
    k stands for original pixels [k*scale, (k+1)*scale), and its weight is the sum of theirs.
    ``reverse`` gives the weights of the mirrored axis (for flipped orientations)."""
    base, values = _tents(side)
    pixels = np.minimum(base[:, None] + np.arange(values.shape[1]), side - 1)
    if reverse:
        pixels = side - 1 - pixels
    columns = -(-side // scale)
    cells = np.arange(BUFFER_SIDE)[:, None] * columns + pixels // scale
    dense = np.bincount(cells.ravel(), values.ravel(), BUFFER_SIDE * columns)
    return dense.reshape(BUFFER_SIDE, columns)


@lru_cache(maxsize=64)
def prefilter_weights(side: int) -> NDArray[Any]:
    """The 64 x side matrix of PDQ's tent filter followed by its 64-point decimation."""
    weights = _weights(side, 1, False)
    weights.setflags(write=False)
    return weights


# The bands of an axis's weights take about 2 KB per 64 decoded pixels of their axis; only
# axes of up to this many decoded pixels are cached (256 of them, at most about 16 MB).
_CACHED_COLUMNS = 2048


@lru_cache(maxsize=1)
def dct_matrix() -> NDArray[np.float64]:
    """PDQ's 16 x 64 DCT-II matrix (without the DC row)."""
    i = np.arange(1, 17)[:, None]
    j = np.arange(BUFFER_SIDE)[None, :]
    angles = (math.pi / 2 / BUFFER_SIDE) * i * (2 * j + 1)
    matrix: NDArray[np.float64] = math.sqrt(2.0 / BUFFER_SIDE) * np.cos(angles)
    matrix.setflags(write=False)
    return matrix


def quality_of(buffer64: FloatArray) -> int:
    """PDQ's quality metric: the summed absolute gradient of the 64 x 64 buffer, 0-100."""
    buf = np.asarray(buffer64, dtype=np.float32)
    vertical = np.trunc((buf[:-1, :] - buf[1:, :]) * np.float32(100) / np.float32(255))
    horizontal = np.trunc((buf[:, :-1] - buf[:, 1:]) * np.float32(100) / np.float32(255))
    gradient = int(np.abs(vertical).sum() + np.abs(horizontal).sum())
    return min(100, gradient // 90)


_BIT_WEIGHTS = (1 << np.arange(16, dtype=np.uint32)).astype(np.uint32)


def coefficients_of(buffer64: FloatArray) -> NDArray[np.float64]:
    """The 16 x 16 DCT coefficients that PDQ thresholds."""
    dct = dct_matrix()
    coefficients: NDArray[np.float64] = dct @ np.asarray(buffer64, dtype=np.float64) @ dct.T
    return coefficients


def hash_of(buffer64: FloatArray) -> str:
    """The 64-hex-digit PDQ hash of a 64 x 64 buffer."""
    return _hash_of_coefficients(coefficients_of(buffer64))


def _hash_of_coefficients(coefficients: NDArray[np.float64]) -> str:
    # The reference thresholds at the lower median (Torben's median of 256 values).
    median = np.partition(coefficients.ravel(), 127)[127]
    bits = (coefficients > median).astype(np.uint32)
    words = bits @ _BIT_WEIGHTS
    return "".join(f"{int(word):04x}" for word in words[::-1])


def spread_of(coefficients: NDArray[np.float64]) -> float:
    """How far the coefficients typically lie from the hash's threshold: their median absolute
    deviation from the median, in the buffer's units (luminance levels times 64).

    A bit flips when its coefficient crosses the threshold, so an error of a fixed size in the
    pixels (rounding, a different decoding) flips more bits the smaller this spread is. Lowering
    a picture's contrast to 60% lowers it to 60%.
    """
    flat = np.sort(coefficients.ravel())
    threshold = (flat[127] + flat[128]) / 2
    return float(np.median(np.abs(flat - threshold)))


def bits_of(hex_hash: str) -> NDArray[np.uint8]:
    """The 256 bits of a hash, most significant first."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(hex_hash), dtype=np.uint8))


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of equal length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


_ODD_FREQUENCIES = np.arange(16) % 2 == 0  # row/column k holds DCT frequency k + 1


def estimate_orientations(hex_hash: str) -> tuple[str, ...]:
    """The hashes of the picture's eight orientations (``ORIENTATIONS`` order), estimated from
    its hash alone, for when only a hash is at hand.

    Bit (i, j) of a hash says whether DCT coefficient (i + 1, j + 1) of the 64 x 64 buffer lies
    above the coefficients' median. Transposing the picture transposes the coefficients, so that
    part is exact. Mirroring it negates the coefficients of odd frequency along the mirrored
    axis; the median of natural pictures' coefficients lies close to 0, so their bits mostly
    invert. Two things make the estimate differ from the turned picture's own hash: coefficients
    close to the median, and PDQ's sampling grid, which is not symmetric (a mirrored picture is
    sampled up to a pixel away from the mirror image of the original's samples), which matters
    for fine texture. Measured on benign photos: about 20 bits on average, more for textures
    (bench/detection.py).
    """
    raw = np.unpackbits(np.frombuffer(bytes.fromhex(hex_hash), dtype=np.uint8)).reshape(16, 16)
    bits = raw[::-1, ::-1]  # bits[i, j]: coefficient (i + 1, j + 1)
    out = []
    for orientation in ORIENTATIONS:
        transform = ORIENTATION_TRANSFORMS[orientation]
        turned = bits.T.copy() if transform.transpose else bits.copy()
        if transform.flip_rows:
            turned[_ODD_FREQUENCIES, :] ^= 1
        if transform.flip_cols:
            turned[:, _ODD_FREQUENCIES] ^= 1
        out.append(bytes(np.packbits(turned[::-1, ::-1].ravel())).hex())
    return tuple(out)


@dataclass(frozen=True)
class PdqHash:
    hash: str
    quality: int
    spread: float | None = None  # spread_of() the coefficients, where computed


class LumaBuffers:
    """The 64 x 64 PDQ buffers of one luminance array in any orientation.

    ``luma`` is the (possibly reduced) luminance array, ``full_shape`` the size of the picture at
    full resolution, ``scale`` the reduction factor the luminance was decoded at.
    """

    def __init__(
        self,
        luma: NDArray[np.generic],
        full_shape: tuple[int, int],
        scale: int = 1,
        *,
        with_flips: bool = False,
    ) -> None:
        height, width = full_shape
        rows, cols = luma.shape
        if (rows, cols) != (-(-height // scale), -(-width // scale)):
            raise ValueError(f"luma {luma.shape} does not match {full_shape} at 1/{scale}")
        pixels = np.asarray(luma, dtype=np.float32)
        across = _banded_product(pixels, axis_bands(width, scale, with_flips)).T  # (64k) x rows
        product = _banded_product(across, axis_bands(height, scale, with_flips))  # (64k) x (64k)
        self._blocks = product.T.astype(np.float64)
        self._with_flips = with_flips

    def buffer(self, transform: Transform) -> NDArray[np.float64]:
        """The buffer the reference would compute on ``transform.apply(picture)``."""
        # Flipping the picture's rows or columns reverses that axis's weights; a transpose
        # swaps the axes, so it reads the block of the swapped flips, transposed.
        flip_rows, flip_cols = transform.flip_rows, transform.flip_cols
        if transform.transpose:
            flip_rows, flip_cols = flip_cols, flip_rows
        if (flip_rows or flip_cols) and not self._with_flips:
            raise ValueError("flipped orientations need with_flips=True")
        r, c = BUFFER_SIDE * int(flip_rows), BUFFER_SIDE * int(flip_cols)
        block = self._blocks[r : r + BUFFER_SIDE, c : c + BUFFER_SIDE]
        return block.T if transform.transpose else block

    def pdq(self, transform: Transform) -> PdqHash:
        buf = self.buffer(transform)
        coefficients = coefficients_of(buf)
        spread = spread_of(coefficients)
        return PdqHash(_hash_of_coefficients(coefficients), quality_of(buf), spread)

    def hash(self, transform: Transform) -> str:
        """Only the hash of ``pdq(transform)`` (no quality, no spread)."""
        return _hash_of_coefficients(coefficients_of(self.buffer(transform)))


@dataclass(frozen=True, eq=False)
class _Band:
    """Consecutive rows ``rows`` of a weight matrix whose non-zero weights all lie in columns
    ``start:stop``; ``weights`` holds just those."""

    rows: slice
    start: int
    stop: int
    weights: NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class _Banded:
    """A weight matrix of ``height`` rows, kept as its bands."""

    height: int
    bands: tuple[_Band, ...]


_BAND_ROWS = 8


def axis_bands(side: int, scale: int, with_flips: bool) -> _Banded:
    """The filter weights of an axis (and of its mirror, ``with_flips``), cut into bands."""
    if -(-side // scale) > _CACHED_COLUMNS:
        return _axis_bands(side, scale, with_flips)
    return _cached_axis_bands(side, scale, with_flips)


def _axis_bands(side: int, scale: int, with_flips: bool) -> _Banded:
    """Each of PDQ's 64 samples weighs about ``2 * ceil(side / 128)`` neighbouring pixels, so a
    band of consecutive samples (or of consecutive mirrored ones) touches a narrow range of
    columns: multiplying band by band does about a twentieth of the dense product's work, with
    the same terms (the weights outside a band's range are zero), and keeps only the weights
    inside the bands (a few kilobytes an axis)."""
    bands = []
    for offset, reverse in enumerate((False, True) if with_flips else (False,)):
        dense = _weights(side, scale, reverse)  # one dense matrix at a time: long axes are large
        for first in range(0, BUFFER_SIDE, _BAND_ROWS):
            block = dense[first : first + _BAND_ROWS]
            used = np.flatnonzero(block.any(axis=0))
            if len(used):
                start, stop = int(used[0]), int(used[-1]) + 1
                weights = np.ascontiguousarray(block[:, start:stop].T, dtype=np.float32)
                weights.setflags(write=False)
                rows = slice(
                    offset * BUFFER_SIDE + first, offset * BUFFER_SIDE + len(block) + first
                )
                bands.append(_Band(rows, start, stop, weights))
        del dense
    return _Banded(BUFFER_SIDE * (2 if with_flips else 1), tuple(bands))


_cached_axis_bands = lru_cache(maxsize=256)(_axis_bands)


def _banded_product(pixels: NDArray[np.float32], banded: _Banded) -> NDArray[np.float32]:
    """``pixels @ weights.T`` for weights kept as bands by ``axis_bands``."""
    out = np.zeros((pixels.shape[0], banded.height), dtype=np.float32)
    for band in banded.bands:
        out[:, band.rows] = pixels[:, band.start : band.stop] @ band.weights
    return out


def luma_from_rgb(rgb: NDArray[np.uint8]) -> NDArray[Any]:
    """Luminance as the reference computes it (float64 weights, rounded to float32)."""
    r, g, b = LUMA_COEFFS
    luma: NDArray[Any] = (rgb[:, :, 0] * r + rgb[:, :, 1] * g + rgb[:, :, 2] * b).astype(np.float32)
    return luma
