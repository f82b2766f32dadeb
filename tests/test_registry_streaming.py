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


@pytest.mark.slow
def test_the_vics_reader_streams_200k_records_in_flat_memory(tmp_path):
    path = tmp_path / "large.json"
    size = write_vics(path, 200_000)
    assert size > 25_000_000
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            count = sum(isinstance(r, ImportRecord) for r in vics.read(stream, ReadOptions()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert peak < size / 20, f"peak {peak:,} bytes for a file of {size:,} bytes"


@pytest.mark.slow
def test_a_large_vics_import_runs_in_bounded_memory(session, tmp_path):
    path = tmp_path / "bulky.json"
    size = write_vics(path, 10_000, bulky=True)
    assert size > 20_000_000
    police = registry.create_set(session, "police")
    session.commit()
    tracemalloc.start()
    try:
        summary = registry.import_file(session, police, path, batch_size=500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (summary.added, summary.rejected) == (10_000, 0)
    assert peak < size / 4, f"peak {peak:,} bytes for a file of {size:,} bytes"
    assert registry.set_summary(session, police).active_signals_by_type == {
        "md5": 10_000,
        "sha1": 10_000,
    }
