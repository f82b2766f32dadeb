"""Edits, rotations and flips: what PDQ matches, with and without orientation hashes."""

from __future__ import annotations

import numpy as np
import pdqhash
import pytest
from PIL import Image

from imaging import VECTORS, jpeg, needs_vectors, photo, references
from meldpunt.signals import ORIENTATIONS, HashOptions, hamming, pdq_signal
from meldpunt.signals.pdq import ORIENTATION_TRANSFORMS, LumaBuffers, Transform, prefilter_weights

DIHEDRAL = HashOptions(dihedral=True)
MATCH = 31

BRIDGE = VECTORS / "bridge-mods" / "aaa-orig.jpg"
TURNED_BRIDGES = sorted((VECTORS / "reg-test-input" / "dih").glob("bridge-[2-8]-*.jpg"))
TEXTURES = ("brick", "grass", "gravel")
PIL_TURNS = {
    "rotate90": Image.Transpose.ROTATE_90,
    "rotate180": Image.Transpose.ROTATE_180,
    "rotate270": Image.Transpose.ROTATE_270,
    "flipx": Image.Transpose.FLIP_TOP_BOTTOM,
    "flipy": Image.Transpose.FLIP_LEFT_RIGHT,
    "transpose": Image.Transpose.TRANSPOSE,
    "transverse": Image.Transpose.TRANSVERSE,
}


def best(query_turns: tuple[str, ...], stored: str) -> int:
    return min(hamming(turned, stored) for turned in query_turns)


@needs_vectors
@pytest.mark.parametrize("edit", sorted((VECTORS / "bridge-mods").glob("*.jpg")), ids=str)
def test_edited_bridges_match_the_original(edit):
    assert hamming(pdq_signal(edit).hash, pdq_signal(BRIDGE).hash) <= MATCH


@needs_vectors
@pytest.mark.parametrize("turned", TURNED_BRIDGES, ids=lambda p: p.name)
def test_turned_bridges_match_only_through_orientation_hashes(turned):
    stored = pdq_signal(BRIDGE).hash
    query = pdq_signal(turned, DIHEDRAL)
    assert hamming(query.hash, stored) > MATCH
    assert query.dihedral is not None and len(query.dihedral) == 8
    assert best(query.dihedral, stored) <= 10


@needs_vectors
def test_distractors_do_not_match_the_bridge():
    stored = pdq_signal(BRIDGE).hash
    unrelated = ("labelme-subset", "pen-and-coaster", "c.png", "wee.jpg")
    distractors = [
        r for r in references() if r.quality >= 50 and any(u in str(r.path) for u in unrelated)
    ]
    assert len(distractors) >= 3
    for ref in distractors:
        query = pdq_signal(ref.path, DIHEDRAL)
        assert best(query.dihedral or (), stored) > MATCH, ref.path.name


@pytest.mark.parametrize("texture", TEXTURES)
@pytest.mark.parametrize("turn", sorted(PIL_TURNS))
def test_turned_texture_photos_are_caught_by_orientation_hashes(texture, turn):
    original = Image.fromarray(photo(texture))
    stored = pdq_signal(jpeg(np.asarray(original), 90)).hash
    copy = jpeg(np.asarray(original.transpose(PIL_TURNS[turn])), 85)
    query = pdq_signal(copy, DIHEDRAL)
    assert best(query.dihedral or (), stored) <= 10
    # and the picture is not the same as its own mirror image: plain PDQ misses it
    assert hamming(query.hash, stored) > MATCH


def test_orientation_hashes_beat_pdqs_own_dihedral_hashes_on_textures():
    caught_ours = caught_pdq = total = 0
    for texture in TEXTURES:
        original = Image.fromarray(photo(texture))
        stored = pdq_signal(jpeg(np.asarray(original), 90)).hash
        for transpose in PIL_TURNS.values():
            copy = jpeg(np.asarray(original.transpose(transpose)), 85)
            total += 1
            caught_ours += best(pdq_signal(copy, DIHEDRAL).dihedral or (), stored) <= MATCH
            rgb = np.asarray(Image.open(__import__("io").BytesIO(copy)).convert("RGB"))
            vectors, _ = pdqhash.compute_dihedral(rgb)
            turns = tuple(f"{int(''.join(map(str, v)), 2):064x}" for v in vectors)
            caught_pdq += best(turns, stored) <= MATCH
    assert caught_ours == total
    assert caught_pdq < total  # the reason meldpunt computes true orientations


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("orientation", ORIENTATIONS, ids=lambda o: o.value)
def test_orientation_buffers_equal_hashing_the_turned_array(orientation, scale):
    rng = np.random.default_rng(5)
    luma = rng.uniform(0, 255, size=(203, 317)).astype(np.float32)
    transform = ORIENTATION_TRANSFORMS[orientation]
    # at scale 1: the buffer of the turned picture, computed from the unturned one
    buffers = LumaBuffers(luma, luma.shape, 1, with_flips=True)
    turned = np.ascontiguousarray(transform.apply(luma))
    direct = LumaBuffers(turned, turned.shape).buffer(Transform(False, False, False))
    np.testing.assert_allclose(buffers.buffer(transform), direct, rtol=1e-4, atol=1e-3)
    if scale > 1:
        # reduced pixels carry the summed weights of the pixels they stand for
        rows, cols = -(-luma.shape[0] // scale), -(-luma.shape[1] // scale)
        blocks = np.full((rows * scale, cols * scale), np.nan, dtype=np.float32)
        constant = np.repeat(np.repeat(rng.uniform(0, 255, (rows, cols)), scale, 0), scale, 1)
        blocks[:] = constant
        full = np.ascontiguousarray(blocks[: luma.shape[0], : luma.shape[1]])
        reduced = constant[::scale, ::scale].astype(np.float32)
        expected = LumaBuffers(full, full.shape, 1, with_flips=True).buffer(transform)
        got = LumaBuffers(reduced, full.shape, scale, with_flips=True).buffer(transform)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("side", [1, 2, 63, 64, 65, 127, 128, 129, 1004, 1600, 4000])
def test_prefilter_rows_are_normalised_tents(side):
    weights = prefilter_weights(side)
    assert weights.shape == (64, side)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert (weights >= 0).all()


def test_transform_composition_is_a_group():
    probe = np.arange(12).reshape(3, 4)
    for a in ORIENTATION_TRANSFORMS.values():
        for b in ORIENTATION_TRANSFORMS.values():
            assert np.array_equal(a.then(b).apply(probe), b.apply(a.apply(probe)))
