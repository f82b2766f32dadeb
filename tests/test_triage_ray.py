"""Hashing on a Ray cluster: a local cluster on loopback with two worker processes, and one
started with ``ray start --head`` and reached by ``meldpunt triage --ray ADDRESS``, give the
same classes as one process; the clusters are torn down afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from meldpunt.triage import RayHasher, plan_from, rule_from, run_case
from meldpunt.triage.cases import get_case, iter_files
from triage_support import EXPECTED, build, seed_registry

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_a_local_ray_cluster_of_two_workers_gives_the_same_result(settings, engine, session,
                                                                   tmp_path):  # fmt: skip
    collection = build(tmp_path)
    seed_registry(session, collection)
    hasher = RayHasher("local", workers=2)
    try:
        assert hasher.workers == 2
        report = run_case("on-ray", [collection.root], plan=plan_from(settings),
                          rule=rule_from(settings), hasher=hasher, bind=sessionmaker(engine),
                          batch_files=3)  # fmt: skip
    finally:
        hasher.close()
    assert not ray.is_initialized()
    assert report.hashed == 20
    rows = iter_files(session, get_case(session, "on-ray").id)
    assert {row.path: row.file_class for row in rows} == EXPECTED


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def ray_head():
    """A cluster as operators start one: ``ray start --head --block`` on this machine with two
    worker CPUs, in its own process group and (short: Ray's sockets live there) temporary
    folder; yields its address, and stops it. Ray reads its authentication mode when it is
    imported, so this loopback cluster and its drivers run with ``RAY_AUTH_MODE=disabled``
    (a cluster with Ray's token is reached with ``RAY_AUTH_MODE=token``, docs/triage.md)."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
               f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
               "--disable-usage-stats", f"--temp-dir={temp}"]  # fmt: skip
    head = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"},
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, "ray start --head stopped"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not listen within 120 s"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_meldpunt_triage_on_a_cluster_started_with_ray_start(cli_db, session, tmp_path,
                                                             ray_head):  # fmt: skip
    collection = build(tmp_path)
    seed_registry(session, collection)
    session.commit()
    meldpunt = str(Path(sys.executable).with_name("meldpunt"))
    run = subprocess.run(
        [meldpunt, "triage", str(collection.root), "--case", "on-a-cluster", "--ray", ray_head],
        env={**os.environ, "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    session.expire_all()
    rows = iter_files(session, get_case(session, "on-a-cluster").id)
    assert {row.path: row.file_class for row in rows} == EXPECTED
