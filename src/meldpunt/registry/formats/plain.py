"""The plain list: one ``<signal_type> <value>`` per line.

    # known material, 2025-01-01
    md5 9e107d9d372bb6826bd81d3542a419d6
    pdq f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22

Blank lines and lines starting with ``#`` are ignored. Each line is one item with one signal and
the set's default category.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO, TextIO

from meldpunt.registry.records import (
    ExportItem,
    ImportRecord,
    ReadOptions,
    RecordProblem,
    text_lines,
)

__all__ = ["NAME", "read", "sniff", "write"]

NAME = "plain"


_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9_-]*\s+\S+")


def sniff(head: bytes) -> bool:
    """Most of the first lines (comments aside) are a type name and one value."""
    lines = [line.strip() for line in head.lstrip(b"\xef\xbb\xbf").splitlines()]
    meaningful = [line for line in lines if line and not line.startswith(b"#")][:10]
    fitting = sum(bool(_LINE.fullmatch(line)) for line in meaningful)
    return bool(meaningful) and fitting * 2 > len(meaningful)


def read(stream: BinaryIO, options: ReadOptions) -> Iterator[ImportRecord | RecordProblem]:
    for number, line in enumerate(text_lines(stream), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 2:
            yield RecordProblem(number, "expected '<signal_type> <value>'")
            continue
        yield ImportRecord(number=number, signals=[(parts[0], parts[1])])


def write(items: Iterable[ExportItem], out: TextIO, *, title: str = "") -> int:
    if title:
        out.write(f"# {title}\n")
    count = 0
    for item in items:
        for kind, value in item.signals:
            out.write(f"{kind} {value}\n")
        count += 1
    return count
