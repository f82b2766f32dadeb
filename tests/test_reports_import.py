"""Bulk import of reports (SCART's ;-separated columns, JSON lines) and `meldpunt reports`, on
SQLite and PostgreSQL: bad lines reported with their numbers, the rest taken."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from meldpunt import audit
from meldpunt.cli import app
from meldpunt.config import get_settings, reset_settings
from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.importing import import_reports, kind_of_type
from meldpunt.reports.views import recent_reports, report_details
from meldpunt.store import session_scope
from meldpunt.store.models import Report, ReportUrl, UrlItem

runner = CliRunner()

SCART = (
    "url;referer;reporter;reference;source;type\n"                      # 1
    "https://a.example/1;https://forum.example/;INHOPE;ref-1;ICCAM;CSAM\n"  # 2
    "https://a.example/2;;INHOPE;ref-1;ICCAM;child sexual abuse material\n"  # 3
    "ftp://a.example/3;;INHOPE;ref-2;ICCAM;csam\n"                      # 4: not http(s)
    "https://a.example/4;;;ref-3;;spam\n"                               # 5: unknown type
    "https://a.example/5;;;;;Revenge porn\n"                            # 6: a report alone
    '"https://a.example/6?a=1;b=2";;;ref-4;;other\n'                    # 7: quoted ;
    "https://a.example/7;x;y;z;w;v;extra\n"                             # 8: seven fields
    "\n"                                                                # 9: blank
    "HTTPS://A.example/1#top;;INHOPE;ref-1;ICCAM;CSAM\n"                # 10: repeated
    "https://a.example/8\x00;;;;;csam\n"                                # 11: NUL
    "https://a.example/9;;;;;\n"                                        # 12: no type
)  # fmt: skip


def run(session, data: bytes | str, **options):
    raw = data.encode() if isinstance(data, str) else data
    options.setdefault("actor", "cli")
    return import_reports(session, io.BytesIO(raw), **options)


def test_scart_lines_are_taken_and_bad_ones_reported(session, settings):
    summary = run(session, SCART)
    assert summary.format == "scart"
    assert [(p.line, p.reason.split(":")[0]) for p in summary.problems] == [
        (4, "only http and https URLs can be reported, not 'ftp'"),
        (5, "the type 'spam' names no known kind of report"),
        (8, "7 fields where 6 are expected (quote a field that has ';')"),
        (11, "the URL contains a NUL character (control characters are not accepted)"),
        (12, "the line has no type (give a default kind for such lines)"),
    ]
    assert (summary.lines, summary.rejected) == (10, 5)
    assert (summary.reports, summary.received, summary.linked, summary.duplicates) == (3, 4, 0, 1)
    assert summary.taken == 5
    first = report_details(session, recent_reports(session, source="import")[-1].ref)
    assert (first.flagger_ref, first.kind, first.reporter_name, first.note) == (
        "ref-1", "csam", "INHOPE", "source: ICCAM")  # fmt: skip
    assert [(u.url, u.referer) for u in first.urls] == [
        ("https://a.example/1", "https://forum.example/"),
        ("https://a.example/2", None),
    ]
    kinds = {r.flagger_ref: r.kind for r in recent_reports(session)}
    assert kinds == {"ref-1": "csam", None: "ncii", "ref-4": "other"}
    quoted = session.scalar(select(UrlItem.url).where(UrlItem.url.like("%/6%")))
    assert quoted == "https://a.example/6?a=1;b=2"
    # A default kind takes the line without a type; a second run links what is open.
    again = run(session, SCART, kind="other")
    assert (again.received, again.linked, again.duplicates, again.rejected) == (1, 4, 1, 4)
    assert session.scalar(select(func.count()).select_from(UrlItem)) == 5
    assert audit.verify(session).ok


def test_scart_without_a_header_and_with_columns_in_another_order(session, settings):
    plain = "https://b.example/1;;Helpwanted;h-1;form;ncii\nhttps://b.example/2\n"
    summary = run(session, plain, kind="csam")
    assert (summary.lines, summary.received, summary.rejected, summary.reports) == (2, 2, 0, 2)
    reordered = "TYPE;URL;Reference\r\nncii;https://b.example/3;h-9\r\ncsam;b.example/4;h-9\r\n"
    summary = run(session, reordered)
    assert (summary.received, summary.reports, summary.rejected) == (2, 2, 0)  # two kinds
    assert {r.kind for r in recent_reports(session, limit=2)} == {"ncii", "csam"}
    # Byte order mark, CRLF and trailing columns left out are all fine.
    summary = run(session, b"\xef\xbb\xbfurl;type\r\nhttps://b.example/5;csam\r\n")
    assert (summary.received, summary.rejected) == (1, 0)


def test_jsonl_lines(session, settings):
    lines = [
        json.dumps({"url": "https://c.example/1", "referer": "https://c.example/",
                    "reporter": "flagger x", "reference": "c-1", "kind": "csam",
                    "note": "first\nseen"}),
        json.dumps({"url": "https://c.example/2", "reference": "c-1", "kind": "csam",
                    "reporter": "flagger x", "note": "first\nseen"}),
        "{broken",
        "[1, 2]",
        json.dumps({"referer": "https://c.example/"}),
        json.dumps({"url": "https://c.example/3", "kind": "spam"}),
        json.dumps({"url": "https://c.example/4", "type": "NCII"}),
        json.dumps({"url": 5, "kind": "csam"}),
        json.dumps({"url": "https://c.example/5", "kind": "csam", "note": {"x": 1}}),
        json.dumps({"url": "https://c.example/6", "kind": "other", "extra": "ignored"}),
    ]  # fmt: skip
    summary = run(session, "\n".join(lines) + "\n")
    assert summary.format == "jsonl"
    assert [p.line for p in summary.problems] == [3, 4, 5, 6, 8, 9]
    reasons = {p.line: p.reason for p in summary.problems}
    assert reasons[3].startswith("not JSON") and reasons[4] == "not a JSON object"
    assert reasons[5] == "the line has no URL" and "unknown kind 'spam'" in reasons[6]
    assert reasons[9] == "the note must be text"
    assert (summary.received, summary.reports) == (4, 3)
    grouped = report_details(session, recent_reports(session)[-1].ref)
    assert grouped.flagger_ref == "c-1" and grouped.note == "first\nseen"
    assert [u.url for u in grouped.urls] == ["https://c.example/1", "https://c.example/2"]
    with pytest.raises(InvalidInput, match="unknown format"):
        run(session, "", format="xml")
    with pytest.raises(InvalidInput, match="unknown kind"):
        run(session, "", kind="spam")


def test_long_lines_and_other_encodings_are_reported_and_reading_goes_on(session, settings):
    data = (b"https://d.example/1;;;;;csam\n" + b"https://d.example/" + b"x" * 70_000
            + b";;;;;csam\n" + b"https://d.example/\xe9;;;;;csam\n"
            + b"https://d.example/2;;;;;csam")  # fmt: skip
    summary = run(session, data)
    assert [(p.line, p.reason) for p in summary.problems] == [
        (2, "the line is longer than 64 KiB"), (3, "the line is not UTF-8 text")]  # fmt: skip
    assert summary.received == 2 and summary.bytes_read == len(data)


def test_large_files_are_committed_in_batches_and_reports_capped(session, settings, monkeypatch):
    monkeypatch.setenv("MELDPUNT_HOTLINE_REPORT_URLS", "400")
    reset_settings()
    lines = "".join(f"https://e.example/{i};;;big-case;;csam\n" for i in range(1000))
    lines += "".join(f"https://e.example/x{i};;;;;ncii\n" for i in range(50))
    seen: list[int] = []
    summary = run(session, lines, settings=get_settings(), batch_lines=300,
                  progress=lambda s: seen.append(s.lines))  # fmt: skip
    assert (summary.received, summary.rejected) == (1050, 0)
    # 1,000 lines of one reference: 300-line batches, each at most 400 URLs: 4 reports; and 50.
    assert summary.reports == 4 + 50
    assert max(seen) == 1050 and len(seen) >= 4
    sizes = session.execute(
        select(func.count()).select_from(ReportUrl).join(Report, Report.id == ReportUrl.report_id)
        .where(Report.flagger_ref == "big-case").group_by(Report.id)
    ).scalars().all()  # fmt: skip
    assert sorted(sizes) == [100, 300, 300, 300]


def test_scart_types_map_to_kinds():
    assert kind_of_type(" Child Sexual Abuse  Material ") == "csam"
    assert kind_of_type("kinderporno") == "csam"
    assert kind_of_type("non-consensual intimate image") == "ncii"
    assert kind_of_type("Other illegal content") == "other"
    assert kind_of_type("spam") is None and kind_of_type("") is None


def test_the_import_command(cli_db, tmp_path):
    path = tmp_path / "scart.csv"
    path.write_text(SCART)
    result = runner.invoke(app, ["reports", "import", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert ("10 lines read as scart: 3 reports, 4 new URLs, 0 linked to open items, 1 "
            "repeated, 5 rejected") in result.output  # fmt: skip
    assert "line 4: only http and https URLs can be reported, not 'ftp'" in result.output
    assert "line 12: the line has no type" in result.output
    result = runner.invoke(app, ["reports", "import", str(path), "--kind", "ncii",
                                 "--format", "scart"])  # fmt: skip
    assert result.exit_code == 0 and "1 new URLs, 4 linked" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"url": "ftp://x.example/"}\nnot json\n')
    result = runner.invoke(app, ["reports", "import", str(bad), "--format", "jsonl"])
    assert result.exit_code == 1 and "0 new URLs" in result.output
    assert "line 2: not JSON" in result.output
    result = runner.invoke(app, ["reports", "import", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(app, ["reports", "import", str(path), "--kind", "spam"])
    assert result.exit_code == 2


def test_the_show_command(cli_db, tmp_path):
    path = tmp_path / "flagged.jsonl"
    line = {"url": "https://f.example/1", "reference": "f-1", "reporter": "Ann", "kind": "csam",
            "note": "on a forum"}  # fmt: skip
    path.write_text(json.dumps(line))
    assert runner.invoke(app, ["reports", "import", str(path)]).exit_code == 0
    with session_scope() as session:
        ref = recent_reports(session)[0].ref
    result = runner.invoke(app, ["reports", "show", ref.lower()], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert ref in result.output and "https://f.example/1" in result.output
    assert "received" in result.output and "on a forum" in result.output
    shown = json.loads(runner.invoke(app, ["reports", "show", ref, "--format", "json"]).output)
    assert shown["reference"] == "f-1" and shown["reporter_name"] == "Ann"
    assert [e["event"] for e in shown["urls"][0]["events"]] == ["received"]
    result = runner.invoke(app, ["reports", "show", "MP-0000-0000"])
    assert result.exit_code == 1 and "no report" in result.output
