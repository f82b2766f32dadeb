"""Matching against the registry: sets, thresholds, categories, allow-lists, following changes."""

from __future__ import annotations

import hashlib
import logging
import secrets
from pathlib import Path

import numpy as np
from PIL import Image

from imaging import jpeg, photo
from meldpunt import registry
from meldpunt.index import load as index_load
from meldpunt.index import save as index_save
from meldpunt.registry.matching import Matcher, Query, open_matcher, picture_query, write_snapshot
from meldpunt.signals import HashOptions, ImageLimits, NotAnImage, hash_file, pdq_signal


def pdq_near(value: str, bits: int, seed: int = 0) -> str:
    """``value`` with ``bits`` of its bits flipped."""
    rng = np.random.default_rng(seed)
    number = int(value, 16)
    for bit in rng.choice(256, size=bits, replace=False):
        number ^= 1 << int(bit)
    return f"{number:064x}"


def test_blocklist_match_names_set_entry_category_and_distance(session):
    block = registry.create_set(session, "police", default_category="csam_baseline")
    stored = secrets.token_hex(32)
    item = registry.add_item(session, block, [("pdq", stored), ("md5", secrets.token_hex(16))],
                             category="A1", category_scheme="industry").item  # fmt: skip
    session.commit()
    matcher = Matcher.build(session)
    answer = matcher.match(Query(pdq=pdq_near(stored, 12), pdq_quality=100))
    assert answer.known
    (match,) = answer.matches
    assert (match.set, match.entry, match.signal_type, match.distance) == (
        "police",
        item.id,
        "pdq",
        12,
    )
    assert match.category == "csam_baseline"
    assert not matcher.match(Query(pdq=pdq_near(stored, 40))).known  # beyond the threshold
    assert not matcher.match(Query(pdq=secrets.token_hex(32))).known


def test_per_set_thresholds_and_category_filter(session):
    strict = registry.create_set(session, "strict", pdq_threshold=8)
    loose = registry.create_set(session, "loose", pdq_threshold=40)
    value = secrets.token_hex(32)
    registry.add_item(
        session, strict, [("pdq", value)], category="baseline", category_scheme="interpol"
    )
    registry.add_item(
        session, loose, [("pdq", value)], category="national", category_scheme="interpol"
    )
    session.commit()
    matcher = Matcher.build(session)
    near = Query(pdq=pdq_near(value, 20))
    assert [m.set for m in matcher.match(near).matches] == ["loose"]
    assert sorted(m.set for m in matcher.match(Query(pdq=pdq_near(value, 3))).matches) == [
        "loose",
        "strict",
    ]
    baseline_only = registry.category_filter("baseline")
    answer = matcher.match(Query(pdq=pdq_near(value, 3)), categories=baseline_only)
    assert [m.set for m in answer.matches] == ["strict"]


def test_allowlist_suppresses_and_says_so(session):
    block = registry.create_set(session, "block")
    allow = registry.create_set(session, "stock photos", kind="allowlist")
    stock = secrets.token_hex(32)
    registry.add_item(session, block, [("pdq", stock)])
    registry.add_item(session, allow, [("pdq", pdq_near(stock, 2))])
    digest = secrets.token_hex(16)
    registry.add_item(session, block, [("md5", digest)])
    registry.add_item(session, allow, [("md5", digest)])
    session.commit()
    matcher = Matcher.build(session)
    answer = matcher.match(Query(pdq=stock))
    assert not answer.known
    assert [m.set for m in answer.allowlisted] == ["stock photos"]
    assert [m.set for m in answer.suppressed] == ["block"]
    assert answer.as_dict()["suppressed"]
    exact = matcher.match(Query(md5=digest))
    assert not exact.known and exact.suppressed[0].signal_type == "md5"


def test_low_quality_hashes_are_not_matched_and_the_answer_says_why(session):
    block = registry.create_set(session, "block")
    value = secrets.token_hex(32)
    registry.add_item(session, block, [("pdq", value)])
    session.commit()
    answer = Matcher.build(session).match(Query(pdq=value, pdq_quality=20))
    assert not answer.known
    assert "below 50" in answer.notes[0]


def test_follows_changes_without_rebuilding(session):
    block = registry.create_set(session, "block")
    first = secrets.token_hex(32)
    item = registry.add_item(session, block, [("pdq", first)]).item
    session.commit()
    matcher = Matcher.build(session)
    pdq_index = matcher.pdq
    later = secrets.token_hex(32)
    digest = secrets.token_hex(20)
    added = registry.add_item(session, block, [("pdq", later), ("sha1", digest)]).item
    session.commit()
    assert matcher.refresh(session) >= 2
    assert matcher.pdq is pdq_index, "applied in place"
    assert matcher.match(Query(pdq=later)).matches[0].entry == added.id
    assert matcher.match(Query(sha1=digest)).known
    registry.withdraw_item(session, item.id, reason="taken back by the source")
    registry.delete_item(session, added.id)
    session.commit()
    matcher.refresh(session)
    assert not matcher.match(Query(pdq=first)).known
    assert not matcher.match(Query(pdq=later)).known
    assert not matcher.match(Query(sha1=digest)).known
    registry.enable_item(session, item.id)
    session.commit()
    matcher.refresh(session)
    assert matcher.match(Query(pdq=first)).known
    registry.disable_set(session, block)
    session.commit()
    matcher.refresh(session)
    assert not matcher.match(Query(pdq=first)).known
    assert matcher.refresh(session) == 0


