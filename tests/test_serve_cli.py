"""End to end as an operator works: the command line sets things up, `meldpunt serve` answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from imaging import jpeg, photo
from meldpunt.signals import pdq_signal

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
