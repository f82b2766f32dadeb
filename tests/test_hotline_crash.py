"""Workers that die and workers that race: real `meldpunt worker` processes over real HTTP and
SMTP on loopback, on SQLite and PostgreSQL.

- A worker killed with SIGKILL at random moments and started again: no reported URL is lost,
  every item is fetched, graded and noticed exactly once, and no item is in two notices. (A
  worker killed after the relay took a notice and before it recorded so sends the *same*
  message again, with the same Message-ID: receivers drop it; that is counted, never a second
  notice.)
- Two workers at once on PostgreSQL: no item is processed twice.

The workers run on a fast clock (`--clock-speed`), so that the leases of work a killed worker
held (minutes) end within seconds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from imaging import encode
from mail_sink import MailSink
from meldpunt import audit, registry
from meldpunt.reports import intake
from meldpunt.signals import digest_bytes, pdq_signal
from meldpunt.store import init_db, make_engine, make_sessionmaker
from meldpunt.store.models import ItemEvent, Notice, NoticeItem, ReportUrl, UrlItem
from meldpunt.takedown import asn, directory
from takedown_support import TABLE, Names, hosting

pytestmark = pytest.mark.slow

SPEED = 60.0  # simulated seconds a real second: a 5-minute lease ends in 5 s
PICTURES = 48


def picture(seed: int) -> bytes:
    """A benign generated picture with enough structure for a good PDQ hash."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC)
    return encode(big, "JPEG", quality=90)


class Setup:
    def __init__(self, db_url: str, tmp_path: Path, sink: MailSink, port: int, names: Names):
        self.db_url, self.tmp_path, self.sink, self.port = db_url, tmp_path, sink, port
        self.names = names
        self.engine = make_engine(db_url)
        self.sessions = make_sessionmaker(self.engine)
        self.origin = datetime.now(UTC)

    def env(self) -> dict[str, str]:
        config = self.tmp_path / "meldpunt.toml"
        config.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MELDPUNT_")}
        env.update(
            MELDPUNT_CONFIG=str(config),
            MELDPUNT_DATA_DIR=str(self.tmp_path / "var"),
            MELDPUNT_DATABASE_URL=self.db_url,
            MELDPUNT_FETCH_ALLOW_NETWORKS='["127.0.0.0/8"]',
            MELDPUNT_FETCH_TOTAL_SECONDS="60",
            MELDPUNT_FETCH_TIMEOUT_SECONDS="30",
            MELDPUNT_RESOLVER_HOSTS_FILE=str(self.names.path),
            MELDPUNT_SMTP_HOST="127.0.0.1",
            MELDPUNT_SMTP_PORT=str(self.sink.port),
            MELDPUNT_SMTP_RETRY_MINUTES="1",
        )
        return env

    def worker(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "meldpunt.cli", "worker", "--poll-seconds", "0.2",
             "--batch", "4", "--clock-speed", str(SPEED),
             "--clock-origin", self.origin.isoformat()],
            env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def all_noticed(self) -> bool:
        with self.sessions() as s:
            waiting = s.scalar(
                select(func.count()).select_from(UrlItem).where(UrlItem.state != "noticed")
            )
            return waiting == 0

    def wait_until_noticed(self, workers: list[subprocess.Popen[bytes]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.all_noticed():
                return
            for w in workers:
                if w.poll() is not None:
                    err = w.stderr.read().decode() if w.stderr else ""
                    pytest.fail(f"a worker stopped by itself:\n{err[-3000:]}")
            time.sleep(0.25)
        with self.sessions() as s:
            states = Counter(s.scalars(select(UrlItem.state)).all())
        pytest.fail(f"not every item was noticed in {timeout} s: {dict(states)}")


@pytest.fixture
def setup(db_url, tmp_path):
    init_db(db_url)
    names = Names(tmp_path / "names")
    names.point("crash.test", "127.0.0.5")
    with hosting("127.0.0.5") as hoster, MailSink() as sink:
        hoster.delay = 0.05  # a slow hoster: kills land in the middle of fetching
        world = Setup(db_url, tmp_path, sink, hoster.port, names)
        with world.sessions() as s, s.begin():
            police = registry.create_set(s, "police", default_category="csam_baseline")
            for n in range(PICTURES):
                body = picture(n)
                hoster.pages[f"/p{n}.jpg"] = (200, body)
                registry.add_item(s, police, [("pdq", pdq_signal(body).hash),
                                              ("md5", digest_bytes(body).md5)])  # fmt: skip
            asn.load_table(s, TABLE.splitlines(), "csv")
            directory.add_contact(s, "Polder", actor="t", asn=64500, email="abuse@polder.test",
                                  approved=True, group_seconds=30)  # fmt: skip
            for start in range(0, PICTURES, 6):  # reports of six URLs each
                urls = [(f"http://crash.test:{hoster.port}/p{n}.jpg", None)
                        for n in range(start, start + 6)]  # fmt: skip
                intake.submit_report(s, source="import", kind="csam", urls=urls, actor="t")
        yield world
        world.engine.dispose()


def check_exactly_once(world: Setup) -> None:
    with world.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ReportUrl)) == PICTURES  # none lost
        item_ids = s.scalars(select(UrlItem.id)).all()
        assert len(item_ids) == PICTURES
        events = Counter(
            (item_id, event) for item_id, event in s.execute(select(ItemEvent.item_id,
                                                                    ItemEvent.event))
        )  # fmt: skip
        for item_id in item_ids:
            for event in ("received", "fetched", "graded", "attributed", "notice"):
                assert events[(item_id, event)] == 1, (item_id, event, events)
        in_notices = Counter(s.scalars(select(NoticeItem.item_id)).all())
        assert set(in_notices) == set(item_ids) and set(in_notices.values()) == {1}
        sent = {n.message_id: n for n in s.scalars(select(Notice))}
        assert all(n.status == "sent" for n in sent.values())
        assert audit.verify(s).ok
    received = Counter(m["Message-ID"] for m in world.sink.received())
    # every notice reached the sink, and nothing reached it that is not a recorded notice
    assert set(received) == set(sent), (received, list(sent))
    return None


