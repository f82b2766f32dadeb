"""A triage run killed part-way (SIGKILL, no chance to clean up) and run again continues where
it stopped: nothing recorded is hashed again, and the result is the uninterrupted run's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from meldpunt.store import init_db, make_engine
from meldpunt.store.models import TriageCase, TriageFile
from triage_support import jpeg, pattern, png, tarred, zipped

FILES = 90


def _collection(root):
    root.mkdir()
    for i in range(FILES):
        picture = pattern(1000 + i % 60, (384, 384))  # 30 near-copy pairs among them
        (root / f"{i:03d}.{'png' if i % 2 else 'jpg'}").write_bytes(
            png(picture) if i % 2 else jpeg(picture))  # fmt: skip
    inner = zipped({"a.png": png(pattern(5000)), "b.jpg": jpeg(pattern(5001))})
    (root / "zz.tar.gz").write_bytes(tarred({"inner.zip": inner, "c.png": png(pattern(5002))}))


def _env(tmp_path, db_url):
    config = tmp_path / "meldpunt.toml"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELDPUNT_")}
    env.update(MELDPUNT_CONFIG=str(config), MELDPUNT_DATA_DIR=str(tmp_path / "var"),
               MELDPUNT_DATABASE_URL=db_url, MELDPUNT_TRIAGE_BATCH_FILES="3")  # fmt: skip
    return env


def _triage(env, source, case, out):
    command = [sys.executable, "-m", "meldpunt.cli", "triage", str(source), "--case", case,
               "--jobs", "1", "--format", "jsonl", "--out", str(out)]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_killed_run_resumes_to_the_uninterrupted_result(db_url, tmp_path):
    source = tmp_path / "seized"
    _collection(source)
    init_db(db_url)
    engine = make_engine(db_url)
    env = _env(tmp_path, db_url)
    whole = _triage(env, source, "whole", tmp_path / "whole")
    expected, errors = whole.communicate(timeout=300)
    assert whole.returncode == 0, errors.decode()

    def recorded() -> int:
        with engine.connect() as connection:
            return connection.scalar(
                select(func.count()).select_from(TriageFile).join(TriageCase)
                .where(TriageCase.name == "killed")
            ) or 0  # fmt: skip

    killed = _triage(env, source, "killed", tmp_path / "killed")
    deadline = time.monotonic() + 120
    while recorded() < 20 and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    before = recorded()
    assert 20 <= before < FILES, "the run was not stopped part-way"
    with engine.connect() as connection:
        state = connection.scalar(select(TriageCase.state).where(TriageCase.name == "killed"))
    assert state == "running"

    again = _triage(env, source, "killed", tmp_path / "killed")
    output, errors = again.communicate(timeout=300)
    assert again.returncode == 0, errors.decode()
    said = re.search(r"(\d+) files hashed, (\d+) recorded before", errors.decode())
    assert said is not None, errors.decode()
    hashed, skipped = int(said[1]), int(said[2])
    total = FILES + 1  # the archive is one file of the source
    assert skipped == before and hashed == total - before  # nothing recorded was hashed again
    assert [json.loads(line) for line in output.splitlines()] == [
        json.loads(line) for line in expected.splitlines()
    ]
    assert len(output.splitlines()) == FILES + 5  # the archives' members too
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["runs"] == 2 and summary["state"] == "done"
    assert summary["classes"] == json.loads((tmp_path / "whole" / "summary.json").read_text())[
        "classes"]  # fmt: skip
    engine.dispose()
