"""`meldpunt sets ...` through Typer's test runner, on the configured database (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

import registry_samples as samples
from meldpunt.cli.registry import sets_app

runner = CliRunner()


def sets(*args: str, code: int = 0, env: dict[str, str] | None = None):
    result = runner.invoke(sets_app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result


def test_create_list_show_disable_enable(cli_db):
    out = sets("create", "police-nl", "--source-org", "Politie", "--category", "A1",
               "--threshold", "24", "--description", "national database").output  # fmt: skip
    assert "created blocklist 'police-nl'" in out and "csam_baseline" in out
    sets("create", "stock", "--kind", "allowlist")
    sets("create", "police-nl", code=1)  # the name is taken
    sets("create", "bad", "--threshold", "65", code=2)  # refused by the option itself

    listed = json.loads(sets("list", "--format", "json").output)
    assert [(s["name"], s["kind"], s["pdq_threshold"]) for s in listed] == [
        ("police-nl", "blocklist", 24),
        ("stock", "allowlist", 31),
    ]
    table = sets("list", env={"COLUMNS": "140"}).output
    assert "police-nl" in table and "Politie" in table and "allowlist" in table

    assert "police-nl: disabled" in sets("disable", "police-nl").output
    shown = json.loads(sets("show", "police-nl", "--format", "json").output)
    assert shown["state"] == "disabled" and shown["default_category"] == "csam_baseline"
    assert "police-nl: active" in sets("enable", "police-nl").output
    sets("show", "nope", code=1)
    out = sets("update", "police-nl", "--not-reviewed", "--default-category", "B1").output
    assert "police-nl: not reviewed, default category csam_national" in out
    sets("update", "police-nl", "--default-category", "nonsense", code=1)


def test_import_show_and_export(cli_db, tmp_path):
    sample = samples.vics_13_flat()
    path = tmp_path / "export.json"
    path.write_bytes(sample.data)
    sets("create", "vic")
    out = sets("import", "vic", str(path)).output
    assert "vics" in out
    # rejected records are listed with their record numbers; the exit code is still 0
    assert "record 4: md5 must be 32 hex digits" in out
    assert "record 5: no hash" in out
    assert "unknown category '9'" in out
    again = sets("import", "vic", str(path), "--format", "vics").output
    # records, added, updated, unchanged, rejected
    assert re.search(r"\n\s*6\s+0\s+0\s+4\s+2\n", again), again

    shown = json.loads(sets("show", "vic", "-f", "json").output)
    assert shown["items_by_status"] == {"active": 4}
    assert shown["active_signals_by_type"] == {"md5": 4, "sha1": 2, "photodna": 2}
    assert shown["active_by_category"] == {
        "csam": 1,
        "uncategorised": 1,
        "cgi_animation": 1,
        "unknown": 1,
    }
    table = sets("show", "vic").output
    assert "photodna" in table and "cgi_animation" in table

    exported = sets("export", "vic", "-", "--format", "jsonl").output
    lines = [json.loads(line) for line in exported.splitlines() if line.startswith("{")]
    assert len(lines) == 4 and all(line["status"] == "active" for line in lines)

    target = tmp_path / "out.csv"
    sets("export", "vic", str(target), "--format", "te-csv")
    assert target.read_text().startswith("signal_type,signal_str,collab,category,tags\n")
    sets("create", "copy")
    assert re.search(r"\n\s*8\s+8\s+0", sets("import", "copy", str(target)).output)


def test_import_failures_exit_with_1(cli_db, tmp_path):
    sets("create", "police")
    sets("import", "police", str(tmp_path / "missing.json"), code=1)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02\x03 not a hash list")
    assert "cannot tell the file's format" in sets("import", "police", str(junk), code=1).output
    plain = tmp_path / "list.txt"
    plain.write_bytes(samples.plain().data)
    assert "no hash set 'nope'" in sets("import", "nope", str(plain), code=1).output
    out = sets("import", "police", str(plain)).output
    assert "line 5: expected '<signal_type> <value>'" in out
    assert "line 9: sha1 must be 40 hex digits" in out


def test_sets_add_names_each_bad_picture_and_refuses_bad_text_before_reading(cli_db, tmp_path):
    from imaging import jpeg, photo

    folder = tmp_path / "pictures"
    folder.mkdir()
    good = folder / "rocket.jpg"
    good.write_bytes(jpeg(photo("rocket")))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_bytes(b"not a picture")
    (folder / "half.jpg").write_bytes(good.read_bytes()[:2000])
    odd = folder / "odd\x1b[31m[red]x.jpg"  # a terminal escape and console markup in a name
    odd.write_bytes(jpeg(photo("chelsea")))
    sets("create", "police")
    for args, code, message in [
        (["add", "police", str(good), "--category", "A\x1b1"], 1, "control characters"),
        (["add", "police", str(good), "--category", "x" * 101], 1, "longer than 100"),
        (["add", "nope", str(good)], 1, "no hash set 'nope'"),
        (["add", "[/x]", str(good)], 1, "no hash set '[/x]'"),  # console markup stays text
        (["add", "police", str(folder / "missing.jpg")], 2, "no such file"),
    ]:
        assert message in sets(*args, code=code).output.replace("\n", " ")
    assert json.loads(sets("show", "police", "--format", "json").stdout)["items"] == 0
    out = json.loads(sets("add", "police", str(folder), "--format", "json").stdout)
    outcomes = {o["name"].rsplit("/", 1)[-1]: (o["outcome"], o["code"]) for o in out}
    assert outcomes == {
        "empty.jpg": ("rejected", "not_an_image"),
        "half.jpg": ("rejected", "corrupt_image"),
        "notes.txt": ("rejected", "not_an_image"),
        "odd\ufffd[31m[red]x.jpg": ("added", None),
        "rocket.jpg": ("added", None),
    }
    table = sets("add", "police", str(folder), env={"COLUMNS": "200"}).stdout
    assert "odd\ufffd[31m[red]x.jpg" in table and "\x1b" not in table and "unchanged" in table
    assert json.loads(sets("show", "police", "--format", "json").stdout)["items"] == 2
    sets("add", "police", str(folder / "empty.jpg"), code=1)  # every picture refused


def test_sets_ways_refuses_unknown_ways_and_names(cli_db):
    sets("create", "police")
    assert "verified: off" in sets("ways", "police", "--off", "verified").output
    for args, code, message in [
        (["ways", "police", "--off", "sideways"], 2, "sideways"),
        (["ways", "police", "--off", "plain"], 1, "always matches the plain way"),
        (["ways", "police", "--off", "trimmed", "--on", "trimmed"], 1, "both off and on"),
        (["ways", "po\x1blice", "--off", "trimmed"], 1, "no hash set"),
    ]:
        assert message in sets(*args, code=code).output
    shown = sets("ways", "police").output
    assert "verified: off" in shown and "trimmed: on" in shown and "plain: on" in shown
