"""What the format readers yield and the writers take: plain records, no database.

A reader turns a file into ``ImportRecord``s (one per item, with its raw signals and category as
found) and ``RecordProblem``s (a record it could not make sense of, with its line or record
number). Validation of the signals and the category happens once, in ``importing``, for every
format alike. A writer takes ``ExportItem``s.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, BinaryIO

__all__ = [
    "BOM",
    "ExportItem",
    "ImportRecord",
    "ReadOptions",
    "RecordProblem",
    "parse_bool",
    "skip_bom",
    "text_lines",
]

BOM = b"\xef\xbb\xbf"


@dataclass
class ImportRecord:
    #: Line number (text formats: the record's first line) or record number (VICS media).
    number: int
    #: (signal type, value) as found; validated and normalised by the importer.
    signals: list[tuple[str, str]]
    category_raw: str | None = None
    #: The scheme ``category_raw`` is in (``"vic:us"``); None: recognised by its value.
    category_scheme: str | None = None
    #: A normalised code given as such (meldpunt's own formats); wins over ``category_raw``.
    category_code: str | None = None
    reference: str | None = None
    note: str | None = None
    #: None: a new item is active and an existing one keeps its status.
    status: str | None = None
    #: Other fields the format carries (VICS flags, series, ThreatExchange tags): read, typed,
    #: not stored.
    attributes: dict[str, Any] = field(default_factory=dict)
    #: The local features a ``features`` signal names (meldpunt's own JSON Lines carries them).
    features: bytes | None = None


@dataclass(frozen=True)
class RecordProblem:
    number: int
    reason: str
    #: Reading cannot go on after this one (broken JSON in the middle of a VICS stream).
    fatal: bool = False


@dataclass(frozen=True)
class ReadOptions:
    #: How to read Project VIC category 0: "vics" (no category yet) or "us" (non-pertinent).
    vic_profile: str = "vics"


@dataclass(frozen=True)
class ExportItem:
    id: int
    reference: str | None
    category: str
    category_raw: str | None
    category_scheme: str | None
    status: str
    note: str | None
    signals: tuple[tuple[str, str], ...]
    #: The local features the item's ``features`` signal names, where the export reads them.
    features: bytes | None = None


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def parse_bool(value: Any) -> bool | None:
    """A JSON boolean, or one written as a string or number ("true", "False", "Y", 1); None for
    null, empty or anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value) if value in (0, 1) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def skip_bom(stream: BinaryIO) -> BinaryIO:
    """The stream, positioned after a UTF-8 byte order mark if it starts with one."""
    buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    if buffered.peek(3)[:3] == BOM:
        buffered.read(3)
    return buffered  # type: ignore[no-any-return]


def text_lines(stream: BinaryIO) -> io.TextIOWrapper:
    """The stream as text (UTF-8, BOM dropped, undecodable bytes replaced, newlines as read)."""
    return io.TextIOWrapper(skip_bom(stream), encoding="utf-8", errors="replace", newline="")
