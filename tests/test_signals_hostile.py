"""Hostile and broken input: every failure is a typed error with a clear message, never a crash."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    digest_bytes,
    hash_file,
    pdq_signal,
)

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
