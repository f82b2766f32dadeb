"""The hotline's files against hostile input: report imports, the IP-to-ASN table, the name table
the resolver reads. Bad lines are reported with their numbers and the rest is taken; files are
read as streams, so a gigabyte line or a million lines costs time, never the memory of the file;
on SQLite and PostgreSQL where a database is involved."""

from __future__ import annotations

import io
import ipaddress
import json
import time
import tracemalloc

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from meldpunt.cli import app
from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.fetcher import NameTable
from meldpunt.reports.importing import import_reports
from meldpunt.store.models import UrlItem
from meldpunt.takedown import asn, directory

#: Bytes of every value but line ends.
BINARY = bytes(b for b in range(256) if b not in b"\r\n") * 4


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


# --- the IP-to-ASN table --------------------------------------------------------------------------


def test_the_asn_table_reports_damage_line_by_line_and_refuses_the_whole_address_space(
    session, tmp_path
):
    path = tmp_path / "table.csv"
    path.write_bytes(
        b"start,end,asn,org\n"
        b"192.0.2.0,192.0.2.255,64496,Example Net\n"
        + BINARY + b"\n"                                                  # 3: binary
        + b"::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,64497,Everything\n"  # 4: IPv6 /0
        b"0.0.0.0,255.255.255.255,64498,Everything\n"                     # 5: IPv4 /0
        b"198.51.100.0,198.51.100.255,64499,Over\n"
        b"198.51.100.128,198.51.100.255,64500,Inside\n"                   # overlaps: longest wins
        b"203.0.113.9,203.0.113.1,64501,Backwards\n"                      # 8
    )  # fmt: skip
    result = asn.load_table(session, path, "csv", actor="test")
    assert (result.taken, result.bad) == (3, 4)
    assert [p.split(":")[0] for p in result.problems] == ["line 3", "line 4", "line 5", "line 8"]
    assert "whole address space" in result.problems[1]
    assert asn.lookup(session, "198.51.100.200").asn == 64500
    assert asn.lookup(session, "198.51.100.1").asn == 64499
    assert asn.lookup(session, "8.8.8.8") is None and asn.lookup(session, "2001:db8::1") is None
    pyasn = asn.load_table(session, ["0.0.0.0/0 64502", "::/0\t64503", "\x00\x01 garbage",
                                     "8.8.8.0/24 15169"], "pyasn")  # fmt: skip
    assert (pyasn.taken, pyasn.bad) == (1, 3)


def test_a_gigabyte_line_in_the_asn_table_is_skipped_without_reading_it_whole(session):
    """Table lines were read whole (``for line in file``): a file without line ends came into
    memory at once."""
    endless = Endless(1 << 30, b"7", tail=b"\n192.0.2.0,192.0.2.255,64496,After\n")
    text = io.TextIOWrapper(io.BufferedReader(endless, 1 << 16))
    tracemalloc.start()
    try:
        result = asn.load_table(session, text, "csv")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.taken, result.problems) == (1, ["line 1: the line is longer than 64 KiB"])
    assert peak < 16 * 1024 * 1024, peak


def test_a_hundred_thousand_ranges_load_in_seconds(session, tmp_path):
    path = tmp_path / "big.csv"
    base = int(ipaddress.ip_address("11.0.0.0"))
    with path.open("w") as out:
        for n in range(100_000):
            first = base + n * 256
            out.write(f"{ipaddress.ip_address(first)},{ipaddress.ip_address(first + 255)},"
                      f"{64500 + n % 300},Org {n % 300}\n")  # fmt: skip
    started = time.perf_counter()
    result = asn.load_table(session, path, "csv", replace=True)
    session.commit()
    assert result.taken == 100_000 and asn.lookup(session, "11.1.2.3").asn == 64500 + 258 % 300
    assert time.perf_counter() - started < 60


# --- the directory import -------------------------------------------------------------------------


def test_the_directory_import_reports_bad_records_and_takes_the_rest(session):
    """A 5,000-digit AS number (int's digit limit), a CSV field over the csv module's limit and
    a bare CR ended the whole import with a traceback; nested JSON likewise."""
    records = [{"name": "fine", "email": "abuse@fine.example", "asn": 64500},
               {"name": "digits", "email": "abuse@digits.example", "asn": "9" * 5000},
               {"name": "also-fine", "email": "abuse@also.example", "asn": "AS64501"}]  # fmt: skip
    result = directory.import_contacts(session, json.dumps(records), "json", actor="test")
    assert (result.added, len(result.problems)) == (2, 1)
    assert "record 2: the AS number must be a number" in result.problems[0]
    with pytest.raises(InvalidInput, match="nested too deep"):
        directory.import_contacts(session, "[" * 100_000 + "]" * 100_000, "json", actor="test")
    with pytest.raises(InvalidInput, match="not JSON"):
        directory.import_contacts(session, '[{"asn": 1' + "0" * 5000 + "}]", "json", actor="t")
    csv_text = ("name,email,asn\rcr-a,abuse@cr-a.example,64502\r"
                f"big,{'x' * 200_000}@big.example,64503\r"
                "cr-b,abuse@cr-b.example,64504\r")  # fmt: skip
    result = directory.import_contacts(session, csv_text, "csv", actor="test")
    assert result.added == 2 and len(result.problems) == 1
    assert "field larger than field limit" in result.problems[0]


def test_the_contacts_command_says_a_file_is_not_utf8(cli_db, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes("name,email\nCafé,abuse@cafe.example\n".encode("latin-1"))
    result = CliRunner().invoke(app, ["contacts", "import", str(path)])
    assert result.exit_code != 0 and "not UTF-8" in result.output  # not a traceback


# --- the name table the resolver reads ------------------------------------------------------------


def test_the_name_table_skips_damage_reads_huge_files_as_streams_and_outlives_removal(tmp_path):
    path = tmp_path / "hosts"
    path.write_bytes(b"127.0.0.2 pictures.example\n" + BINARY + b"\n"
                     b"not-an-address broken.example\n127.0.0.3 other.example # a comment\n"
                     b"127.0.0.4\n")  # fmt: skip
    table = NameTable(path)
    assert table.lookup("pictures.example") == ["127.0.0.2"]
    assert table.lookup("other.example") == ["127.0.0.3"] and table.lookup("broken.example") is None
    with path.open("wb") as out:  # 256 MB without a line end, then one name
        block = b"z" * (1 << 20)
        for _ in range(256):
            out.write(block)
        out.write(b"\n127.0.0.5 after.example\n")
    tracemalloc.start()
    try:
        assert table.lookup("after.example") == ["127.0.0.5"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, peak
    assert table.lookup("pictures.example") is None  # the file changed: the new table counts
    path.unlink()
    assert table.lookup("after.example") is None  # a missing file is an empty table
