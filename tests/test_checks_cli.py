"""`meldpunt orgs|keys|subscriptions ...` through Typer's test runner, mounted the way the main
command mounts them, on the configured database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re

import typer
from typer.testing import CliRunner

from meldpunt import checks
from meldpunt.cli.checks import keys_app, orgs_app, subscriptions_app
from meldpunt.cli.registry import sets_app
from meldpunt.store import make_engine, session_scope

runner = CliRunner()
app = typer.Typer()
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(sets_app, name="sets")

KEY = re.compile(r"mp_[A-Za-z0-9_-]{40}")


def meldpunt(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def test_orgs_create_and_list(cli_db):
    out = meldpunt("orgs", "create", "example-platform", "--kind", "platform",
                   "--email", "abuse@example.org").output  # fmt: skip
    assert "created platform organisation 'example-platform' (id 1)" in out
    meldpunt("orgs", "create", "hotline-nl", "--kind", "hotline")
    assert "exists already" in meldpunt("orgs", "create", "hotline-nl", "--kind", "partner",
                                        code=1).output  # fmt: skip
    meldpunt("orgs", "create", "x", "--kind", "bank", code=2)  # refused by the option itself
    assert "not an e-mail address" in meldpunt("orgs", "create", "y", "--kind", "partner",
                                               "--email", "nope", code=1).output  # fmt: skip

    listed = json.loads(meldpunt("orgs", "list", "--format", "json").stdout)
    assert [(o["name"], o["kind"], o["contact_email"]) for o in listed] == [
        ("example-platform", "platform", "abuse@example.org"),
        ("hotline-nl", "hotline", None),
    ]
    table = meldpunt("orgs", "list").stdout
    assert "example-platform" in table and "abuse@example.org" in table


def test_keys_create_prints_the_key_once_and_list_shows_only_the_prefix(cli_db):
    meldpunt("orgs", "create", "example-platform", "--kind", "platform")
    result = meldpunt("keys", "create", "example-platform", "--role", "platform",
                      "--label", "uploads", "--expires-days", "30")  # fmt: skip
    keys = KEY.findall(result.output)
    assert len(keys) == 1  # printed once, in all the output together
    key = keys[0]
    assert result.stdout.strip() == key  # alone on standard output, for scripts
    assert "cannot be shown again" in result.stderr
    assert key[:12] in result.stderr

    with session_scope(make_engine(cli_db)) as session:
        principal = checks.authenticate(session, key)
        assert principal is not None and principal.role == "platform"

    listed = meldpunt("keys", "list").output
    assert key not in listed and key[:12] in listed and KEY.search(listed) is None
    records = json.loads(meldpunt("keys", "list", "example-platform", "-f", "json").stdout)
    assert [(r["prefix"], r["role"], r["label"], r["state"]) for r in records] == [
        (key[:12], "platform", "uploads", "active")
    ]
    assert records[0]["expires_at"] is not None
    assert key not in json.dumps(records)

    meldpunt("keys", "create", "nobody", "--role", "admin", code=1)
    meldpunt("keys", "create", "example-platform", "--role", "root", code=2)
    meldpunt("keys", "list", "nobody", code=1)


def test_keys_revoke_by_prefix_or_id(cli_db):
    meldpunt("orgs", "create", "p", "--kind", "platform")
    first = meldpunt("keys", "create", "p", "--role", "platform").stdout.strip()
    second = meldpunt("keys", "create", "p", "--role", "admin").stdout.strip()

    assert "revoked key 1" in meldpunt("keys", "revoke", first[:12]).output
    assert "revoked key 2" in meldpunt("keys", "revoke", "2").output
    states = [r["state"] for r in json.loads(meldpunt("keys", "list", "-f", "json").stdout)]
    assert states == ["revoked", "revoked"]
    with session_scope(make_engine(cli_db)) as session:
        assert checks.authenticate(session, first) is None
        assert checks.authenticate(session, second) is None
    assert "no key with prefix" in meldpunt("keys", "revoke", "mp_unknown00", code=1).output


def test_subscriptions_set_and_show(cli_db):
    meldpunt("orgs", "create", "p", "--kind", "platform")
    meldpunt("sets", "create", "police-nl", "--category", "baseline")
    meldpunt("sets", "create", "ncii-list", "--category", "ncii")
    meldpunt("sets", "create", "stock", "--kind", "allowlist")

    shown = meldpunt("subscriptions", "show", "p").output
    assert "every active blocklist" in shown and "csam_baseline" in shown and "ncii" in shown
    assert "non_pertinent" not in shown and "uncategorised" not in shown  # illegal only

    out = meldpunt("subscriptions", "set", "p", "--sets", "police-nl,ncii-list",
                   "--categories", "baseline").output  # fmt: skip
    assert "ncii-list, police-nl" in out and "csam_baseline" in out
    record = json.loads(meldpunt("subscriptions", "show", "p", "-f", "json").stdout)
    assert record == {
        "org": "p",
        "org_id": 1,
        "sets": ["ncii-list", "police-nl"],
        "categories": ["csam_baseline"],
    }

    assert "no hash set 'nope'" in meldpunt("subscriptions", "set", "p", "--sets", "nope",
                                            code=1).output  # fmt: skip
    assert "allow-list" in meldpunt("subscriptions", "set", "p", "--sets", "stock",
                                    code=1).output  # fmt: skip
    assert "unknown category filter" in meldpunt("subscriptions", "set", "p", "--categories",
                                                 "bogus", code=1).output  # fmt: skip
    meldpunt("subscriptions", "set", "p", "--sets", ",", code=1)
    assert "no organisation" in meldpunt("subscriptions", "show", "nobody", code=1).output
    # the refused changes left the subscription as it was
    again = json.loads(meldpunt("subscriptions", "show", "p", "-f", "json").stdout)
    assert again == record

    meldpunt("subscriptions", "set", "p")  # no options: back to everything
    assert "every active blocklist" in meldpunt("subscriptions", "show", "p").output
