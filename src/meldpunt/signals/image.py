"""Opening and decoding images safely, for hashing.

Only well-known raster formats are opened (never EPS, which would run Ghostscript, nor the
scientific formats Pillow also reads). Limits on file size and pixel count are checked before any
pixel is decoded. Whatever goes wrong ends in one of the typed errors of ``errors.py``.

Choices that change hashes, documented here once:

* EXIF orientation is applied by default, so a photo is hashed as people see it. Pass
  ``exif_transpose=False`` for the stored pixel order (what the reference tools hash).
* Animated images (GIF, APNG, WebP) and multi-page files (TIFF, MPO) give their first frame.
* Alpha is dropped, not composited, as the reference tools do.
* 16-bit greyscale is scaled to 8 bits (its top byte), as viewers show it; converting it the way
  the reference tools do clips every value above 255 and turns most such pictures white.

Memory: ``probe_image`` reads a picture's header without decoding it, and ``decode_cost`` says
from that header how many bytes ``decode_luma`` will need at its peak, so a service can refuse or
wait before the memory is taken. ``decode_luma`` keeps that peak small: JPEGs are decoded at
reduced scale in the DCT; other formats (which Pillow decodes only in full) go to luminance
straight from their stored mode, and the reference's float64 conversion runs a strip of rows at
a time.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from .errors import CorruptImage, FileTooLarge, ImageTooLarge, NotAnImage, UnreadableFile
from .pdq import EXIF_TRANSFORMS, Transform, luma_from_rgb

try:  # HEIC/HEIF support is optional
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - depends on the installation
    pass

Image.init()

SAFE_FORMATS: tuple[str, ...] = tuple(
    name
    for name in (
        "JPEG",
        "PNG",
        "GIF",
        "WEBP",
        "BMP",
        "DIB",
        "TIFF",
        "ICO",
        "PPM",
        "TGA",
        "JPEG2000",
        "AVIF",
        "HEIF",
        "QOI",
        "PCX",
        "SGI",
        "PSD",
        "DDS",
    )  # fmt: skip
    if name in Image.OPEN
)

DCT_SCALES = (8, 4, 2)
EXIF_ORIENTATION_TAG = 0x0112
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}

Source = str | os.PathLike[str] | bytes | BinaryIO


@dataclass(frozen=True)
class ImageLimits:
    """What meldpunt agrees to decode. Both sizes are settings (``max_image_bytes``/``_pixels``);
    ``max_decode_bytes`` refuses pictures whose decoding would need more memory than that
    (``decode_cost``), before any pixel is decoded (None: no such limit)."""

    max_bytes: int = 512 * 1024 * 1024
    max_pixels: int = 200_000_000
    max_decode_bytes: int | None = None


@dataclass(frozen=True)
class ImageInfo:
    """What a picture's header says, before any pixel is decoded."""

    width: int
    height: int
    format: str
    mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class DecodedLuma:
    """Luminance of a picture, possibly decoded at reduced scale.

    ``full_shape`` is (height, width) of the stored picture at full resolution; ``luma`` has
    shape ceil(full_shape / scale). ``orientation`` turns the stored picture into the one people
    see (identity when EXIF orientation is ignored or absent).
    """

    luma: NDArray[np.generic]
    full_shape: tuple[int, int]
    scale: int
    orientation: Transform
    format: str
    # True when ``luma`` is a JPEG's own Y channel rather than the reference's conversion of the
    # decoded RGB (the two differ by rounding, and where RGB is clipped to 0-255)
    y_channel: bool = False


@dataclass(frozen=True)
class DecodedRgb:
    rgb: NDArray[np.uint8]
    orientation: Transform
    format: str


