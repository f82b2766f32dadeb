"""Bulk import of reports: SCART's ``;``-separated columns and JSON lines.

    with session_scope() as session:
        summary = import_file(session, "export.csv", actor="cli")
    summary.received, summary.linked, summary.rejected, summary.problems

**SCART** (EOKM's tool) exports ``url;referer;reporter;reference;source;type``, with or without
that header line (with one, the columns may come in any order; without, in this order, trailing
ones may be left out). A field with ``;`` in it is quoted (``"..."``). **JSON lines** carry one
object per line: ``url`` (required), ``referer``, ``reporter``, ``reference``, ``kind`` (one of
``csam``, ``ncii``, ``other``) or ``type`` (read like SCART's), ``note``.

The file is read as a stream, one line at a time (a line is at most 64 KiB; it may end with LF,
CRLF or a CR alone). A line that cannot be taken (no URL, a URL that is not http(s), a type that
says nothing known, text with control characters, not UTF-8, broken or too deeply nested JSON)
is reported with its number and skipped; every other line is taken. A UTF-16 or UTF-32 file is
refused as a whole (one problem, nothing taken): every line of it would be garbled alike.
Lines that share a reference (and kind and reporter) become one report, up to
``hotline_report_urls`` URLs; a line without a reference is a report of its own. Reports are
committed every ``batch_lines`` lines, so an interrupted import keeps what it committed, and a
second run links the URLs taken before to their open items instead of opening them twice.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from meldpunt.config import Settings, get_settings
from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.intake import (
    MAX_NAME,
    MAX_NOTE,
    MAX_REFERENCE,
    optional_text,
    prepare_url,
    submit_report,
)
from meldpunt.reports.vocabulary import ReportKind, ReportSource

__all__ = [
    "FORMATS",
    "SCART_COLUMNS",
    "ImportProblem",
    "ReportImportSummary",
    "import_file",
    "import_reports",
    "kind_of_type",
]

FORMATS = ("auto", "scart", "jsonl")
SCART_COLUMNS = ("url", "referer", "reporter", "reference", "source", "type")
MAX_LINE = 64 * 1024
#: Byte order marks of UTF-32 and UTF-16 (UTF-32 LE first: it begins like UTF-16 LE's).
_WIDE_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")
DEFAULT_BATCH_LINES = 2_000

# What SCART's (and people's) type column says, in lower case with runs of other characters as
# one space: English and Dutch words, since EOKM's hotline is Dutch.
_TYPES: dict[str, ReportKind] = {
    **dict.fromkeys(
        ["csam", "csem", "csa", "cam", "child sexual abuse", "child sexual abuse material",
         "child sexual exploitation material", "child abuse", "child abuse material",
         "child pornography", "kinderporno", "kinderpornografie", "kindermisbruik",
         "seksueel kindermisbruik", "materiaal van seksueel kindermisbruik", "mskm"],
        ReportKind.csam,
    ),
    **dict.fromkeys(
        ["ncii", "ncil", "non consensual intimate image", "non consensual intimate images",
         "non consensual intimate imagery", "intimate image abuse", "image based sexual abuse",
         "ibsa", "revenge porn", "sextortion", "deepfake", "sexual deepfake",
         "wraakporno", "sexting", "ongewenst verspreid beeldmateriaal", "shaming"],
        ReportKind.ncii,
    ),
    **dict.fromkeys(
        ["other", "other illegal", "other illegal content", "illegal", "illegal content",
         "overig", "overige", "anders", "terrorism", "terrorist content", "hate speech"],
        ReportKind.other,
    ),
}  # fmt: skip
_NOT_WORD = re.compile(r"[^0-9a-z]+")
_HEADER_WORD = re.compile(r"[a-z_ -]*")


def kind_of_type(value: str) -> str | None:
    """The report kind a SCART type names, or None when it names none that is known."""
    words = _NOT_WORD.sub(" ", value.lower()).strip()
    found = _TYPES.get(words)
    return None if found is None else str(found)


@dataclass(frozen=True)
class ImportProblem:
    line: int
    reason: str


@dataclass
class ReportImportSummary:
    format: str
    #: lines with data (not the header, not blank lines)
    lines: int = 0
    reports: int = 0
    #: URLs that became new items / that were linked to an item open already
    received: int = 0
    linked: int = 0
    #: URLs named again within one report
    duplicates: int = 0
    rejected: int = 0
    #: the first ``max_problems`` problems, in file order
    problems: list[ImportProblem] = field(default_factory=list)
    max_problems: int = 100
    bytes_read: int = 0

    @property
    def taken(self) -> int:
        """Lines taken: new items, linked ones and repeats within a report."""
        return self.received + self.linked + self.duplicates

    def problem(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(ImportProblem(line, reason))


@dataclass
class _Line:
    number: int
    url: str
    referer: str | None
    kind: str
    reporter: str | None
    reference: str | None
    note: str | None


@dataclass
class _Group:
    kind: str
    reporter: str | None
    reference: str | None
    lines: list[_Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _lines(stream: BinaryIO, summary: ReportImportSummary) -> Iterator[tuple[int, str | None]]:
    """(number, text) per line; text None for a line already reported (too long, not UTF-8).
    Lines end with LF, CRLF or CR alone (old Mac exports); bytes that are not UTF-8 pass the
    reading as they are (``surrogateescape``) and are reported per line."""
    reader = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
    try:
        yield from _read_lines(reader, summary)
    finally:
        reader.detach()  # the caller's stream stays open


def _read_lines(
    reader: io.TextIOWrapper, summary: ReportImportSummary
) -> Iterator[tuple[int, str | None]]:
    number = 0
    while True:
        text = reader.readline(MAX_LINE + 1)
        if not text:
            return
        number += 1
        raw = text.encode("utf-8", "surrogateescape")
        summary.bytes_read += len(raw)
        if len(text) > MAX_LINE and not text.endswith(("\n", "\r")):
            while text and not text.endswith(("\n", "\r")):  # skip the rest of it
                text = reader.readline(MAX_LINE + 1)
                summary.bytes_read += len(text.encode("utf-8", "surrogateescape"))
            summary.problem(number, f"the line is longer than {MAX_LINE // 1024} KiB")
            yield number, None
            continue
        if number == 1:
            if raw.startswith(_WIDE_BOMS):
                summary.problem(number, "the file is UTF-16 or UTF-32 text; save it as UTF-8")
                return  # every line would be garbled the same way
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            summary.problem(number, "the line is not UTF-8 text")
            yield number, None


def _line(number: int, fields: dict[str, Any], default_kind: str | None) -> _Line:
    """One line's report, checked; InvalidInput says what is wrong with it."""
    url = fields.get("url")
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("the line has no URL")
    referer = optional_text(fields.get("referer"), "the referer", 10_000)
    url, referer = prepare_url(url, referer)
    kind = fields.get("kind")
    if kind is not None:
        if kind not in tuple(ReportKind):
            raise InvalidInput(f"unknown kind {str(kind)[:40]!r}; one of {', '.join(ReportKind)}")
    else:
        kind_text = optional_text(fields.get("type"), "the type", 200)
        if kind_text is not None:
            kind = kind_of_type(kind_text)
            if kind is None:
                raise InvalidInput(f"the type {kind_text[:60]!r} names no known kind of report")
        elif default_kind is not None:
            kind = default_kind
        else:
            raise InvalidInput("the line has no type (give a default kind for such lines)")
    note = optional_text(fields.get("note"), "the note", MAX_NOTE, multiline=True)
    source = optional_text(fields.get("source"), "the source", 200)
    if source is not None:
        note = f"source: {source}" + (f"\n{note}" if note else "")
    return _Line(
        number, url, referer, str(kind),
        optional_text(fields.get("reporter"), "the reporter", MAX_NAME),
        optional_text(fields.get("reference"), "the reference", MAX_REFERENCE), note,
    )  # fmt: skip


