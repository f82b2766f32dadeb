"""INTERPOL ICSE CSV exports: semicolon-separated, with their header row.

    MD5;SHA1;PhotoDNA;Image ID;Is distributed;Victim identified;Offender identified;Series name;
    Number of submissions;File Available;Media Type;Baseline

The column names are those that forensic tools expect of an ICSE export (IPED's hash database
tool checks for exactly these). Columns are found by name, in any order and casing; other
columns are ignored. ``Baseline`` (Y/N, true/false) gives the category in the scheme ``icse``:
Y is INTERPOL baseline, N national; an empty ``Baseline`` leaves the set's default. ``Image ID``
is the reference. Flags come as Y/N or true/false.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, TextIO

from meldpunt.registry.errors import FormatError
from meldpunt.registry.records import (
    ExportItem,
    ImportRecord,
    ReadOptions,
    RecordProblem,
    parse_bool,
    text_lines,
)

__all__ = ["COLUMNS", "NAME", "read", "sniff", "write"]

NAME = "icse"
COLUMNS = (
    "MD5", "SHA1", "PhotoDNA", "Image ID", "Is distributed", "Victim identified",
    "Offender identified", "Series name", "Number of submissions", "File Available",
    "Media Type", "Baseline",
)  # fmt: skip
_HASHES = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "photodna": "photodna"}
_FLAGS = ("is distributed", "victim identified", "offender identified", "file available")


def sniff(head: bytes) -> bool:
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].lower()
    return b";" in first and b"md5" in first and (b"image id" in first or b"baseline" in first)


def read(stream: BinaryIO, options: ReadOptions) -> Iterator[ImportRecord | RecordProblem]:
    rows = csv.reader(text_lines(stream), delimiter=";")
    header = next(rows, None)
    names = [name.strip().lower() for name in header or []]
    if not any(name in _HASHES for name in names):
        raise FormatError("an ICSE CSV starts with its header row (MD5;SHA1;PhotoDNA;...)")
    start = rows.line_num + 1
    for row in rows:
        number, start = start, rows.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names):
            yield RecordProblem(number, f"{len(row)} fields, the header has {len(names)}")
            continue
        fields = {name: cell.strip() for name, cell in zip(names, row, strict=False)}
        signals = [(kind, fields[key]) for key, kind in _HASHES.items() if fields.get(key)]
        if not signals:
            yield RecordProblem(number, "no hash (MD5, SHA1 or PhotoDNA)")
            continue
        attributes: dict[str, Any] = {
            flag: parse_bool(fields[flag]) for flag in _FLAGS if flag in fields
        }
        for name in ("series name", "media type", "number of submissions"):
            if fields.get(name):
                attributes[name] = fields[name]
        yield ImportRecord(
            number=number,
            signals=signals,
            category_raw=fields.get("baseline") or None,
            category_scheme="icse",
            reference=fields.get("image id") or None,
            attributes=attributes,
        )


def write(items: Iterable[ExportItem], out: TextIO) -> int:
    """Items with an MD5, SHA-1 or PhotoDNA, with Baseline Y (baseline), N (other abuse
    material) or empty."""
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for item in items:
        signals = dict(reversed(item.signals))  # the first of each type wins
        if not any(kind in signals for kind in ("md5", "sha1", "photodna")):
            continue
        baseline = {"csam_baseline": "Y", "csam_national": "N", "csam": "N"}.get(item.category, "")
        row = [""] * len(COLUMNS)
        row[0] = signals.get("md5", "").upper()
        row[1] = signals.get("sha1", "").upper()
        row[2] = signals.get("photodna", "")
        row[3] = item.reference or ""
        row[-1] = baseline
        writer.writerow(row)
        count += 1
    return count
