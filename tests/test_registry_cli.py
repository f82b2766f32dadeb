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
