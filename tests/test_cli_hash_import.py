"""`meldpunt hash --format jsonl > hashes.jsonl` then `meldpunt sets import SET hashes.jsonl`:
the hashes of a folder become a set's items, as a user runs the two commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from imaging import encode, jpeg, photo
from meldpunt.cli import app

runner = CliRunner()


def meldpunt(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_hash_output_imports_into_a_set_and_matches(
    cli_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "coffee.jpg").write_bytes(jpeg(photo("coffee")))
    (photos / "rocket.png").write_bytes(encode(photo("rocket"), "PNG"))
    Image.new("L", (64, 64), 128).save(photos / "flat.png")  # no detail: a low-quality PDQ
    (photos / "notes.txt").write_text("not a picture")
    for options, name in (([], "hashes.jsonl"), (["--dihedral"], "turned.jsonl")):
        out = meldpunt("hash", "photos", "--format", "jsonl", "--jobs", "1", *options)
        (tmp_path / name).write_text(out)
    hashed = {r["path"]: r for r in map(json.loads, (tmp_path / "hashes.jsonl").open())}
    assert hashed["photos/flat.png"]["pdq_low_quality"] is True

    meldpunt("sets", "create", "police", "--category", "baseline")
    summary = meldpunt("sets", "import", "police", "hashes.jsonl")
    assert "import into police (jsonl)" in summary
    # records, added, updated, unchanged, rejected: the text file is reported, not imported
    assert "4      3        0          0         1" in summary
    assert "photos/notes.txt: not hashed: not an image" in summary
    # The same files hashed with their orientations are the same items.
    again = meldpunt("sets", "import", "police", "turned.jsonl")
    assert "4      0        0          3         1" in again

    exported = meldpunt("sets", "export", "police", "-", "--format", "jsonl")
    items = {item["reference"]: item for item in map(json.loads, exported.splitlines())}
    assert set(items) == {"photos/coffee.jpg", "photos/rocket.png", "photos/flat.png"}
    coffee = hashed["photos/coffee.jpg"]
    assert {(s["type"], s["value"]) for s in items["photos/coffee.jpg"]["signals"]} == {
        (kind, coffee[kind]) for kind in ("md5", "sha1", "sha256", "pdq")
    }
    assert "pdq" not in {s["type"] for s in items["photos/flat.png"]["signals"]}
    assert items["photos/coffee.jpg"]["category"] == "csam_baseline"

    answer = json.loads(meldpunt("match", "photos/coffee.jpg", "--format", "jsonl"))
    assert answer["known"] is True and answer["matches"][0]["set"] == "police"