def _size_of(source: Source) -> int | None:
    if isinstance(source, bytes):
        return len(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            return os.stat(source).st_size
        except OSError as exc:
            raise UnreadableFile(f"cannot read {os.fspath(source)!s}: {exc.strerror}") from exc
    return None


@contextmanager
def open_image(source: Source, limits: ImageLimits = ImageLimits()) -> Iterator[Image.Image]:
    """Open an image lazily (header only), enforcing the limits; close it afterwards."""
    size = _size_of(source)
    if size is not None and size > limits.max_bytes:
        raise FileTooLarge(f"file is {size:,} bytes; the limit for images is {limits.max_bytes:,}")
    if isinstance(source, bytes):
        stream: BinaryIO = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UnreadableFile(f"cannot open {os.fspath(source)!s}: {exc.strerror}") from exc
    else:
        stream = source
    try:
        # Pillow has a process-wide bomb guard; let meldpunt's own limit be the one that decides.
        if Image.MAX_IMAGE_PIXELS is not None and limits.max_pixels > Image.MAX_IMAGE_PIXELS:
            Image.MAX_IMAGE_PIXELS = limits.max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                image = Image.open(stream, formats=SAFE_FORMATS)
            except Image.DecompressionBombError as exc:
                raise ImageTooLarge(str(exc)) from exc
            except UnidentifiedImageError as exc:
                raise NotAnImage("not an image in a supported format") from exc
            except Exception as exc:  # Pillow raises many types on hostile headers
                raise CorruptImage(f"unreadable image header: {_describe(exc)}") from exc
        with image:
            width, height = image.size
            if width <= 0 or height <= 0:
                raise CorruptImage(f"image has no pixels ({width}x{height})")
            if width * height > limits.max_pixels:
                raise ImageTooLarge(
                    f"image is {width}x{height} = {width * height:,} pixels; "
                    f"the limit is {limits.max_pixels:,}"
                )
            yield image
    finally:
        if stream is not source:
            stream.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def probe_image(source: Source, limits: ImageLimits = ImageLimits()) -> ImageInfo:
    """The header of a picture (size, format, mode), enforcing the limits; decodes nothing."""
    with open_image(source, limits) as image:
        width, height = image.size
        return ImageInfo(width, height, image.format or "unknown", image.mode)


# Bytes per pixel of the picture as Pillow holds it once decoded (RGB is stored as 4 bytes).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# Bytes per pixel that a decoder holds besides Pillow's copy: libwebp's canvas and the frame it
# hands over, libheif's and libavif's output, OpenJPEG's 32-bit components.
_DECODER_BYTES = {"WEBP": 12, "HEIF": 8, "AVIF": 8, "JPEG2000": 16}
# Modes that Pillow turns into luminance directly, with the values it gives by way of RGB.
_DIRECT_TO_L = frozenset({"1", "P", "PA", "LA", "RGB", "RGBA", "RGBX", "CMYK"})
# What a decode holds whatever the picture's size (buffers, tables, numpy and Pillow's own).
_FIXED_BYTES = 16 * 1024 * 1024
# Rows of the reference's float64 luminance conversion are computed this many pixels at a time.
_STRIP_PIXELS = 1 << 18


def decode_cost(info: ImageInfo, *, min_side: int = 0) -> int:
    """An upper estimate of the bytes ``decode_luma(min_side=...)`` holds at its peak for this
    picture (what a service reserves before decoding; ``tests/test_signals_hostile.py``
    measures it against the process's peak memory)."""
    pixels = info.pixels
    scale = choose_scale(info.width, info.height, min_side) if min_side > 0 else 1
    reduced = -(-info.width // scale) * -(-info.height // scale)
    luma_only = min_side > 0 and min(info.width, info.height) >= min_side
    if luma_only and info.format in ("JPEG", "MPO") and info.mode in ("RGB", "L"):
        # the Y channel at 1/scale, then its float32 copy
        return reduced * 5 + _weight_bytes(info, scale) + _FIXED_BYTES
    stored = pixels * (_STORED_BYTES.get(info.mode, 4) + _DECODER_BYTES.get(info.format, 0))
    if info.mode in _SIXTEEN_BIT_MODES:
        stored += pixels * 7  # its array, widened, shifted and narrowed to 8 bits
    elif info.mode not in ("L", "RGB", *_DIRECT_TO_L):
        stored += pixels * 4  # converted to RGB first
    # reduced: luminance in full, reduced, then as float32; in full: float32 luminance (and,
    # for L pictures, their uint8 array)
    luma = pixels + reduced * 5 if scale > 1 else pixels * 5
    return stored + luma + _weight_bytes(info, scale) + _FIXED_BYTES


def _weight_bytes(info: ImageInfo, scale: int) -> int:
    """PDQ's filter weights and first product, which grow with the sides, not the area: a
    picture one pixel high and millions wide needs gigabytes for them."""
    lines = -(-info.width // scale) + -(-info.height // scale)
    return lines * 2048 + (info.width + info.height) * 16


def _exif_orientation(image: Image.Image, apply: bool) -> Transform:
    if not apply:
        return EXIF_TRANSFORMS[1]
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # damaged EXIF never stops hashing; the stored orientation is used
        value = 1
    return EXIF_TRANSFORMS.get(value if isinstance(value, int) else 1, EXIF_TRANSFORMS[1])


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except MemoryError as exc:
        raise ImageTooLarge("not enough memory to decode this image") from exc
    except Exception as exc:
        raise CorruptImage(f"cannot decode image: {_describe(exc)}") from exc


def _to_eight_bit(image: Image.Image) -> Image.Image:
    """An 'L' or 'RGB' image of the first frame, following the module's documented choices."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(image).astype(np.uint16)
        return Image.fromarray((wide >> 8).astype(np.uint8), mode="L")
    return _convert(image, "RGB")


def _convert(image: Image.Image, mode: str) -> Image.Image:
    try:
        return image.convert(mode)
    except Exception as exc:
        raise CorruptImage(f"cannot convert {image.mode} image: {_describe(exc)}") from exc


def _grey(image: Image.Image) -> Image.Image:
    """Pillow's luminance ('L') of a decoded picture, without a full-size RGB copy on the way
    where Pillow converts the stored mode directly (to the same values)."""
    if image.mode == "L":
        return image
    if image.mode in _DIRECT_TO_L:
        return _convert(image, "L")
    return _convert(_to_eight_bit(image), "L")


def _reference_luma(image: Image.Image) -> NDArray[np.float32]:
    """The reference's luminance of a colour picture, a strip of rows at a time: the same
    values as ``luma_from_rgb`` over the whole picture, without its full-size float64
    temporaries (about 24 bytes a pixel)."""
    width, height = image.size
    luma = np.empty((height, width), dtype=np.float32)
    rows = max(1, _STRIP_PIXELS // width)
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        if strip.mode not in ("RGB", "RGBA", "RGBX"):  # alpha is dropped, as documented
            strip = _convert(strip, "RGB")
        luma[top : top + rows] = luma_from_rgb(np.asarray(strip))
    return luma


def choose_scale(width: int, height: int, min_side: int) -> int:
    """The largest reduction (8, 4, 2) that keeps the shorter side at least ``min_side``."""
    shorter = min(width, height)
    for scale in DCT_SCALES:
        if shorter // scale >= min_side:
            return scale
    return 1


def decode_luma(
    source: Source,
    *,
    limits: ImageLimits = ImageLimits(),
    min_side: int = 0,
    exif_transpose: bool = True,
) -> DecodedLuma:
    """Luminance for the fast PDQ path.

    With ``min_side`` > 0, JPEGs whose shorter side is at least ``min_side`` are decoded to their
    luminance (Y) channel only, skipping colour, and large pictures at 1/2, 1/4 or 1/8 scale
    (JPEG: in the DCT; other formats: a box reduction after decoding), keeping the shorter side
    at least ``min_side``. With
    ``min_side=0`` the picture is decoded in full and converted to luminance exactly as the
    reference does.
    """
    with open_image(source, limits) as image:
        orientation = _exif_orientation(image, exif_transpose)
        width, height = image.size
        image_format = image.format or "unknown"
        if limits.max_decode_bytes is not None:
            info = ImageInfo(width, height, image_format, image.mode)
            needed = decode_cost(info, min_side=min_side)
            if needed > limits.max_decode_bytes:
                raise ImageTooLarge(
                    f"decoding this {width}x{height} {image_format} picture needs about "
                    f"{needed:,} bytes; the limit is {limits.max_decode_bytes:,}"
                )
        scale = choose_scale(width, height, min_side) if min_side > 0 else 1
        # Small pictures have a narrow filter, where the Y channel's rounding shows: they are
        # decoded in colour and converted as the reference does.
        luma_only = min_side > 0 and min(width, height) >= min_side
        if luma_only and image.format in ("JPEG", "MPO") and image.mode in ("RGB", "L"):
            # draft() configures libjpeg to decode only the Y channel, at 1/scale, in the DCT.
            image.draft("L", (width // scale, height // scale))
            _load(image)
            if image.size != (-(-width // scale), -(-height // scale)) or image.mode != "L":
                raise CorruptImage("JPEG decoder ignored the requested scale")
            return DecodedLuma(np.asarray(image), (height, width), scale, orientation, image_format,
                               y_channel=True)  # fmt: skip
        _load(image)
        if scale > 1:
            reduced = _grey(image).reduce(scale)
            return DecodedLuma(
                np.asarray(reduced), (height, width), scale, orientation, image_format
            )
        if image.mode in _SIXTEEN_BIT_MODES or image.mode == "L":
            luma: NDArray[np.generic] = np.asarray(_to_eight_bit(image))
        else:
            luma = _reference_luma(image)
        return DecodedLuma(luma, (height, width), 1, orientation, image_format)


def decode_rgb(
    source: Source, *, limits: ImageLimits = ImageLimits(), exif_transpose: bool = True
) -> DecodedRgb:
    """Full-resolution RGB pixels, as the reference tools hash them (for the exact path)."""
    with open_image(source, limits) as image:
        orientation = _exif_orientation(image, exif_transpose)
        image_format = image.format or "unknown"
        if limits.max_decode_bytes is not None:
            width, height = image.size
            info = ImageInfo(width, height, image_format, image.mode)
            needed = decode_cost(info, min_side=0) + info.pixels * 3  # and its RGB array
            if needed > limits.max_decode_bytes:
                raise ImageTooLarge(
                    f"decoding this {width}x{height} {image_format} picture in colour needs "
                    f"about {needed:,} bytes; the limit is {limits.max_decode_bytes:,}"
                )
        _load(image)
        eight_bit = _to_eight_bit(image)
        rgb = eight_bit.convert("RGB") if eight_bit.mode != "RGB" else eight_bit
        return DecodedRgb(np.asarray(rgb), orientation, image_format)
