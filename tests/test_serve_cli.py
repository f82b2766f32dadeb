"""End to end as an operator works: the command line sets things up, `meldpunt serve` answers;
`meldpunt demo` (what `make run` runs) a second time, and on a port that is taken."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from imaging import jpeg, photo
from meldpunt import checks, registry
from meldpunt.cli import app
from meldpunt.signals import pdq_signal
from meldpunt.store import make_engine, session_scope

MELDPUNT = [sys.executable, "-m", "meldpunt.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_operator_sets_up_and_a_platform_checks(tmp_path: Path):
    env = {**os.environ, "MELDPUNT_DATA_DIR": str(tmp_path), "MELDPUNT_LOG_LEVEL": "WARNING"}

    def run(*args: str) -> str:
        done = subprocess.run(
            [*MELDPUNT, *args], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        return done.stdout.strip()

    picture = tmp_path / "known.jpg"
    picture.write_bytes(jpeg(photo("chelsea")))
    listing = tmp_path / "list.txt"
    listing.write_text(f"pdq {pdq_signal(picture).hash}\n")
    run("sets", "create", "police", "--category", "baseline")
    run("sets", "import", "police", str(listing))
    run("orgs", "create", "shop", "--kind", "platform")
    key = run("keys", "create", "shop", "--role", "platform")
    assert key.startswith("mp_")
    port = free_port()
    server = subprocess.Popen([*MELDPUNT, "serve", "--port", str(port)], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key}"}
        with open(picture, "rb") as handle:
            answer = httpx.post(
                f"{base}/v1/check",
                headers=headers,
                files={"file": ("upload.jpg", handle, "image/jpeg")},
            )
        assert answer.status_code == 200, answer.text
        (result,) = answer.json()["results"]
        assert result["match"] and result["matches"][0]["category"] == "csam_baseline"
    finally:
        server.terminate()
        server.wait(timeout=30)


KEY = re.compile(r"mp_[A-Za-z0-9_-]{40}")
runner = CliRunner()


def demo(*args: str) -> Result:
    return runner.invoke(app, ["demo", "--no-serve", *args], env={"COLUMNS": "80"})


def keys_shown(output: str) -> list[str]:
    """The keys in the demo's text: the platform's (shown, then in the examples) and the admin's."""
    return list(dict.fromkeys(KEY.findall(output)))


def test_demo_run_twice_shows_the_same_keys_and_adds_nothing(cli_db, settings):
    first = demo()
    assert first.exit_code == 0, first.output
    platform_key, admin_key = keys_shown(first.stdout)
    assert "were made now" in first.stdout
    kept = Path(settings.data_dir) / "demo-keys.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    with session_scope(make_engine(cli_db)) as session:
        changes = registry.current_seq(session)
        assert registry.set_summary(session, "demo-benign-samples").items == 6

    second = demo()
    assert second.exit_code == 0, second.output
    assert keys_shown(second.stdout) == [platform_key, admin_key]
    assert "made by an earlier run" in second.stdout
    with session_scope(make_engine(cli_db)) as session:
        assert registry.current_seq(session) == changes  # the set was not imported again
        assert registry.set_summary(session, "demo-benign-samples").items == 6
        assert len(checks.list_keys(session)) == 2
        assert checks.authenticate(session, platform_key) is not None

    # A demo key that no longer works is replaced; the other one is kept.
    with session_scope(make_engine(cli_db)) as session:
        checks.revoke_key(session, platform_key[:12], actor="test")
    third = demo()
    new_key, same_admin_key = keys_shown(third.stdout)
    assert new_key != platform_key and same_admin_key == admin_key
    assert json.loads(kept.read_text()) == {"platform": new_key, "admin": admin_key}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_a_busy_port_is_said_before_anything_is_loaded(settings, busy_port: int):
    result = runner.invoke(app, ["demo", "--port", str(busy_port)])
    assert result.exit_code == 1
    assert f"port {busy_port} on 127.0.0.1 is in use" in result.output
    assert f"make run PORT={busy_port + 1}" in result.output
    assert KEY.search(result.output) is None  # nothing hashed, stored or minted
    assert not Path(settings.data_dir).exists()

    served = runner.invoke(app, ["serve", "--port", str(busy_port)])
    assert served.exit_code == 1 and f"meldpunt serve --port {busy_port + 1}" in served.output


def test_make_run_says_a_busy_port_before_installing(busy_port: int):
    root = Path(__file__).parents[1]
    make = ["make", "--no-print-directory"]
    # `make run` checks the port first (`port-free`), with the system's python3, before it
    # installs into .venv.
    done = subprocess.run([*make, "port-free", f"PORT={busy_port}"], cwd=root,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert f"port {busy_port} on 127.0.0.1 is in use" in done.stderr
    assert f"Choose another: make run PORT={busy_port + 1}" in done.stderr
    planned = subprocess.run([*make, "-n", "run", f"PORT={busy_port + 2}"], cwd=root,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    steps = planned.stdout.splitlines()
    assert "ports.py" in steps[0]
    assert steps[-1].endswith(f"meldpunt demo --host 127.0.0.1 --port {busy_port + 2}")
