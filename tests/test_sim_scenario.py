"""Whole scenarios over the simulated internet: meldpunt's intake, worker, mail and re-checks
against hosters that remove, ignore, move, go down and put content back, on a controlled clock,
on SQLite and PostgreSQL. What is checked comes from meldpunt's own records (the timelines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from meldpunt.cli.app import app
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.config import get_settings
from meldpunt.reports.items import normalise_url, url_key
from meldpunt.sim.behaviour import Behaviour, BehaviourKind
from meldpunt.sim.live import LiveSimulation
from meldpunt.sim.scenario import ScenarioConfig, run_scenario
from meldpunt.store import make_sessionmaker
from meldpunt.store.models import Report, UrlItem

B = BehaviourKind
START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
HOSTERS = (
    Behaviour(B.removes, delay_minutes=30),  # h1
    Behaviour(B.ignores),  # h2
    Behaviour(B.moves, delay_minutes=60, to=4),  # h3 -> h4
    Behaviour(B.removes, delay_minutes=20),  # h4
    Behaviour(B.returns, delay_minutes=20, duration_minutes=600),  # h5
    Behaviour(B.down, delay_minutes=30, duration_minutes=240),  # h6
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def moments(url: dict, event: str) -> list[datetime]:
    return [at(e["at"]) for e in url["events"] if e["event"] == event]


def test_a_scenario_over_two_days(db_url, settings, engine, tmp_path):
    """One scenario (about ten seconds), checked for each rule in turn."""
    config = ScenarioConfig(
        seed=3, urls=18, days=2, start=START, behaviours=HOSTERS, abroad=0.0, page_share=0.0,
        police_share=0.0, not_illegal_share=0.0, known_share=0.5,
    )  # fmt: skip
    result = run_scenario(config, make_sessionmaker(engine), settings, folder=tmp_path / "sim")
    record = json.loads(json.dumps(result.as_json()))  # what `--format json` prints
    check_the_shape_and_the_records(record, engine)
    check_known_material_is_noticed_within_minutes_without_a_person(record)
    check_ignored_notices_are_renoticed_and_escalated_on_time(record)
    check_moved_content_is_attributed_again_and_noticed_to_its_new_hoster(record)
    check_returned_content_reopens_its_item(record)
    check_a_hoster_down_for_hours_looks_offline_then_its_content_comes_back(record)


def check_the_shape_and_the_records(record, engine):
    assert [(h["name"], h["behaviour"]) for h in record["hosters"]] == [
        ("h1", "removes"), ("h2", "ignores"), ("h3", "moves"), ("h4", "removes"),
        ("h5", "returns"), ("h6", "down"),
    ]  # fmt: skip
    assert all(h["contact"] == "approved" and h["country"] == "NL" for h in record["hosters"])
    urls = record["urls"]
    assert len(urls) == 18 and {u["hoster"] for u in urls} == {f"h{n}" for n in range(1, 7)}
    for url in urls:
        assert {"url", "hoster", "known", "state", "events"} <= url.keys()
        assert isinstance(url["known"], bool)
        times = [at(e["at"]) for e in url["events"]]
        assert times == sorted(times) and START <= times[0] <= START + timedelta(days=2)
        assert url["events"][0]["event"] == "received"
    assert at(record["end"]) <= START + timedelta(days=2)
    assert record["summary"]["duplicate_mails"] == 0  # nothing was sent twice
    # The records stay in the database.
    keys = [url_key(normalise_url(u["url"])) for u in urls]
    with engine.connect() as connection:
        stored = connection.scalar(
            select(func.count()).select_from(UrlItem).where(UrlItem.url_key.in_(keys))
        )
        assert stored == 18
        assert (
            connection.scalar(select(func.count()).select_from(Report))
            == record["summary"]["reports"]
        )


def check_known_material_is_noticed_within_minutes_without_a_person(record):
    known = [u for u in record["urls"] if u["known"]]
    assert len(known) >= 4
    for url in known:
        if "fetched" not in {e["event"] for e in url["events"]}:
            continue  # reported while its hoster was down
        assert url["graded_by"] == "match"
        (received,) = moments(url, "received")
        assert moments(url, "notice")[0] - received <= timedelta(minutes=5)
    new = [u for u in record["urls"] if not u["known"] and u["graded_by"]]
    assert new and all(u["graded_by"] == "analyst:sim" for u in new)


def check_ignored_notices_are_renoticed_and_escalated_on_time(record):
    ignored = [u for u in record["urls"] if u["hoster"] == "h2"]
    assert ignored
    for url in ignored:
        first = moments(url, "notice")[0]
        assert url["state"] == "escalated"
        (escalated,) = moments(url, "escalation_due")
        assert first + timedelta(hours=24) <= escalated <= first + timedelta(hours=24, minutes=5)
        renotices = moments(url, "renotice")
        assert renotices and first + timedelta(hours=24) <= renotices[0]
        assert renotices[0] <= first + timedelta(hours=24, minutes=10)
        assert "offline" not in {e["event"] for e in url["events"]}


def check_moved_content_is_attributed_again_and_noticed_to_its_new_hoster(record):
    moved = [u for u in record["urls"] if u["hoster"] == "h3"]
    assert moved
    for url in moved:
        assert url["hoster_now"] == "h4"
        [gone] = [at(e["at"]) for e in url["hoster_events"] if e["event"] == "moved"]
        (seen,) = moments(url, "moved")
        assert gone <= seen <= gone + timedelta(hours=1, minutes=5)  # at the next re-check
        later = [t for t in moments(url, "notice") if t > seen]
        assert later and later[0] - seen <= timedelta(minutes=5)  # to the new hoster
        assert url["state"] == "offline" and moments(url, "offline")[0] > later[0]


def check_returned_content_reopens_its_item(record):
    returned = [u for u in record["urls"] if u["hoster"] == "h5"]
    assert returned
    for url in returned:
        kinds = [e["event"] for e in url["events"]]
        assert kinds.index("offline") < kinds.index("reopened")
        (restored,) = [at(e["at"]) for e in url["hoster_events"] if e["event"] == "restored"]
        assert moments(url, "reopened")[0] >= restored
        assert kinds[-1] == "offline" and url["state"] == "offline"  # removed for good
        after = [t for t in moments(url, "renotice") if t > moments(url, "reopened")[0]]
        assert after  # noticed again once it was back


def check_a_hoster_down_for_hours_looks_offline_then_its_content_comes_back(record):
    down = [u for u in record["urls"] if u["hoster"] == "h6" and u["state"] != "failed"]
    assert down
    for url in down:
        events = {e["event"] for e in url["hoster_events"]}
        assert {"down", "up"} <= events
        kinds = [e["event"] for e in url["events"]]
        assert "offline" in kinds and kinds.index("offline") < kinds.index("reopened")


def test_items_without_an_approved_contact_wait_until_the_directory_is_fixed(
    db_url, settings, engine, tmp_path
):
    config = ScenarioConfig(
        seed=6, urls=6, days=0.75, start=START, behaviours=(Behaviour(B.removes, 15),) * 6,
        abroad=0.0, page_share=0.0, known_share=1.0, contact_hours=6.0,
    )  # fmt: skip
    result = run_scenario(config, make_sessionmaker(engine), settings, folder=tmp_path / "sim")
    record = result.as_json()
    lacking = {h["name"] for h in record["hosters"] if h["contact"] != "approved"}
    assert lacking  # the seed draws hosters without an approved contact
    for url in record["urls"]:
        kinds = [e["event"] for e in url["events"]]
        if url["hoster"] not in lacking:
            assert "contact_needed" not in kinds and url["state"] == "offline"
            continue
        waited = moments(url, "contact_needed")[0]
        (retried,) = moments(url, "retried")
        assert timedelta(hours=6) <= retried - waited <= timedelta(hours=6, minutes=5)
        assert moments(url, "notice")[0] >= retried and url["state"] == "offline"
    assert record["summary"]["analyst"]["contacts_fixed"] == len(
        [u for u in record["urls"] if u["hoster"] in lacking]
    )


def test_meldpunt_sim_scenario_prints_one_json_object(cli_db, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["sim", "scenario", "--seed", "2", "--hosters", "3", "--urls", "4", "--days", "0.3",
         "--start", "2025-03-03T09:00Z", "--mix", "removes=1", "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert sorted(record) == ["end", "hosters", "seed", "start", "summary", "urls"]
    assert record["start"] == "2025-03-03T09:00:00Z"
    assert {h["behaviour"] for h in record["hosters"]} == {"removes"}
    assert len([u for u in record["urls"] if u["parent"] is None]) == 4
    bad = runner.invoke(app, ["sim", "scenario", "--mix", "flies=1"])
    assert bad.exit_code != 0 and "flies" in bad.output


def test_the_live_simulation_files_its_reports_when_their_time_comes(db_url, settings, engine,
                                                                     tmp_path):  # fmt: skip
    frozen = FrozenClock(START)
    with use_clock(frozen):
        live = LiveSimulation(
            tmp_path / "live", make_sessionmaker(engine), get_settings(), hosters=3, urls=5,
            report_hours=1.0, continuous=True,
        )  # fmt: skip
        with live:
            assert live.step() <= 1
            frozen.advance(timedelta(hours=1))
            live.step()
            assert live.filed >= 2  # every report of the first round (1 to 4 URLs each)
            with engine.connect() as connection:
                items = connection.scalar(select(func.count()).select_from(UrlItem))
                assert items == 5
            frozen.advance(timedelta(hours=1, seconds=1))
            live.step()  # a second round was planned when the first ran out
            with engine.connect() as connection:
                assert connection.scalar(select(func.count()).select_from(UrlItem)) == 10
            settings_file = Path(live.sim.folder) / "meldpunt-sim.toml"
            assert "resolver_hosts_file" in settings_file.read_text()


def test_meldpunt_sim_runs_until_interrupted_and_tells_meldpunt_how_to_reach_it(settings, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "MELDPUNT_DATA_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "meldpunt.cli", "sim", "--hosters", "5", "--reports", "3"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C ends the simulation" in line:
                break
        text = "".join(lines)
        assert "export MELDPUNT_FETCH_ALLOW_NETWORKS='[\"127.0.0.0/8\"]'" in text, text
        hints = tmp_path / "var" / "sim" / "live" / "meldpunt-sim.toml"
        assert "resolver_hosts_file" in hints.read_text()
        names = tmp_path / "var" / "sim" / "live" / "names.hosts"
        assert "127.0.0.6 h5.sim.test" in names.read_text()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_demo_runs_the_simulation_on_a_scaled_clock(settings, tmp_path):
    import os

    from meldpunt import clock
    from meldpunt.demo import start_simulation

    before_clock, before_env = clock.get_clock(), dict(os.environ)
    try:
        running = start_simulation(tmp_path / "var", speed=600.0, hosters=3, urls=2)
        try:
            scaled = clock.get_clock()
            assert isinstance(scaled, clock.ScaledClock) and scaled.speed == 600.0
            assert not scaled.scale_monotonic  # signed-in pages keep real time
            assert running.settings.smtp_port == running.live.sim.sink.port
            assert running.settings.fetch_allow_networks == ["127.0.0.0/8"]
            assert running.settings.resolver_hosts_file == running.live.sim.internet.names_path
            assert running.settings.monitor_name_min_notified == 0  # simulated hosters, named
        finally:
            running.stop()
    finally:
        clock.set_clock(before_clock)
        os.environ.clear()
        os.environ.update(before_env)
        from meldpunt.config import reset_settings

        reset_settings()
