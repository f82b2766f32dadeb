"""`meldpunt match` and `meldpunt index` as a user runs them, against a registry on disk."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from imaging import jpeg, photo
from meldpunt import registry
from meldpunt.signals import pdq_signal
from meldpunt.store import init_db, make_engine, make_sessionmaker


@pytest.fixture
def world(tmp_path: Path):
    """A registry with one blocklist holding a photo's PDQ and a random MD5."""
    url = f"sqlite:///{tmp_path / 'meldpunt.db'}"
    init_db(url)
    engine = make_engine(url)
    picture = tmp_path / "known.jpg"
    picture.write_bytes(jpeg(photo("coffee")))
    digest = secrets.token_hex(16)
    with make_sessionmaker(engine)() as session:
        block = registry.create_set(session, "police", default_category="csam_baseline")
        item = registry.add_item(session, block, [("pdq", pdq_signal(picture).hash)]).item
        registry.add_item(
            session, block, [("md5", digest)], category="B2", category_scheme="industry"
        )
        session.commit()
    engine.dispose()
    env = {**os.environ, "MELDPUNT_DATABASE_URL": url, "MELDPUNT_DATA_DIR": str(tmp_path / "var")}
    return {"dir": tmp_path, "env": env, "picture": picture, "item": item.id, "md5": digest}


def meldpunt(world, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meldpunt.cli", *args], capture_output=True,
                          text=True, env=world["env"], check=check, timeout=120)  # fmt: skip


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_match_files_known_unknown_and_rotated(world):
    folder = world["dir"] / "upload"
    folder.mkdir()
    Image.open(world["picture"]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        folder / "mirrored.jpg"
    )
    (folder / "other.jpg").write_bytes(jpeg(photo("rocket")))
    (folder / "notes.txt").write_text("hello")
    out = meldpunt(world, "match", str(world["picture"]), str(folder), "-f", "jsonl").stdout
    by_name = {Path(r["path"]).name: r for r in lines(out)}
    known = by_name["known.jpg"]
    assert known["known"] is True
    expected = {"set": "police", "entry": world["item"], "category": "csam_baseline"}
    assert known["matches"][0] == {**expected, "signal_type": "pdq", "distance": 0, "way": "plain"}
    assert by_name["mirrored.jpg"]["known"] is True  # orientation hashes are on by default
    assert by_name["other.jpg"] == {
        "path": str(folder / "other.jpg"),
        "known": False,
        "matches": [],
    }
    assert by_name["notes.txt"]["known"] is False and "error" in by_name["notes.txt"]
    no_turns = meldpunt(
        world, "match", str(folder / "mirrored.jpg"), "--no-dihedral", "-f", "jsonl"
    )
    assert lines(no_turns.stdout)[0]["known"] is False


def test_match_hash_values_and_signals_file(world):
    signals = world["dir"] / "signals.txt"
    signals.write_text(
        f"# a comment\nmd5 {world['md5']}\npdq nothex\n\nsha1 {secrets.token_hex(20)}\n"
    )
    result = meldpunt(world, "match", "--signal", f"md5:{world['md5'].upper()}",
                      "--signals-file", str(signals), "-f", "jsonl")  # fmt: skip
    records = lines(result.stdout)
    assert [r["known"] for r in records] == [True, True, False, False]
    assert records[0]["matches"][0]["category"] == "csam_national"
    assert "error" in records[2]
    assert f"{signals}:3:" in result.stderr


def test_category_filter(world):
    result = meldpunt(world, "match", "--signal", f"md5:{world['md5']}", "--categories", "baseline",
                      "-f", "jsonl")  # fmt: skip
    assert lines(result.stdout)[0]["known"] is False
    bad = meldpunt(world, "match", "--signal", f"md5:{world['md5']}", "--categories", "nonsense",
                   check=False)  # fmt: skip
    assert bad.returncode == 2 and "unknown category filter" in bad.stderr


def test_snapshot_is_used_and_followed(world):
    meldpunt(world, "index", "snapshot")
    status = json.loads(meldpunt(world, "index", "status").stdout)
    assert status["snapshot_change"] == status["registry_change"] > 0
    url = world["env"]["MELDPUNT_DATABASE_URL"]
    engine = make_engine(url)
    newer = secrets.token_hex(16)
    with make_sessionmaker(engine)() as session:
        registry.add_item(session, "police", [("md5", newer)])
        session.commit()
    engine.dispose()
    out = meldpunt(world, "match", "--signal", f"md5:{newer}", "-f", "jsonl").stdout
    assert lines(out)[0]["known"] is True  # the snapshot plus the change made after it


def test_table_output(world):
    out = meldpunt(world, "match", str(world["picture"]), "-f", "table").stdout
    assert "known" in out and "police" in out
