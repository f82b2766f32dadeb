"""Hostile and broken input: every failure is a typed error with a clear message, never a crash."""

from __future__ import annotations

import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imaging import encode, jpeg, photo
from meldpunt.signals import (
    CorruptImage,
    FileTooLarge,
    HashOptions,
    ImageLimits,
    ImageTooLarge,
    NotAnImage,
    SignalError,
    UnreadableFile,
    decode_cost,
    digest_bytes,
    hash_file,
    pdq_signal,
    probe_image,
)
from meldpunt.signals.hashing import DEFAULT_MIN_SIDE
from meldpunt.signals.image import decode_luma
from meldpunt.signals.pdq import luma_from_rgb

SMALL_JPEG = jpeg(photo("chelsea"), 85)
SMALL_PNG = encode(photo("coffee")[:120, :160], "PNG")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_truncated_jpeg_is_a_corrupt_image():
    with pytest.raises(CorruptImage, match="cannot decode"):
        pdq_signal(SMALL_JPEG[: len(SMALL_JPEG) // 2])


def test_random_bytes_are_not_an_image():
    with pytest.raises(NotAnImage):
        pdq_signal(bytes(range(256)) * 10)


def test_empty_input_is_not_an_image():
    with pytest.raises(NotAnImage):
        pdq_signal(b"")


def test_decompression_bomb_is_refused_before_decoding():
    bomb = png_claiming(60_000, 60_000)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge, match="pixels"):
        pdq_signal(bomb)


def test_pixel_limit_is_a_setting():
    limits = ImageLimits(max_pixels=100 * 100)
    with pytest.raises(ImageTooLarge, match="10,000"):
        pdq_signal(SMALL_JPEG, HashOptions(limits=limits))


def test_file_size_limit_keeps_the_exact_digests(tmp_path: Path):
    path = tmp_path / "big.jpg"
    path.write_bytes(SMALL_JPEG)
    result = hash_file(path, HashOptions(limits=ImageLimits(max_bytes=1000)))
    assert result.error_code == FileTooLarge.code and "limit" in (result.error or "")
    assert result.digests == digest_bytes(SMALL_JPEG)
    assert result.pdq is None


def test_wrong_extensions_do_not_matter(tmp_path: Path):
    png_named_jpg = tmp_path / "picture.jpg"
    png_named_jpg.write_bytes(SMALL_PNG)
    assert hash_file(png_named_jpg).pdq is not None
    text_named_jpg = tmp_path / "notes.jpg"
    text_named_jpg.write_text("just some text\n")
    result = hash_file(text_named_jpg)
    assert result.error_code == NotAnImage.code
    assert result.digests is not None and result.pdq is None


def test_postscript_is_never_opened(tmp_path: Path):
    # EPS would be rendered by Ghostscript: meldpunt does not open it at all
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(NotAnImage):
        pdq_signal(eps)


def test_missing_file_and_folder_are_unreadable(tmp_path: Path):
    assert hash_file(tmp_path / "gone.jpg").error_code == UnreadableFile.code
    with pytest.raises(UnreadableFile):
        pdq_signal(tmp_path / "gone.jpg")


def test_zero_sized_dimensions_are_corrupt():
    with pytest.raises((CorruptImage, NotAnImage)):
        pdq_signal(png_claiming(0, 10))


def test_large_file_is_streamed_not_read_into_memory(tmp_path: Path):
    path = tmp_path / "large.bin"
    with open(path, "wb") as handle:  # a sparse 96 MiB file
        handle.truncate(96 * 1024 * 1024)
    tracemalloc.start()
    try:
        result = hash_file(path, HashOptions(limits=ImageLimits(max_bytes=1024 * 1024)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.digests is not None and result.digests.size == 96 * 1024 * 1024
    assert result.error_code == FileTooLarge.code
    assert peak < 8 * 1024 * 1024


FUZZ = settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_give_a_hash_or_a_typed_error(data: bytes):
    try:
        signal = pdq_signal(data)
    except SignalError as exc:
        assert str(exc)
    else:
        assert len(signal.hash) == 64


@FUZZ
@given(
    base=st.sampled_from(
        [
            SMALL_JPEG,
            SMALL_PNG,
            encode(photo("rocket")[:64, :64], "GIF"),
            encode(photo("rocket")[:64, :64], "WEBP"),
            encode(photo("rocket")[:64, :64], "TIFF"),
            encode(photo("rocket")[:64, :64], "BMP"),
        ]
    ),  # fmt: skip
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.floats(0.05, 1.0),
)
def test_mutated_images_give_a_hash_or_a_typed_error(base: bytes, edits, cut: float):
    data = bytearray(base[: max(1, int(len(base) * cut))])
    for where, value in edits:
        data[int(where * (len(data) - 1))] = value
    for exact in (False, True):
        try:
            signal = pdq_signal(bytes(data), HashOptions(exact=exact, dihedral=True))
        except SignalError as exc:
            assert exc.code and str(exc)
        else:
            assert len(signal.hash) == 64 and 0 <= signal.quality <= 100


# --- decoding memory: estimated from the header, bounded, and the same luminance ------------


def test_the_header_says_what_decoding_will_cost_before_any_pixel_is_decoded():
    bomb = png_claiming(60_000, 60_000)  # 3.6 gigapixels in under 200 bytes
    info = probe_image(bomb, ImageLimits(max_pixels=10**10))
    assert (info.width, info.height, info.format) == (60_000, 60_000, "PNG")
    assert decode_cost(info, min_side=DEFAULT_MIN_SIDE) > 3 * 10**9
    with pytest.raises(ImageTooLarge, match="needs about"):
        pdq_signal(bomb, HashOptions(limits=ImageLimits(max_pixels=10**10, max_decode_bytes=2**30)))


def test_the_exact_path_is_refused_by_its_decoding_cost_too():
    bomb = png_claiming(60_000, 60_000)
    limits = ImageLimits(max_pixels=10**10, max_decode_bytes=2**30)
    with pytest.raises(ImageTooLarge, match="in colour needs about"):
        pdq_signal(bomb, HashOptions(exact=True, limits=limits))
    cheap = ImageLimits(max_decode_bytes=256 * 1024 * 1024)
    assert pdq_signal(SMALL_JPEG, HashOptions(exact=True, limits=cheap)).hash


def test_a_picture_one_pixel_high_is_refused_by_its_decoding_cost():
    # few pixels, but PDQ's filter weights grow with the sides: gigabytes for this one
    thin = png_claiming(20_000_000, 1)
    cost = decode_cost(probe_image(thin), min_side=DEFAULT_MIN_SIDE)
    assert cost > 2**35
    with pytest.raises(ImageTooLarge, match="needs about"):
        pdq_signal(thin, HashOptions(limits=ImageLimits(max_decode_bytes=2**30)))


def test_a_cheap_picture_passes_the_decoding_limit():
    cost = decode_cost(probe_image(SMALL_JPEG), min_side=DEFAULT_MIN_SIDE)
    assert cost < 64 * 1024 * 1024
    limits = ImageLimits(max_decode_bytes=cost)
    assert pdq_signal(SMALL_JPEG, HashOptions(limits=limits)) == pdq_signal(SMALL_JPEG)


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "CMYK"])
@pytest.mark.parametrize("size", [(900, 700), (300, 2000)], ids=["reduced", "in-full"])
def test_luminance_straight_from_the_stored_mode_is_that_of_its_rgb(mode, size):
    width, height = size
    rgb = Image.fromarray(photo("astronaut")).resize(size)
    stored = rgb.convert("RGB").quantize(200) if mode == "P" else rgb.convert(mode)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    direct = decode_luma(encode(stored, fmt), min_side=DEFAULT_MIN_SIDE)
    by_rgb = decode_luma(encode(stored.convert("RGB"), "PNG"), min_side=DEFAULT_MIN_SIDE)
    assert direct.scale == by_rgb.scale == (1 if width < 640 else 2)
    assert np.array_equal(direct.luma, by_rgb.luma)


def test_reference_luminance_in_strips_is_the_whole_pictures():
    rgb = np.asarray(Image.fromarray(photo("coffee")).resize((300, 2500)))  # several strips
    decoded = decode_luma(encode(rgb, "PNG"), min_side=DEFAULT_MIN_SIDE)
    assert decoded.scale == 1
    assert np.array_equal(decoded.luma, luma_from_rgb(rgb))


PEAK_PROBE = """
import io, sys
from meldpunt.signals import HashOptions, ImageLimits, pdq_cost, pdq_signal, probe_image
from PIL import Image

def peak_rss():  # this process's own peak (ru_maxrss would start at the parent's)
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))

warm = io.BytesIO()
Image.new("RGB", (700, 500), (1, 2, 3)).save(warm, "PNG")
pdq_signal(warm.getvalue(), HashOptions(dihedral=True))  # imports, tables
data = open(sys.argv[1], "rb").read()
limits = ImageLimits(max_pixels=10**9)
options = HashOptions(dihedral=True, limits=limits)
cost = pdq_cost(probe_image(data, limits), options)  # flat pictures: decoded twice
before = peak_rss()
pdq_signal(data, options)
after = peak_rss()
print(cost, after - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux)")
@pytest.mark.parametrize(
    "fmt, mode, size",
    [
        ("WEBP", "RGB", (5000, 4000)),  # libwebp holds two more copies of its own
        ("PNG", "RGBA", (5000, 4000)),  # to luminance without an RGB copy on the way
        ("PNG", "RGB", (600, 40_000)),  # shorter side under 640: luminance in full, in strips
        ("JPEG", "L", (300, 40_000)),  # long sides: PDQ's weights are a large part
    ],
)
def test_decoding_stays_within_its_estimate(tmp_path: Path, fmt, mode, size):
    path = tmp_path / f"flat.{fmt.lower()}"
    colour = 100 if mode == "L" else (120, 30, 200, 255)[: len(mode)]
    Image.new(mode, size, colour).save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    out = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    estimate, grew = int(out[0]), int(out[1])
    assert size[0] * size[1] < grew <= estimate  # the decode took memory, within its estimate
