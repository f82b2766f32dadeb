"""`meldpunt attribution|contacts|forwards ...` through Typer's test runner on the configured
database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from meldpunt.cli import app
from meldpunt.config import reset_settings
from meldpunt.reports import fetcher
from takedown_support import TABLE, no_dns

runner = CliRunner()


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    monkeypatch.setattr(fetcher, "resolve", no_dns)


def meldpunt(*args: str, code: int = 0, stdin: str | None = None):
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result


def test_attribution_load_and_lookup(cli_db, tmp_path, monkeypatch):
    table = tmp_path / "table.csv"
    table.write_text(TABLE + "not,a,line\n")
    out = meldpunt("attribution", "load", str(table)).output
    assert "4 prefixes taken from 5 lines (merged; 1 bad, 0 not routed)" in out
    assert "line 6:" in out
    dat = tmp_path / "ipasn.dat"
    dat.write_text("; pyasn\n2001:db8::/32\t64510\n")
    assert (
        "1 prefixes taken" in meldpunt("attribution", "load", str(dat), "--format", "pyasn").output
    )
    meldpunt("attribution", "load", code=1)  # neither a file nor --sim
    out = meldpunt("attribution", "load", "--sim", "--replace").output
    assert "replaced the table" in out

    names = tmp_path / "names"
    names.write_text("127.3.0.9 rhein.test\n127.0.0.9 polder.test\n")
    monkeypatch.setenv("MELDPUNT_RESOLVER_HOSTS_FILE", str(names))
    reset_settings()
    meldpunt("contacts", "add", "Polder", "--asn", "AS64500", "--email", "abuse@polder.test",
             "--country", "NL")  # fmt: skip
    found = json.loads(meldpunt("attribution", "lookup", "polder.test", "-f", "json").stdout)
    assert found["addresses"][0]["asn"] == 64500
    assert found["contact"] == "Polder" and found["outcome"] == "contact_needed"
    meldpunt("contacts", "approve", "Polder")
    out = meldpunt("attribution", "lookup", "http://polder.test/x.jpg").stdout
    assert "AS64500" in out and "outcome: ready" in out
    found = json.loads(meldpunt("attribution", "lookup", "rhein.test", "-f", "json").stdout)
    assert (found["outcome"], found["country"]) == ("forwarded", "DE")
    found = json.loads(meldpunt("attribution", "lookup", "127.9.9.9", "-f", "json").stdout)
    assert found["addresses"][0]["asn"] == 64511
    found = json.loads(meldpunt("attribution", "lookup", "gone.test", "-f", "json").stdout)
    assert "does not resolve" in found["problem"]


def test_contacts_add_list_approve_export_import(cli_db, tmp_path):
    meldpunt("contacts", "add", "Dijk", "--asn", "64501", "--email", "abuse@dijk.test")
    meldpunt("contacts", "add", "CDN", "--domain", "cdn.test", "--email", "a@cdn.test",
             "--group-seconds", "30", "--hold-weekends", "--approved")  # fmt: skip
    assert "rule" in meldpunt("contacts", "add", "Nothing", code=1).output
    assert "already" in meldpunt("contacts", "add", "CDN", "--asn", "1", code=1).output
    listed = json.loads(meldpunt("contacts", "list", "-f", "json").stdout)
    assert [(c["name"], c["approved"], c["group_seconds"]) for c in listed] == [
        ("CDN", True, 30), ("Dijk", False, 120)]  # fmt: skip
    assert "AS64501" in meldpunt("contacts", "list").stdout
    assert "is approved" in meldpunt("contacts", "approve", "Dijk").output
    assert "not approved" in meldpunt("contacts", "approve", "Dijk", "--withdraw").output
    exported = tmp_path / "contacts.json"
    meldpunt("contacts", "export", str(exported), "-f", "json")
    meldpunt("contacts", "remove", "CDN")
    out = meldpunt("contacts", "import", str(exported), "-f", "json").output
    assert "1 added, 1 updated, 0 refused" in out
    csv_text = meldpunt("contacts", "export", "-f", "csv").stdout
    assert csv_text.splitlines()[0].startswith("name,kind,email,asn,network_owner,domain")
    out = meldpunt("contacts", "import", "-", "-f", "csv", stdin=csv_text + "Bad,bank\n").output
    assert "0 added, 2 updated, 1 refused" in out
    assert "no abuse contact" in meldpunt("contacts", "approve", "Nobody", code=1).output


def test_forwards_export_command(cli_db, tmp_path):
    out = json.loads(meldpunt("forwards", "export").stdout)
    assert out["forwards"] == []
    assert meldpunt("forwards", "export", "-f", "csv").stdout.startswith("reference,url,")
    meldpunt("forwards", "export", "--since", "yesterday", code=1)
    target = tmp_path / "f.json"
    meldpunt("forwards", "export", "--since", "2025-03-01", "-o", str(target))
    assert json.loads(target.read_text())["since"] == "2025-03-01T00:00:00+00:00"
