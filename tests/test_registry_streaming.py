"""Large VICS exports are read as a stream: memory stays flat whatever the file's size.

tracemalloc counts every Python allocation; its peak during a read or an import must stay far
below the size of the file (a reader that loaded the JSON document would need several times it).
"""

from __future__ import annotations

import json
import secrets
import tracemalloc
from pathlib import Path

import pytest

import registry_samples as samples
from meldpunt import registry
from meldpunt.registry.formats import vics
from meldpunt.registry.records import ImportRecord, ReadOptions


def write_vics(path: Path, count: int, *, bulky: bool = False) -> int:
    """A VICS 2.0 export of ``count`` media records; ``bulky`` adds the per-file metadata
    (file paths, EXIF) that real exports carry and readers skip. Returns the file's size."""
    with path.open("w") as out:
        out.write('{"@odata.context": ' + json.dumps(samples.CONTEXT_20) + ', "value": [\n')
        for n in range(count):
            media = {
                "MediaID": n,
                "Category": n % 5,
                "MD5": secrets.token_hex(16).upper(),
                "SHA1": secrets.token_hex(20).upper(),
                "IsPrecategorized": "true" if n % 2 else False,
                "DateUpdated": "2025-01-02T03:04:05Z",
            }
            if bulky:
                media["MediaFiles"] = [
                    {"MD5": media["MD5"], "FileName": f"IMG_{n}_{k}.jpg",
                     "FilePath": f"evidence\\disk{k}\\users\\someone\\pictures\\IMG_{n}_{k}.jpg",
                     "Created": "2019-05-01T10:00:00Z", "Written": "2019-05-01T10:00:00Z",
                     "Unallocated": False}
                    for k in range(4)
                ]  # fmt: skip
                media["Exifs"] = [
                    {"PropertyName": f"Tag{k}", "PropertyValue": secrets.token_hex(24)}
                    for k in range(12)
                ]
            out.write(("," if n else "") + json.dumps(media) + "\n")
        out.write("]}\n")
    return path.stat().st_size


def _read_peak(path: Path) -> tuple[int, int]:
    """Records read from a VICS file and the peak of Python allocations while reading."""
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            count = sum(isinstance(r, ImportRecord) for r in vics.read(stream, ReadOptions()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


def test_the_vics_reader_streams_in_flat_memory(tmp_path):
    # Flat means: eight times the records, the same peak (and far below the file's size).
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    write_vics(small, 3_000)
    size = write_vics(large, 24_000)
    assert size > 4_000_000
    (small_count, small_peak), (count, peak) = _read_peak(small), _read_peak(large)
    assert (small_count, count) == (3_000, 24_000)
    assert peak < small_peak * 1.2 + 64_000, f"peak {small_peak:,} -> {peak:,} bytes"
    assert peak < size / 4, f"peak {peak:,} bytes for a file of {size:,} bytes"


def _import_peak(session, path: Path, name: str) -> tuple[registry.ImportSummary, int]:
    target = registry.create_set(session, name)
    session.commit()
    tracemalloc.start()
    try:
        summary = registry.import_file(session, target, path, batch_size=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return summary, peak


@pytest.mark.slow
def test_a_large_vics_import_runs_in_bounded_memory(session, tmp_path):
    # Six times the records in batches of 100: the peak is the batch's, not the file's.
    small, large = tmp_path / "small.json", tmp_path / "bulky.json"
    write_vics(small, 500, bulky=True)
    size = write_vics(large, 3_000, bulky=True)
    assert size > 6_000_000
    _, small_peak = _import_peak(session, small, "first")
    summary, peak = _import_peak(session, large, "police")
    assert (summary.added, summary.rejected) == (3_000, 0)
    assert peak < small_peak * 1.3 + 100_000, f"peak {small_peak:,} -> {peak:,} bytes"
    assert peak < size / 2, f"peak {peak:,} bytes for a file of {size:,} bytes"
    police = registry.get_set(session, "police")
    assert registry.set_summary(session, police).active_signals_by_type == {
        "md5": 3_000,
        "sha1": 3_000,
    }