def test_a_worker_killed_at_random_loses_nothing_and_sends_nothing_twice(setup):
    rng = random.Random(int(os.environ.get("MELDPUNT_CRASH_SEED", "11")))
    kills = 0
    progress: list[dict[str, int]] = []  # the states each kill left, for the failure message
    for _ in range(10):
        worker = setup.worker()
        time.sleep(rng.uniform(0.8, 2.5))  # a worker takes about 0.7 s to start
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait()
        with setup.sessions() as s:
            progress.append(dict(Counter(s.scalars(select(UrlItem.state)).all())))
        if setup.all_noticed():
            break
    final = setup.worker()
    try:
        setup.wait_until_noticed([final], timeout=90)
    finally:
        final.kill()
        final.wait()
    assert kills >= 1, progress
    check_exactly_once(setup)


@pytest.mark.postgres
def test_two_workers_at_once_never_process_one_item_twice(setup):
    if not setup.db_url.startswith("postgresql"):
        pytest.skip("several worker processes share a database on PostgreSQL")
    workers = [setup.worker(), setup.worker()]
    try:
        setup.wait_until_noticed(workers, timeout=90)
    finally:
        for w in workers:
            w.kill()
            w.wait()
    check_exactly_once(setup)
    with setup.sessions() as s:
        # each duplicated Message-ID at the sink would have been a second send of one notice
        duplicates = [k for k, v in Counter(m["Message-ID"] for m in setup.sink.received()).items()
                      if v > 1]  # fmt: skip
        assert duplicates == [], json.dumps(duplicates)
        assert s.scalar(select(func.count()).select_from(Notice)) >= 1
