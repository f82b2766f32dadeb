"""The command line's tables on an 80-column terminal: nothing past the edge, names, key
prefixes and hashes whole (a long column folds or is left out, with a caption saying where it
is), and everything on a wide terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from imaging import jpeg, photo
from meldpunt.cli import app

runner = CliRunner()


def meldpunt(*args: str, columns: int = 80) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def fits(out: str, width: int = 80) -> str:
    assert [line for line in out.splitlines() if len(line) > width] == []
    return out


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = Path("photos")
    folder.mkdir()
    for name in ("coffee", "rocket"):
        (folder / f"{name}.jpg").write_bytes(jpeg(photo(name)))
    (folder / "notes.txt").write_text("not a picture")
    return folder


def test_organisations_and_keys(cli_db):
    meldpunt("orgs", "create", "example-platform", "--kind", "platform",
             "--email", "abuse@example.org")  # fmt: skip
    meldpunt("keys", "create", "example-platform", "--role", "analyst",
             "--label", "the upload pipeline of the main site", "--expires-days", "30")  # fmt: skip
    orgs = fits(meldpunt("orgs", "list"))
    assert "example-platform" in orgs and "abuse@example.org" in orgs

    narrow = fits(meldpunt("keys", "list"))
    prefix = meldpunt("keys", "list", "--format", "json").split('"prefix": "')[1][:12]
    assert f"{prefix}…" in narrow and "example-platform" in narrow and "analyst" in narrow
    assert "expires" not in narrow and "creation and expiry: --format json" in narrow
    wide = fits(meldpunt("keys", "list", columns=160), 160)
    assert "expires" in wide and "the upload pipeline of the main site" in wide


def test_sets_list_show_and_import(cli_db, photos: Path):
    long_name = "politie-nederland-landelijk"
    meldpunt("sets", "create", long_name, "--source-org", "Politie", "--category", "baseline")
    hashes = photos / "hashes.jsonl"
    hashes.write_text(meldpunt("hash", str(photos), "--format", "jsonl", "--jobs", "1"))
    imported = fits(meldpunt("sets", "import", long_name, str(hashes)))
    assert "rejected" in imported

    listed = fits(meldpunt("sets", "list"))
    assert long_name in listed and "csam_baseline" in listed
    assert "Politie" not in listed and "meldpunt sets show NAME" in listed
    assert "Politie" in fits(meldpunt("sets", "list", columns=160), 160)
    shown = fits(meldpunt("sets", "show", long_name))
    assert "active signals by type" in shown and "Politie" in shown


def test_hash_table_folds_the_pdq_hash(photos: Path):
    records = meldpunt("hash", str(photos), "--format", "jsonl", "--jobs", "1").splitlines()
    pdq = records[0].split('"pdq": "')[1][:64]
    narrow = fits(meldpunt("hash", str(photos), "--format", "table", "--jobs", "1"))
    assert pdq[:32] in narrow and pdq[32:] in narrow and "coffee.jpg" in narrow
    assert "MD5 and SHA digests: --format jsonl or csv" in narrow
    assert pdq in meldpunt("hash", str(photos), "--format", "table", columns=160)


def test_match_table(cli_db, photos: Path):
    meldpunt("sets", "create", "police", "--category", "baseline")
    hashes = photos / "hashes.jsonl"
    hashes.write_text(meldpunt("hash", str(photos / "coffee.jpg"), "--format", "jsonl"))
    meldpunt("sets", "import", "police", str(hashes))
    out = fits(meldpunt("match", str(photos), "--format", "table", "--jobs", "1"))
    assert "police, csam_baseline" in out and "unknown" in out and "not an image" in out
