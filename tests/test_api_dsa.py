"""The DSA routes (``api/routes_dsa.py``) through the service: a platform pages through its own
statements of reasons (never another's), the pages equal what ``meldpunt dsa statements``
writes, the trusted flagger's report for analysts and admins, hostile requests answered with
clear errors (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import typer
from sqlalchemy import select
from typer.testing import CliRunner

from meldpunt import checks
from meldpunt.cli.dsa import dsa_app
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.monitor import dsa
from meldpunt.store.db import begin_write
from meldpunt.store.models import HashSet, Item
from service import running

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
RANGE = {"since": "2026-05-01", "until": "2026-06-01"}

runner = CliRunner()
cli = typer.Typer()
cli.add_typer(dsa_app, name="dsa")


def seed_hits(world, org_name: str, count: int, *, outcome: str = "removed") -> list[int]:
    with world.session() as session, use_clock(FrozenClock(T0)) as clock:
        begin_write(session)  # the service's worker writes too (SQLite: read, then write fails)
        org = checks.get_org(session, org_name)
        block = session.scalar(select(HashSet).where(HashSet.name == "police"))
        item = session.scalar(select(Item.id).where(Item.set_id == block.id).limit(1))
        given = [
            checks.NewHit(
                "md5",
                os.urandom(16).hex(),
                0,
                block.id,
                item,
                "csam_baseline",
                platform_ref=f"{org_name}-{n}",
            )  # fmt: skip
            for n in range(count)
        ]
        ids = checks.record_hits(session, org.id, given)
        for public_id in ids:
            clock.advance(timedelta(seconds=30))
            checks.record_outcome(session, org.id, public_id, outcome, actor="test")
        session.commit()
    return ids


def all_pages(client, **params) -> list[dict]:
    pages = []
    page = 1
    while page is not None:
        response = client.get("/v1/dsa/statements", params={**RANGE, **params, "page": page})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["page"] == page
        assert len(body["statements"]) <= dsa.BATCH_LIMIT
        pages.append(body)
        page = body["next"]
    return pages


def test_a_platform_pages_through_its_own_statements_and_the_command_agrees(
    db_url, cli_db, tmp_path
):
    with running(db_url) as world:
        seed_hits(world, "platform-a", 130)
        theirs = seed_hits(world, "platform-b", 7, outcome="blocked")
        with world.client("platform") as client:
            pages = all_pages(client)
            assert [len(p["statements"]) for p in pages] == [100, 30]
            assert [p["next"] for p in pages] == [2, None]
            assert pages[0]["counts"] == {"statements": 130, "batches": 2, "skipped": {}}
            mine = [s for p in pages for s in p["statements"]]
            assert [s["puid"] for s in mine] == [f"platform-a-{n}" for n in range(130)]
            for statement in mine:
                dsa.validate_statement(statement)
            # past the end: an empty page
            late = client.get("/v1/dsa/statements", params={**RANGE, "page": 3}).json()
            assert late["statements"] == [] and late["next"] is None
            fully = all_pages(client, automated_decision="AUTOMATED_DECISION_FULLY")
            assert {s["automated_decision"] for p in fully for s in p["statements"]} == {
                "AUTOMATED_DECISION_FULLY"
            }
        with world.client("platform_b") as client:
            other = [s for p in all_pages(client) for s in p["statements"]]
            assert [s["puid"] for s in other] == [f"platform-b-{n}" for n in range(7)]
            assert {s["decision_visibility"][0] for s in other} == {
                "DECISION_VISIBILITY_CONTENT_DISABLED"
            }
            assert not {s["puid"] for s in other} & {s["puid"] for s in mine}
            assert len(theirs) == 7

        # the command line writes the same statements, batch for batch
        out = tmp_path / "sor"
        result = runner.invoke(cli, ["dsa", "statements", "platform-a", "--since", RANGE["since"],
                                     "--until", RANGE["until"], "--out", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == [
            "batch-0001.json",
            "batch-0002.json",
            "summary.json",
        ]
        for number, page in enumerate(pages, start=1):
            written = json.loads((out / f"batch-{number:04d}.json").read_text())
            assert written == {"statements": page["statements"]}
        summary = json.loads((out / "summary.json").read_text())
        assert summary["statements"] == 130 and summary["files"] == [
            "batch-0001.json",
            "batch-0002.json",
        ]
        lines = runner.invoke(cli, ["dsa", "statements", "platform-a", "--since", RANGE["since"],
                                    "--until", RANGE["until"], "--format", "jsonl"])  # fmt: skip
        assert [json.loads(line) for line in lines.stdout.splitlines()] == mine
        again = runner.invoke(cli, ["dsa", "statements", "platform-a", "--since", RANGE["since"],
                                    "--until", RANGE["until"], "--out", str(out)])  # fmt: skip
        assert again.exit_code == 1 and "batch files already" in again.output
        bad = runner.invoke(cli, ["dsa", "statements", "platform-a", "--since", "2020-01-01",
                                  "--until", "2026-01-01", "--format", "jsonl"])  # fmt: skip
        assert bad.exit_code == 1 and "at most 366 days" in bad.output
        nobody = runner.invoke(cli, ["dsa", "statements", "nobody", "--since", RANGE["since"],
                                     "--until", RANGE["until"], "--format", "jsonl"])  # fmt: skip
        assert nobody.exit_code == 1 and "no organisation" in nobody.output
        missing = runner.invoke(cli, ["dsa", "statements", "platform-a", "--since",
                                      RANGE["since"], "--until", RANGE["until"]])  # fmt: skip
        assert missing.exit_code == 1 and "--out" in missing.output


def test_hostile_requests_get_clear_errors(db_url):
    with running(db_url) as world, world.client("platform") as client:
        cases = [
            ({"since": "yesterday", "until": "2026-06-01"}, 400, "not a date"),
            ({"since": "2026-06-01", "until": "2026-05-01"}, 400, "must lie after"),
            ({"since": "2010-01-01", "until": "2026-06-01"}, 400, "at most 366 days"),
            ({"since": "2026-05-01", "until": "9999-01-01"}, 400, "outside"),
            ({"since": "2026-05-01"}, 422, "until"),
            ({**RANGE, "page": 0}, 422, "page"),
            ({**RANGE, "page": "x" * 100}, 422, "page"),
            ({**RANGE, "automated_decision": "Yes"}, 422, "automated_decision"),
            ({"since": "2026-05-01" + "0" * 100, "until": "2026-06-01"}, 422, "since"),
        ]
        for params, status, words in cases:
            response = client.get("/v1/dsa/statements", params=params)
            assert response.status_code == status, (params, response.text)
            body = response.json()
            assert set(body) == {"error"} and words in body["error"]["message"], (params, body)


def test_the_flagger_report_for_analysts_and_admins(db_url):
    with running(db_url) as world:
        for role in ("analyst", "admin"):
            with world.client(role) as client:
                body = client.get("/v1/dsa/flagger-report", params={"year": 2026}).json()
                assert (
                    body["year"] == 2026 and body["rows"] == [] and "first notice" in body["method"]
                )
                csv_text = client.get(
                    "/v1/dsa/flagger-report", params={"year": 2026, "format": "csv"}
                )
                assert csv_text.headers["content-type"].startswith("text/csv")
                assert csv_text.text.startswith("hoster,asn,kind,media")
                page = client.get("/v1/dsa/flagger-report", params={"year": 2026, "format": "html"})
                assert page.headers["content-type"].startswith("text/html")
                assert "Method" in page.text
                bad = client.get("/v1/dsa/flagger-report", params={"year": 1999})
                assert bad.status_code == 422 and set(bad.json()) == {"error"}
                future = client.get("/v1/dsa/flagger-report", params={"year": 2099})
                assert (
                    future.status_code == 400 and "year 2099" in future.json()["error"]["message"]
                )
        with world.client("platform") as client:
            assert client.get("/v1/dsa/flagger-report", params={"year": 2026}).status_code == 403
        with world.client("analyst") as client:
            assert client.get("/v1/dsa/statements", params=RANGE).status_code == 403
