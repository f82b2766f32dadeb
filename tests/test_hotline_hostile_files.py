"""The hotline's files against hostile input: report imports, the IP-to-ASN table, the name table
the resolver reads. Bad lines are reported with their numbers and the rest is taken; files are
read as streams, so a gigabyte line or a million lines costs time, never the memory of the file;
on SQLite and PostgreSQL where a database is involved."""

from __future__ import annotations

import io
import json
import tracemalloc

from sqlalchemy import func, select

from meldpunt.reports.importing import import_reports
from meldpunt.store.models import UrlItem


class Endless(io.RawIOBase):
    """``size`` bytes of ``fill`` (then ``tail``), made as they are read: a huge file that takes
    no memory of its own."""

    def __init__(self, size: int, fill: bytes = b"x", tail: bytes = b"") -> None:
        super().__init__()
        self.left, self.fill, self.tail = size, fill, tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.left <= 0:
            data, self.tail = self.tail[: len(buffer)], self.tail[len(buffer) :]
        else:
            data = self.fill * min(self.left, len(buffer))
            self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def run(session, data: bytes | io.IOBase, **options):
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    options.setdefault("actor", "cli")
    return import_reports(session, stream, **options)


def problems(summary) -> list[tuple[int, str]]:
    return [(p.line, p.reason) for p in summary.problems]


# --- report imports -------------------------------------------------------------------------------


def test_lines_ending_with_a_cr_alone_are_lines(session, settings):
    """Old Mac exports end lines with CR: the whole file was one line (too long, or not
    ';'-separated text), and nothing of it was taken."""
    data = (b"url;reporter;reference;type\r"
            + b"".join(b"https://cr.example/%d;;;csam\r" % n for n in range(300))
            + b"https://cr.example/bad\x00;;;csam\rhttps://cr.example/last;;;csam")  # fmt: skip
    summary = run(session, data)
    assert summary.received == 301 and summary.bytes_read == len(data)
    assert [line for line, _ in problems(summary)] == [302]
    mixed = run(session, b"https://crlf.example/1;;;;;csam\r\nhttps://crlf.example/\x1b;;;;;csam\r"
                         b"https://crlf.example/3;;;;;csam\n")  # fmt: skip
    assert (mixed.received, [line for line, _ in problems(mixed)]) == (2, [2])


def test_a_utf16_file_is_refused_with_one_clear_problem(session, settings):
    text = "url;type\nhttps://wide.example/1;csam\nhttps://wide.example/2;csam\n"
    for data in (text.encode("utf-16"), "\ufeff".encode("utf-16-be") + text.encode("utf-16-be"),
                 text.encode("utf-32")):  # fmt: skip
        summary = run(session, data)
        assert problems(summary) == [(1, "the file is UTF-16 or UTF-32 text; save it as UTF-8")]
        assert (summary.received, summary.rejected) == (0, 1)


def test_deeply_nested_json_is_a_bad_line_not_the_end_of_the_import(session, settings):
    """``json.loads`` of 5,000 nested arrays raised RecursionError, which ended the import (a
    traceback from the command, a server error from the page) after whatever it had read."""
    data = b"\n".join([
        json.dumps({"url": "https://deep.example/1", "kind": "csam"}).encode(),
        b'{"url": "https://deep.example/2", "kind": "csam", "x": ' + b"[" * 5000 + b"]" * 5000
        + b"}",
        json.dumps({"url": "https://deep.example/3", "kind": "csam"}).encode(),
    ])  # fmt: skip
    summary = run(session, data)
    assert summary.received == 2
    assert problems(summary) == [(2, "not JSON this importer reads: nested too deep")]


def test_a_gigabyte_line_and_a_binary_file_are_read_as_streams(session, settings):
    tracemalloc.start()
    try:
        huge = io.BufferedReader(
            Endless(1 << 30, b"y", tail=b"\nhttps://after.example/1;;;;;csam\n"), 1 << 16
        )
        summary = run(session, huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problems(summary) == [(1, "the line is longer than 64 KiB")]
    assert summary.received == 1 and summary.bytes_read == (1 << 30) + 34
    assert peak < 16 * 1024 * 1024, peak

    noise = bytes((n * 7919 + n // 256) % 256 for n in range(200_000))
    binary = run(session, noise + b"\nhttps://after.example/2;;;;;csam\n", kind="csam")
    assert binary.rejected > 0 and binary.received >= 1
    assert session.scalar(select(func.count()).where(UrlItem.url.like("https://after%"))) == 2