def test_snapshot_then_changes_since(session, tmp_path: Path):
    block = registry.create_set(session, "block")
    values = [secrets.token_hex(32) for _ in range(50)]
    for value in values:
        registry.add_item(session, block, [("pdq", value), ("sha256", secrets.token_hex(32))])
    session.commit()
    Matcher.build(session).save(tmp_path / "matcher.idx")
    newer = secrets.token_hex(32)
    registry.add_item(session, block, [("pdq", newer)])
    session.commit()
    loaded = Matcher.load(tmp_path / "matcher.idx", session)
    assert loaded.seq == registry.current_seq(session)
    assert loaded.match(Query(pdq=values[7])).known and loaded.match(Query(pdq=newer)).known


def test_rotated_picture_matches_through_its_orientation_hashes(session, tmp_path: Path):
    block = registry.create_set(session, "block")
    original = jpeg(photo("gravel"))
    registry.add_item(session, block, [("pdq", pdq_signal(original).hash)])
    session.commit()
    matcher = Matcher.build(session)
    turned = tmp_path / "turned.jpg"
    Image.fromarray(photo("gravel")).transpose(Image.Transpose.ROTATE_90).save(turned, quality=90)
    signals = hash_file(turned, HashOptions(dihedral=True))
    assert signals.pdq is not None and signals.digests is not None
    plain = Query(pdq=signals.pdq.hash, pdq_quality=signals.pdq.quality)
    assert not matcher.match(plain).known
    with_turns = Query(pdq=signals.pdq.hash, pdq_quality=signals.pdq.quality,
                       pdq_dihedral=signals.pdq.dihedral or ())  # fmt: skip
    assert matcher.match(with_turns).known


def test_a_pictures_query_is_built_the_same_from_bytes_and_from_a_file(tmp_path: Path):
    # the check route and the check page hash bytes, `meldpunt match` hashes files
    data = jpeg(photo("coffee"))
    (tmp_path / "coffee.jpg").write_bytes(data)
    options = HashOptions(dihedral=True)
    query, problem = picture_query(data, options)
    signals = hash_file(tmp_path / "coffee.jpg", options)
    assert problem is None and query == Query.of_signals(signals.digests, signals.pdq)
    assert query.pdq is not None and query.pdq_quality is not None and query.sha256 is not None
    assert len(query.pdq_dihedral) == 8 and query.pdq in query.pdq_dihedral


def test_bytes_that_are_no_picture_still_give_their_digests(session):
    block = registry.create_set(session, "block")
    text = b"not a picture at all"
    registry.add_item(session, block, [("md5", hashlib.md5(text).hexdigest())])
    session.commit()
    query, problem = picture_query(text, HashOptions(dihedral=True))
    assert isinstance(problem, NotAnImage)
    assert query.pdq is None and query.pdq_dihedral == ()
    assert Matcher.build(session).match(query).known  # the digest matches all the same


def test_a_picture_over_the_limits_gets_no_pdq_and_says_why():
    data = jpeg(photo("coffee"))
    query, problem = picture_query(data, HashOptions(limits=ImageLimits(max_pixels=1_000)))
    assert problem is not None and problem.code == "image_too_large"
    assert query.pdq is None and query.md5 is not None


def test_a_damaged_snapshot_is_skipped_with_a_warning_and_the_registry_used(
    session, tmp_path: Path, caplog
):
    block = registry.create_set(session, "block")
    values = [secrets.token_hex(32) for _ in range(20)]
    for value in values:
        registry.add_item(session, block, [("pdq", value), ("sha256", secrets.token_hex(32))])
    session.commit()
    path, _ = write_snapshot(session, tmp_path)
    data = bytearray(path.read_bytes())
    data[-200:] = b"\xff" * 200  # the last arrays overwritten
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="meldpunt.registry.matching"):
        matcher = open_matcher(session, tmp_path)
    assert "ignoring snapshot" in caplog.text and "damaged" in caplog.text
    assert matcher.match(Query(pdq=values[3], pdq_quality=100)).known
    # checksums right, but fewer payload rows than PDQ slots: refused too, not failing later
    arrays, meta = index_load(write_snapshot(session, tmp_path)[0])
    short = {k: v[:-1] if k.startswith("pdq.payload.") else v for k, v in arrays.items()}
    index_save(path, short, meta)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meldpunt.registry.matching"):
        matcher = open_matcher(session, tmp_path)
    assert "does not fit its index" in caplog.text
    assert matcher.match(Query(pdq=values[19], pdq_quality=100)).known
