"""PDQ conformance: meldpunt's hashes against Meta's reference vectors and the C++ reference."""

from __future__ import annotations

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageOps

from imaging import VECTORS, encode, jpeg, needs_vectors, photo, references
from meldpunt.signals import HashOptions, hamming, pdq_signal
from meldpunt.signals.image import decode_rgb
from meldpunt.signals.pdq import (
    EXIF_TRANSFORMS,
    LumaBuffers,
    Transform,
    hash_of,
    luma_from_rgb,
    quality_of,
)

AS_STORED = HashOptions(exif_transpose=False)  # the reference vectors were hashed this way
EXACT = HashOptions(exact=True, exif_transpose=False)
IDENTITY = Transform(False, False, False)


def reference_hex(bits: np.ndarray) -> str:
    return f"{int(''.join('1' if b else '0' for b in bits), 2):064x}"


@needs_vectors
@pytest.mark.parametrize("ref", references(), ids=lambda r: r.path.name)
def test_exact_path_is_the_reference_hash(ref):
    signal = pdq_signal(ref.path, EXACT)
    assert (signal.hash, signal.quality) == (ref.pdq, ref.quality)


@needs_vectors
@pytest.mark.parametrize("ref", references(), ids=lambda r: r.path.name)
def test_weight_matrix_filter_reproduces_the_reference_on_the_same_pixels(ref):
    # meldpunt's own PDQ (filter as a weight matrix) on the reference's own pixel array.
    luma = luma_from_rgb(decode_rgb(ref.path, exif_transpose=False).rgb)
    ours = LumaBuffers(luma, luma.shape).pdq(IDENTITY)
    assert hamming(ours.hash, ref.pdq) <= 2  # measured: 0 on every vector; float order may differ
    assert abs(ours.quality - ref.quality) <= 1


@needs_vectors
@pytest.mark.parametrize(
    "ref", [r for r in references() if r.quality >= 80], ids=lambda r: r.path.name
)
def test_fast_path_within_ten_bits_of_the_reference(ref):
    signal = pdq_signal(ref.path, AS_STORED)
    assert hamming(signal.hash, ref.pdq) <= 10
    assert signal.quality >= 80


@needs_vectors
def test_every_pillow_mode_hashes():
    for path in sorted((VECTORS / "misc-images" / "modes").iterdir()):
        if path.suffix == ".md":
            continue
        signal = pdq_signal(path)
        assert len(signal.hash) == 64 and signal.quality == 100, path.name


def test_hash_and_quality_agree_with_the_cpp_reference_on_random_buffers():
    rng = np.random.default_rng(1)
    for _ in range(20):
        rgb = rng.integers(0, 256, size=(rng.integers(20, 300), rng.integers(20, 300), 3),
                           dtype=np.uint8)  # fmt: skip
        bits, quality = pdqhash.compute(rgb)
        luma = luma_from_rgb(rgb)
        ours = LumaBuffers(luma, luma.shape).pdq(IDENTITY)
        assert hamming(ours.hash, reference_hex(bits)) <= 2
        assert abs(ours.quality - quality) <= 1


def test_flat_image_has_quality_zero_and_is_marked_low_quality():
    flat = np.full((200, 300, 3), 128, dtype=np.uint8)
    signal = pdq_signal(encode(flat, "PNG"))
    assert signal.quality == 0
    assert signal.low_quality


def test_low_quality_threshold_is_a_setting():
    data = jpeg(photo("coffee"))
    quality = pdq_signal(data).quality
    assert not pdq_signal(data, HashOptions(min_quality=quality)).low_quality
    assert pdq_signal(data, HashOptions(min_quality=quality + 1)).low_quality


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    grey = np.asarray(Image.fromarray(photo("camera")).convert("L"))
    wide = Image.fromarray(grey.astype(np.uint16) * 257)  # a 16-bit picture of the same photo
    assert wide.mode.startswith("I;16")
    eight = pdq_signal(encode(grey, "PNG"))
    sixteen = pdq_signal(encode(wide, "PNG"))
    assert sixteen.quality >= 80
    assert hamming(eight.hash, sixteen.hash) <= 4


def test_animated_image_is_hashed_by_its_first_frame():
    first, second = Image.fromarray(photo("coffee")), Image.fromarray(photo("astronaut"))
    second = second.resize(first.size)
    animated = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    only_first = encode(first.convert("P"), "GIF")  # the same palette conversion
    assert hamming(pdq_signal(animated).hash, pdq_signal(only_first).hash) <= 6
    assert hamming(pdq_signal(animated).hash, pdq_signal(jpeg(np.asarray(second))).hash) > 60


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "BMP"])
def test_other_formats_and_alpha(fmt):
    rgba = Image.fromarray(photo("chelsea")).convert("RGBA")
    base = pdq_signal(encode(rgba.convert("RGB"), "PNG"))
    params = {"lossless": True} if fmt == "WEBP" else {}
    signal = pdq_signal(encode(rgba if fmt != "BMP" else rgba.convert("RGB"), fmt, **params))
    assert hamming(signal.hash, base.hash) <= 2


def test_heic_when_pillow_heif_is_installed():
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is an optional extra")
    pillow_heif.register_heif_opener()
    data = encode(Image.fromarray(photo("coffee")), "HEIF", quality=90)
    assert hamming(pdq_signal(data).hash, pdq_signal(jpeg(photo("coffee"))).hash) <= 16


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_transform_table_matches_pillow(orientation):
    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    with_tag = Image.open(__import__("io").BytesIO(encode(image, "PNG", exif=exif)))
    expected = np.asarray(ImageOps.exif_transpose(with_tag))
    assert np.array_equal(EXIF_TRANSFORMS[orientation].apply(array), expected)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_by_default(orientation):
    stored = Image.fromarray(photo("rocket"))
    exif = stored.getexif()
    exif[0x0112] = orientation
    tagged = encode(stored, "JPEG", quality=92, exif=exif)
    as_seen = np.asarray(ImageOps.exif_transpose(Image.open(__import__("io").BytesIO(tagged))))
    seen = pdq_signal(jpeg(as_seen, 95))
    raw = pdq_signal(jpeg(np.asarray(stored), 95))
    assert hamming(pdq_signal(tagged).hash, seen.hash) <= 8
    assert hamming(pdq_signal(tagged, HashOptions(exif_transpose=False)).hash, raw.hash) <= 8
    exact = pdq_signal(tagged, HashOptions(exact=True))
    assert hamming(exact.hash, seen.hash) <= 8
    assert hamming(seen.hash, raw.hash) > 31


def test_fast_path_on_a_large_jpeg_follows_the_full_resolution_hash():
    # 4x the photo's size, decoded by the fast path at reduced scale
    big = Image.fromarray(photo("astronaut")).resize((2048, 2048), Image.Resampling.BICUBIC)
    data = jpeg(np.asarray(big), 90)
    fast, exact = pdq_signal(data), pdq_signal(data, HashOptions(exact=True))
    assert hamming(fast.hash, exact.hash) <= 10
    assert abs(fast.quality - exact.quality) <= 5


def test_quality_and_hash_helpers_on_a_known_buffer():
    buffer = np.tile(np.linspace(0, 255, 64), (64, 1))
    assert quality_of(buffer) == min(100, (64 * 63 * int(255 / 63 * 100 / 255)) // 90)
    noise = np.random.default_rng(3).uniform(0, 255, (64, 64))
    # the DC term is not in the hash and the median threshold ignores scale: brightness and
    # contrast changes leave the hash alone
    assert hash_of(noise) == hash_of(noise * 0.5 + 40)
    assert bin(int(hash_of(noise), 16)).count("1") == 128
