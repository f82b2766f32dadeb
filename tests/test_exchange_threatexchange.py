"""Meta's ``threatexchange`` command line reads a meldpunt set through the plugin the project
ships (``meldpunt.exchange.txplugin``), against a real instance on loopback: the PDQ hashes
arrive, removals arrive as deletions, and a page signed with another key stops the fetch."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from meldpunt import exchange, registry
from meldpunt.config import load_settings
from meldpunt.exchange.keys import instance_key
from meldpunt.store import init_db, make_engine, make_sessionmaker
from service import service_settings, serving

pytest.importorskip("threatexchange")


def _tx(
    state: Path, *args: str, token: str, verbose: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TX_STATEDIR": str(state),
        "HOME": str(state),
        "TX_MELDPUNT_TOKEN": token,
        "TX_VERBOSE": "1" if verbose else "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "threatexchange", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _signals(state: Path, token: str) -> set[str]:
    shown = _tx(state, "dataset", "-P", "-S", token=token)
    assert shown.returncode == 0, shown.stderr
    return {line.split()[-1] for line in shown.stdout.splitlines() if line.startswith("pdq ")}


def test_the_threatexchange_cli_fetches_a_shared_set(db_url: str, tmp_path: Path) -> None:
    init_db(db_url)
    sessions = make_sessionmaker(make_engine(db_url))
    hashes = [secrets.token_hex(32) for _ in range(12)]
    with sessions() as session:
        registry.create_set(session, "police", default_category="csam_baseline")
        for value in hashes:
            registry.add_item(session, "police", [("pdq", value), ("md5", secrets.token_hex(16))])
        _, token = exchange.add_partner(
            session,
            "tx-user",
            url="http://127.0.0.1:1",
            public_key=instance_key(tmp_path / "other").public,
            send_sets=["police"],
        )
        session.commit()
    assert token
    data_dir = tmp_path / "var"
    key = instance_key(data_dir).public
    project = load_settings(data_dir=data_dir, database_url=db_url)
    state = tmp_path / "tx"
    state.mkdir()
    with serving(service_settings(db_url, project=project, run_worker=False)) as url:
        added = _tx(state, "config", "extensions", "add", "meldpunt.exchange.txplugin", token=token)
        assert added.returncode == 0, added.stderr
        made = _tx(
            state,
            "config",
            "collab",
            "edit",
            "meldpunt",
            "police-nl",
            "--create",
            "--url",
            url,
            "--set-name",
            "police",
            "--public-key",
            key,
            "--page-size",
            "5",
            token=token,
        )
        assert made.returncode == 0, made.stderr
        fetched = _tx(state, "fetch", token=token)
        assert fetched.returncode == 0, fetched.stderr + fetched.stdout
        assert _signals(state, token) == set(hashes)

        with sessions() as session:
            (item,) = registry.find_items(session, "pdq", hashes[0])
            registry.withdraw_item(session, item.id, reason="a known false positive")
            registry.add_item(session, "police", [("pdq", extra := secrets.token_hex(32))])
            session.commit()
        again = _tx(state, "fetch", token=token)
        assert again.returncode == 0, again.stderr
        assert _signals(state, token) == (set(hashes) - {hashes[0]}) | {extra}

        # the instance's key changes: the tools refuse its pages until told the new key
        (data_dir / "exchange-ed25519.pem").unlink()
        instance_key(data_dir)
        with sessions() as session:
            registry.add_item(session, "police", [("pdq", secrets.token_hex(32))])
            session.commit()
        refused = _tx(state, "fetch", token=token, verbose=True)
        assert refused.returncode != 0 and "failed to fetch" in refused.stderr
        assert "does not verify" in refused.stderr + refused.stdout
        assert _signals(state, token) == (set(hashes) - {hashes[0]}) | {extra}
