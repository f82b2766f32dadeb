"""`meldpunt hash` as a user runs it: a real process, real files, its output parsed."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imaging import VECTORS, encode, jpeg, needs_vectors, photo, references

MELDPUNT = [sys.executable, "-m", "meldpunt.cli"]


def meldpunt(*args: str, check: bool = True, cwd: Path | None = None, env=None):
    return subprocess.run(
        [*MELDPUNT, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        cwd=cwd,
        env=env,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "coffee.jpg").write_bytes(jpeg(photo("coffee")))
    (tmp_path / "nested" / "brick.png").write_bytes(encode(photo("brick"), "PNG"))
    (tmp_path / "nested" / "deeper" / "rocket.webp").write_bytes(encode(photo("rocket"), "WEBP"))
    (tmp_path / "nested" / "readme.txt").write_text("not a picture\n")
    (tmp_path / "broken.jpg").write_bytes(jpeg(photo("chelsea"))[:500])
    return tmp_path


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_hash_folder_recursively_as_jsonl(folder: Path):
    records = jsonl(meldpunt("hash", str(folder), "--format", "jsonl").stdout)
    by_name = {Path(r["path"]).name: r for r in records}
    assert set(by_name) == {"coffee.jpg", "brick.png", "rocket.webp", "readme.txt", "broken.jpg"}
    coffee = by_name["coffee.jpg"]
    assert set(coffee) >= {"path", "md5", "sha1", "sha256", "pdq", "pdq_quality"}
    assert coffee["sha256"] == hashlib.sha256((folder / "coffee.jpg").read_bytes()).hexdigest()
    assert len(coffee["pdq"]) == 64 and coffee["pdq_quality"] >= 80
    assert "error" not in coffee and "pdq_dihedral" not in coffee
    # bad files are reported and the run goes on
    assert "not an image" in by_name["readme.txt"]["error"]
    assert by_name["readme.txt"]["md5"] == hashlib.md5(b"not a picture\n").hexdigest()
    assert by_name["broken.jpg"]["error"] and by_name["broken.jpg"]["pdq"] is None


def test_dihedral_gives_eight_orientation_hashes(folder: Path):
    records = jsonl(
        meldpunt("hash", str(folder / "coffee.jpg"), "-f", "jsonl", "--dihedral").stdout
    )
    (record,) = records
    assert len(record["pdq_dihedral"]) == 8
    assert record["pdq_dihedral"][0] == record["pdq"]


def test_parallel_and_serial_runs_agree(folder: Path):
    serial = meldpunt("hash", str(folder), "-f", "jsonl", "--jobs", "1").stdout
    parallel = meldpunt("hash", str(folder), "-f", "jsonl", "--jobs", "2").stdout
    assert serial == parallel


def test_csv_output_has_a_header_and_a_row_per_file(folder: Path):
    out = meldpunt("hash", str(folder), "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 5
    assert {"path", "md5", "sha1", "sha256", "pdq", "pdq_quality", "error"} <= set(rows[0])


def test_table_output_names_each_file(folder: Path):
    out = meldpunt("hash", ".", "--format", "table", cwd=folder).stdout
    assert "coffee.jpg" in out and "not an image" in out


@needs_vectors
def test_exact_flag_gives_the_reference_hash():
    ref = next(r for r in references() if r.path.name == "aaa-orig.jpg")
    (record,) = jsonl(meldpunt("hash", str(ref.path), "-f", "jsonl", "--exact", "--no-exif").stdout)
    assert record["pdq"] == ref.pdq and record["md5"] == ref.md5


def test_missing_path_is_a_clear_error(tmp_path: Path):
    result = meldpunt("hash", str(tmp_path / "nowhere"), check=False)
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_demo_loads_the_samples_and_prints_a_key_and_a_matching_check(tmp_path: Path):
    env = {**os.environ, "MELDPUNT_DATA_DIR": str(tmp_path)}
    out = meldpunt("demo", "--no-serve", env=env).stdout
    assert "Authorization: Bearer mp_" in out and "/v1/check" in out and "/ui/" in out
    again = meldpunt("demo", "--no-serve", env=env).stdout  # idempotent, a new key each time
    assert again.count("mp_") and again != out
    assert "chelsea.jpg" in out and "coffee.jpg" in out


@needs_vectors
def test_vectors_folder_hashes_without_crashing():
    records = jsonl(meldpunt("hash", str(VECTORS / "misc-images"), "-f", "jsonl").stdout)
    assert all("pdq" in r for r in records if not r["path"].endswith(".md"))
