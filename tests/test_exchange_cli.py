"""``meldpunt partners`` and ``meldpunt exchange`` against a real instance on loopback: the three
commands of docs/exchange.md, and a partner that may see some categories only."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from typer.testing import CliRunner

from meldpunt import exchange, registry
from meldpunt.cli import app
from meldpunt.config import get_settings, load_settings
from meldpunt.exchange.keys import instance_key
from meldpunt.store import init_db, make_engine, make_sessionmaker
from service import service_settings, serving

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_two_instances_exchange_a_set_in_three_commands(cli_db: str, tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    init_db(source_url)
    sessions = make_sessionmaker(make_engine(source_url))
    national = [secrets.token_hex(32) for _ in range(4)]
    with sessions() as session:
        registry.create_set(session, "police", default_category="csam_baseline")
        for _ in range(6):
            registry.add_item(session, "police", [("pdq", secrets.token_hex(32))])
        for value in national:
            registry.add_item(
                session, "police", [("pdq", value)], category="national", category_scheme="interpol"
            )
        session.commit()
    source_dir = tmp_path / "source"
    shown = runner.invoke(app, ["exchange", "key"])
    ours = shown.stdout.strip()
    assert "fingerprint" in shown.stderr
    assert ours == instance_key(get_settings().data_dir).public
    with sessions() as session:  # on the source: `meldpunt partners add` there
        _, token = exchange.add_partner(
            session,
            "here",
            url="http://127.0.0.1:9",
            public_key=ours,
            send_sets=["police"],
            send_categories=["csam_baseline"],
        )
        session.commit()
    assert token
    project = load_settings(data_dir=source_dir, database_url=source_url)
    with serving(service_settings(source_url, project=project, run_worker=False)) as url:
        added = invoke(
            "partners",
            "add",
            "source",
            "--url",
            url,
            "--public-key",
            instance_key(source_dir).public,
            "--receive",
            "police:from-source",
            "--token",
            token,
        )
        assert "added partner 'source'" in added
        pulled = invoke("exchange", "pull")
        assert "source/police: 10 changes" in pulled
        status = json.loads(invoke("exchange", "status", "--json"))
        (follow,) = status[0]["follows"]
        assert follow["behind_changes"] == 0 and follow["local_set"] == "from-source"
        assert "source" in invoke("partners", "list")
        # only the categories the source shares: national entries came as removals
        init_db()
        with make_sessionmaker(make_engine(cli_db))() as session:
            got = {
                i.signals[0][1]
                for i in registry.iter_items(session, registry.get_set(session, "from-source"))
            }
        assert len(got) == 6 and not got & set(national)
        wrong = runner.invoke(
            app, ["partners", "add", "bad", "--url", "ftp://x", "--public-key", ours]
        )
        assert wrong.exit_code == 1 and "http(s)" in wrong.output
        nobody = runner.invoke(app, ["exchange", "pull", "nobody"])
        assert nobody.exit_code == 1 and "no partner" in nobody.output
