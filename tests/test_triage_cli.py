"""`meldpunt triage` and `meldpunt triage-case`: a run with --format jsonl, the outputs, groups,
decisions and their export; bad input ends with a clear error."""

from __future__ import annotations

import json

from rich.console import Console
from typer.testing import CliRunner

from meldpunt.cli import triage as triage_cli
from meldpunt.cli.app import app as meldpunt_app
from triage_support import jpeg, pattern, png

runner = CliRunner()


def meldpunt(*args: str, code: int = 0):
    result = runner.invoke(meldpunt_app, list(args))
    assert result.exit_code == code, result.output
    return result


def test_triage_from_the_command_line(cli_db, tmp_path):
    phone = tmp_path / "phone"
    phone.mkdir()
    (phone / "a.png").write_bytes(png(pattern(1)))
    (phone / "a-copy.jpg").write_bytes(jpeg(pattern(1), quality=70))
    (phone / "b.png").write_bytes(png(pattern(2)))
    (phone / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    result = meldpunt("triage", str(phone), "--case", "phone-1", "--format", "jsonl", "--jobs",
                      "1", "--out", str(out))  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(x["path"], x["class"]) for x in lines] == [
        ("phone/a-copy.jpg", "new"), ("phone/a.png", "new"), ("phone/b.png", "new"),
        ("phone/notes.txt", "ignorable")]  # fmt: skip
    assert lines[0]["group"] == lines[1]["group"] != lines[2]["group"]
    assert sorted(p.name for p in out.iterdir()) == [
        "files.csv", "groups.json", "summary.html", "summary.json", "vics.json"]  # fmt: skip
    listed = meldpunt("triage-case", "list").stdout
    assert "phone-1" in listed and "done" in listed
    groups = meldpunt("triage-case", "groups", "phone-1").stdout
    assert "2 groups" in groups
    group = str(lines[0]["group"])
    meldpunt("triage-case", "decide", "phone-1", group, "--illegal", "csam")
    meldpunt("triage-case", "decide", "phone-1", group, code=2)  # neither decision
    meldpunt("sets", "create", "case-hashes")
    exported = meldpunt("triage-case", "export", "phone-1", "--set", "case-hashes").stdout
    assert "1 group(s), 2 item(s) into case-hashes: 2 added" in exported
    again = meldpunt("triage", str(phone), "--case", "phone-2", "--format", "jsonl", "--jobs", "1",
                     "--out", str(tmp_path / "out2"))  # fmt: skip
    known = [json.loads(x) for x in again.stdout.splitlines() if x.startswith("{")]
    assert [x["class"] for x in known] == ["known", "known", "new", "ignorable"]
    assert known[0]["matches"][0]["set"] == "case-hashes"
    assert known[0]["matches"][0]["category"] == "csam"
    (phone / "later.png").write_bytes(png(pattern(3)))  # a finished case is final
    summary = meldpunt("triage", str(phone), "--case", "phone-2", "--jobs", "1",
                       "--out", str(tmp_path / "out2"))  # fmt: skip
    assert "0 files hashed, 4 recorded before" in summary.output and "known" in summary.stdout
    report = meldpunt("triage-case", "report", "phone-1", "--out", str(tmp_path / "again"))
    assert "summary.html" in report.stdout


def test_bad_input_ends_with_a_clear_error(cli_db, tmp_path):
    err = meldpunt("triage", str(tmp_path / "missing"), "--case", "x", code=1).output
    assert "no such file or folder" in err
    assert "cannot contain" in meldpunt("triage", str(tmp_path), "--case", "a/b", code=1).output
    assert "no triage case" in meldpunt("triage-case", "groups", "nope", code=1).output
    meldpunt("triage", str(tmp_path), "--case", "empty", "--jobs", "1", "--out",
             str(tmp_path / "o"))  # fmt: skip
    assert "started with the sources" in meldpunt(
        "triage", str(tmp_path / "o"), "--case", "empty", code=1).output  # fmt: skip
    assert "no group 3" in meldpunt("triage-case", "decide", "empty", "3", "--not-illegal",
                                    code=1).output  # fmt: skip


def test_the_progress_bar_shows_rate_and_time_left(monkeypatch):
    console = Console(record=True, force_terminal=True, width=120)
    monkeypatch.setattr(triage_cli, "stderr", lambda: console)
    with triage_cli._progress_bar() as bar:
        task = bar.add_task("hashing", total=100)
        bar.update(task, completed=40)
        bar.refresh()
    shown = console.export_text()
    assert "40/100" in shown and "files/s" in shown and "hashing" in shown
