"""ThreatExchange CSV, as ``threatexchange dataset --csv`` writes it.

    signal_type,signal_str,collab,category,tags
    pdq,f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,Sample Data,POSITIVE_CLASS,

The header row may be missing. Each row is one item with one signal. ``category`` is an opinion
class (POSITIVE_CLASS takes the set's default category, NEGATIVE_CLASS means non-pertinent) or a
value of any other scheme; a tag that is one of meldpunt's codes (``csam_baseline``) gives the
category directly, which is how meldpunt's own export keeps it. ``collab`` and ``tags`` are read
into the record's attributes.

ThreatExchange knows PDQ but not meldpunt's further hashes of a picture: an entry's turned and
trimmed PDQ hashes are written as ``pdq`` rows (so that tools reading the file find turned and
framed copies too), and its local features, which only meldpunt reads, are left out.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import BinaryIO, TextIO

from meldpunt.registry.categories import CODES
from meldpunt.registry.records import (
    ExportItem,
    ImportRecord,
    ReadOptions,
    RecordProblem,
    text_lines,
)

__all__ = ["HEADER", "NAME", "read", "sniff", "write"]

NAME = "te-csv"
#: meldpunt's own types as ThreatExchange names them, and those it has no name for
AS_WRITTEN = {"pdq_orientation": "pdq", "pdq_trimmed": "pdq"}
NOT_WRITTEN = frozenset({"features"})
HEADER = ("signal_type", "signal_str", "collab", "category", "tags")


def sniff(head: bytes) -> bool:
    lines = [line.strip() for line in head.lstrip(b"\xef\xbb\xbf").splitlines()]
    first = next((line for line in lines if line and not line.startswith(b"#")), b"")
    if first.lower().startswith(b"signal_type,signal_str"):
        return True
    fields = first.split(b",")
    return len(fields) >= 4 and b" " not in fields[0] and len(fields[1]) >= 16


def read(stream: BinaryIO, options: ReadOptions) -> Iterator[ImportRecord | RecordProblem]:
    rows = csv.reader(text_lines(stream))
    start = 1
    for row in rows:
        number, start = start, rows.line_num + 1
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and [c.lower() for c in cells[:2]] == list(HEADER[:2]):
            continue
        if len(cells) < 2 or not cells[1]:
            yield RecordProblem(number, "expected signal_type,signal_str[,collab,category,tags]")
            continue
        if len(cells) > len(HEADER):
            yield RecordProblem(number, f"{len(cells)} fields, expected at most {len(HEADER)}")
            continue
        cells += [""] * (len(HEADER) - len(cells))
        signal_type, value, collab, category, tags = cells
        tag_list = tags.split()
        code = next((tag for tag in tag_list if tag in CODES and tag != "unknown"), None)
        yield ImportRecord(
            number=number,
            signals=[(signal_type, value)],
            category_raw=category or None,
            category_code=code,
            attributes={"collab": collab, "tags": tag_list},
        )


def write(items: Iterable[ExportItem], out: TextIO, *, collab: str = "") -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    count = 0
    for item in items:
        opinion = "NEGATIVE_CLASS" if item.category == "non_pertinent" else "POSITIVE_CLASS"
        for kind, value in item.signals:
            if kind in NOT_WRITTEN:
                continue
            writer.writerow([AS_WRITTEN.get(kind, kind), value, collab, opinion, item.category])
        count += 1
    return count