def _scart_fields(text: str, columns: tuple[str, ...] | None) -> dict[str, Any]:
    try:
        values = next(csv.reader([text], delimiter=";"))
    except csv.Error as exc:
        raise InvalidInput(f"the line is not ';'-separated text: {exc}") from None
    names = columns or SCART_COLUMNS
    if len(values) > len(names):
        raise InvalidInput(
            f"{len(values)} fields where {len(names)} are expected (quote a field that has ';')"
        )
    return dict(zip(names, values, strict=False))


def _scart_header(text: str) -> tuple[str, ...] | None:
    """The columns a header line names, or None when the line is data (a header has a 'url'
    column and only words; data has a URL)."""
    try:
        values = tuple(v.strip().lower() for v in next(csv.reader([text], delimiter=";")))
    except csv.Error:
        return None
    if "url" not in values or not all(_HEADER_WORD.fullmatch(v) for v in values):
        return None
    return values


def import_reports(
    session: Session,
    stream: BinaryIO,
    *,
    actor: str,
    format: str = "auto",
    kind: str | None = None,
    settings: Settings | None = None,
    progress: Callable[[ReportImportSummary], None] | None = None,
    batch_lines: int = DEFAULT_BATCH_LINES,
) -> ReportImportSummary:
    """Import the reports of ``stream``, committing every ``batch_lines`` lines. ``kind`` is the
    kind of lines that name none (else such a line is an error)."""
    settings = settings or get_settings()
    if format not in FORMATS:
        raise InvalidInput(f"unknown format {format!r}; one of {', '.join(FORMATS)}")
    if kind is not None and kind not in tuple(ReportKind):
        raise InvalidInput(f"unknown kind {kind!r}; one of {', '.join(ReportKind)}")
    summary = ReportImportSummary(format=format)
    cap = settings.hotline_report_urls
    groups: dict[tuple[str, str | None, str], _Group] = {}
    loose: list[_Group] = []  # lines without a reference: one report each
    pending = 0
    columns: tuple[str, ...] | None = None
    first = True

    def submit(group: _Group) -> None:
        note = "\n".join(group.notes)
        if len(note) > MAX_NOTE:
            note = note[: MAX_NOTE - 1] + "…"
        try:
            receipt = submit_report(
                session, source=ReportSource.import_, kind=group.kind,
                urls=[(line.url, line.referer) for line in group.lines], note=note or None,
                reporter_name=group.reporter, flagger_ref=group.reference, actor=actor,
                settings=settings,
            )  # fmt: skip
        except InvalidInput as exc:  # checked line by line already; kept apart all the same
            for line in group.lines:
                summary.problem(line.number, str(exc))
            return
        summary.reports += 1
        summary.received += receipt.received
        summary.linked += receipt.linked
        summary.duplicates += receipt.duplicates

    def flush() -> None:
        nonlocal pending
        for group in [*groups.values(), *loose]:
            submit(group)
        groups.clear()
        loose.clear()
        session.commit()
        pending = 0
        if progress is not None:
            progress(summary)

    for number, text in _lines(stream, summary):
        if text is None or not text.strip():
            continue
        if first:
            first = False
            if format == "auto":
                format = summary.format = "jsonl" if text.lstrip().startswith("{") else "scart"
            if format == "scart":
                columns = _scart_header(text)
                if columns is not None:
                    continue
        summary.lines += 1
        try:
            if format == "jsonl":
                try:
                    fields = json.loads(text)
                except ValueError as exc:
                    raise InvalidInput(f"not JSON: {exc}") from None
                except RecursionError:  # '[[[[...': 64 KiB of nesting exhausts the stack
                    raise InvalidInput("not JSON this importer reads: nested too deep") from None
                if not isinstance(fields, dict):
                    raise InvalidInput("not a JSON object")
            else:
                fields = _scart_fields(text, columns)
            line = _line(number, fields, kind)
        except InvalidInput as exc:
            summary.problem(number, str(exc))
            continue
        if line.reference is None:
            loose.append(_Group(line.kind, line.reporter, None, [line], [line.note or ""]))
        else:
            key = (line.reference, line.reporter, line.kind)
            group = groups.get(key)
            if group is None or len(group.lines) >= cap:
                if group is not None:
                    submit(group)
                group = groups[key] = _Group(line.kind, line.reporter, line.reference)
            group.lines.append(line)
            if line.note and line.note not in group.notes:
                group.notes.append(line.note)
        pending += 1
        if pending >= batch_lines:
            flush()
        elif progress is not None and summary.lines % 500 == 0:
            progress(summary)
    flush()
    return summary


def import_file(session: Session, path: str | Path, **options: Any) -> ReportImportSummary:
    """``import_reports`` on a file."""
    with open(path, "rb") as stream:
        return import_reports(session, stream, **options)
