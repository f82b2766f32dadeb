"""The monitor's faces: the public API (no key) and ``meldpunt monitor export`` give the same
tables; the naming rule; bad parameters give clear 4xx; the public pages with their SVG
charts, in plain HTTP and in headless Chromium; a new offline event on the pages within 5
seconds while a worker runs. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner

from meldpunt import clock
from meldpunt.cli.app import app as cli
from meldpunt.config import get_settings, reset_settings
from meldpunt.monitor.figures import rebuild, refresh
from meldpunt.monitor.reference import compare, reference_tables, stored_tables
from meldpunt.store import make_engine
from meldpunt.store.models import HosterFacts
from monitor_support import at, hash_set, hit, item, platform
from service import World, running
from test_monitor_figures import three_years
from test_web_pages import browser  # noqa: F401 (the headless Chromium fixture)

runner = CliRunner()


def sessions_of(db_url: str) -> sessionmaker:
    return sessionmaker(make_engine(db_url), expire_on_commit=False)


def fill(db_url: str) -> None:
    """Three years of notices, a platform with hits, one hoster's size; figures rebuilt."""
    sessions = sessions_of(db_url)
    with sessions() as session:
        three_years(session)
        hashes = hash_set(session)
        shop = platform(session, "shop-platform")
        for outcome in ("blocked", "removed", None):
            hit(session, shop, at("2026-03-05T10:00:00"), outcome, hashes.id)
        session.add(HosterFacts(asn=100, name="BigHost", addresses=65_536, customers=1_200,
                                updated_at=clock.now()))  # fmt: skip
        session.commit()
    rebuild(sessions)


@contextmanager
def served(db_url: str, monkeypatch, *, minimum: int = 50, **overrides):
    monkeypatch.setenv("MELDPUNT_DATABASE_URL", db_url)
    monkeypatch.setenv("MELDPUNT_MONITOR_NAME_MIN_NOTIFIED", str(minimum))
    reset_settings()
    with running(db_url, project=get_settings(), **overrides) as world:
        fill(db_url)
        yield world


@pytest.fixture
def world(db_url, settings, monkeypatch):
    with served(db_url, monkeypatch, run_worker=False) as world:
        yield world


def test_the_api_is_public_and_applies_the_naming_rule(world: World):
    with world.client(None) as anyone:
        answer = anyone.get("/v1/monitor/hosters", params={"period": "year", "at": "2026"})
        assert answer.status_code == 200, answer.text
        table = answer.json()
        assert (table["period_kind"], table["period"], table["count"]) == ("year", "2026", 3)
        first, second, third = table["rows"]
        # 60 notified >= 50: named; 30 and 10: ranks only, no AS number
        assert (first["rank"], first["named"], first["name"], first["asn"]) == (
            1, True, "BigHost B.V.", 100)  # fmt: skip
        assert (second["name"], second["asn"], second["named"]) == ("hoster #2", None, False)
        assert third["name"] == "hoster #3" and third["per_1000_addresses"] is None
        assert first["share_of_notified"] == pytest.approx(0.6)
        assert first["share_24h"] == pytest.approx(20 / 60)
        assert first["per_1000_addresses"] == pytest.approx(1000 * 60 / 65_536)
        assert first["per_1000_customers"] == pytest.approx(50.0)
        total = table["total"]
        assert (total["notified"], total["offline_24h"], total["median_hours"]) == (100, 40, 48.0)
        month = {"period": "month", "at": "2026-03"}
        platforms = anyone.get("/v1/monitor/platforms", params=month).json()
        assert [r["name"] for r in platforms["rows"]] == ["platform #1"]
        assert platforms["rows"][0]["org_id"] is None
        assert "shop-platform" not in json.dumps(platforms)
        assert (platforms["total"]["hits"], platforms["total"]["pending"]) == (3, 1)
        known = anyone.get("/v1/monitor/periods").json()
        assert known["hoster"]["year"] == ["2026", "2025", "2024"]
        assert known["platform"]["month"] == ["2026-03"]
        # the latest period when none is named
        latest = anyone.get("/v1/monitor/hosters", params={"period": "quarter"}).json()
        assert latest["period"] == "2026-Q4"


def test_naming_by_order_only_from_the_order_on(db_url, settings, monkeypatch):
    with (
        served(db_url, monkeypatch, minimum=100, run_worker=False) as world,
        world.client(None) as anyone,
    ):

        def named(kind: str, label: str) -> dict[str, bool]:
            which = {"period": kind, "at": label}
            rows = anyone.get("/v1/monitor/hosters", params=which).json()["rows"]
            return {row["name"]: row["named"] for row in rows}

        # A's order was issued on 2026-04-01: named in 2026, its April and Q2, not before
        assert named("year", "2026")["BigHost B.V."] is True
        assert named("month", "2026-04") == {"BigHost B.V.": True}
        assert named("month", "2026-03") == {"hoster #1": False}
        assert named("year", "2025") == {"hoster #1": False, "hoster #2": False,
                                             "hoster #3": False}  # fmt: skip
    monkeypatch.setenv("MELDPUNT_MONITOR_NAME_AFTER_ORDER", "false")
    reset_settings()
    from meldpunt.monitor.tables import hoster_table

    with sessions_of(db_url)() as session:
        table = hoster_table(session, "year", "2026", settings=get_settings())
        assert [row.named for row in table.rows] == [False, False, False]
        everyone = hoster_table(session, "year", "2026", settings=get_settings(), public=False)
        assert [row.name for row in everyone.rows] == ["BigHost B.V.", "MidHost", "SmallHost"]


def test_the_cli_prints_the_same_tables_as_the_api(world: World, monkeypatch):
    with world.client(None) as anyone:
        for by in ("hoster", "platform"):
            for kind, label in (("year", "2026"), ("month", "2026-03"), ("quarter", "2024-Q2")):
                params = {"period": kind, "at": label, "limit": 1000}
                for output in ("csv", "json"):
                    api = anyone.get(f"/v1/monitor/{by}s", params={**params, "format": output})
                    command = ["monitor", "export", "--by", by, "--period", kind, "--at", label,
                               "--format", output]  # fmt: skip
                    printed = runner.invoke(cli, command)
                    if api.status_code == 404:
                        assert printed.exit_code == 1
                        continue
                    assert printed.exit_code == 0, printed.output
                    assert api.status_code == 200
                    if output == "csv":
                        assert api.text == printed.output
                        assert api.headers["content-type"].startswith("text/csv")
                    else:
                        assert api.json() == json.loads(printed.output)
    rows = list(csv.DictReader(io.StringIO(runner.invoke(
        cli, ["monitor", "export", "--period", "year", "--at", "2024", "--format", "csv"]
    ).output)))  # fmt: skip
    assert [r["name"] for r in rows] == ["BigHost B.V.", "hoster #2", "hoster #3", "all hosters"]
    assert rows[-1]["rank"] == "" and rows[-1]["offline_24h"] == "84"
    operator = runner.invoke(cli, ["monitor", "export", "--period", "year", "--at", "2024",
                                   "--format", "json", "--names", "all"])  # fmt: skip
    assert [r["name"] for r in json.loads(operator.output)["rows"]] == [
        "BigHost B.V.", "MidHost", "SmallHost"]  # fmt: skip


def test_verify_refresh_and_rebuild_commands(world: World):
    verified = runner.invoke(cli, ["monitor", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "equal to DuckDB" in verified.output
    sessions = sessions_of(world.db_url)
    with sessions() as session:  # the figures changed behind the monitor's back
        session.execute(
            __import__("sqlalchemy").text(
                "UPDATE monitor_hosters SET notified = notified + 1 WHERE period = '2024'"
            )
        )
        session.commit()
    broken = runner.invoke(cli, ["monitor", "verify", "--no-refresh"])
    assert broken.exit_code == 1
    assert "notified expected" in broken.output
    rebuilt = runner.invoke(cli, ["monitor", "rebuild"])
    assert rebuilt.exit_code == 0 and "group(s) written" in rebuilt.output
    assert runner.invoke(cli, ["monitor", "verify", "--no-refresh"]).exit_code == 0
    refreshed = runner.invoke(cli, ["monitor", "refresh"])
    assert refreshed.exit_code == 0 and "recomputed" in refreshed.output


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("hosters", {"period": "week"}, 400, "period must be one of month, quarter, year"),
        ("hosters", {"period": "month", "at": "2026-13"}, 400, "like 2026-03"),
        ("hosters", {"period": "quarter", "at": "2026-03"}, 400, "like 2026-Q1"),
        ("platforms", {"period": "year", "at": "20x6"}, 400, "like 2026"),
        ("hosters", {"format": "xml"}, 400, "format must be one of json, csv"),
        ("hosters", {"limit": "0"}, 422, "limit"),
        ("hosters", {"limit": "1001"}, 422, "limit"),
        ("hosters", {"offset": "-1"}, 422, "offset"),
        ("hosters", {"at": "x" * 50}, 422, "at"),
    ],
)
def test_bad_parameters_get_a_clear_4xx(world: World, path, params, status, says):
    with world.client(None) as anyone:
        answer = anyone.get(f"/v1/monitor/{path}", params=params)
        assert answer.status_code == status, answer.text
        assert set(answer.json()) == {"error"}
        assert says in answer.json()["error"]["message"]


def test_no_figures_for_a_period_is_a_404_and_an_empty_monitor_a_page(db_url, settings):
    with (
        running(db_url, run_worker=False, project=get_settings()) as world,
        world.client(None) as anyone,
    ):
        answer = anyone.get("/v1/monitor/hosters")
        assert answer.status_code == 404
        assert answer.json()["error"]["message"] == "no hoster figures by month yet"
        page = anyone.get("/monitor")
        assert page.status_code == 200 and "No figures yet" in page.text


def test_the_public_pages_over_http(world: World):
    with world.client(None, follow_redirects=False) as anyone:
        page = anyone.get("/monitor", params={"period": "year", "at": "2026"})
        assert page.status_code == 200
        assert page.text.count('<tr class="named">') == 1
        assert page.text.count('<tr class="anonymous">') == 2
        assert page.text.count("<svg") == 3  # removal buckets, concentration, the trend
        assert 'role="img"' in page.text
        assert "<img" not in page.text and "<script" not in page.text.split("</head>")[1]
        assert "/v1/monitor/hosters?period=year&amp;at=2026" in page.text
        assert "hoster #2" in page.text
        # the same figures again: the kept charts
        started = time.perf_counter()
        again = anyone.get("/monitor", params={"period": "year", "at": "2026"})
        assert again.text == page.text
        assert time.perf_counter() - started < 1.0
        platforms = anyone.get("/monitor/platforms", params={"period": "year"})
        assert platforms.status_code == 200 and "platform #1" in platforms.text
        assert "shop-platform" not in platforms.text and "<svg" in platforms.text
        report = anyone.get("/monitor/report/2024")
        assert report.status_code == 200
        for words in ("Method", "first notice", "first seen gone", "UTC", "84.0%",
                      "percentile_cont", "hoster #2"):  # fmt: skip
            assert words in report.text, words
        assert anyone.get("/monitor/report/1999").status_code == 404
        assert anyone.get("/monitor/report/abc").status_code == 422
        bad = anyone.get("/monitor", params={"period": "week"})
        assert bad.status_code == 400 and "period must be one of" in bad.text


def test_the_public_pages_in_chromium(db_url, settings, monkeypatch, browser):  # noqa: F811
    if "postgresql" in db_url:
        pytest.skip("the pages read the same tables on both databases; one browser run suffices")
    with served(db_url, monkeypatch, loopback=True, run_worker=False) as world:
        context = browser.new_context()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(f"{world.url}/monitor?period=year&at=2024")
            assert page.locator("h1").inner_text().startswith("How fast")
            assert page.locator("table.hosters tbody tr").count() == 3
            assert page.locator("table.hosters tbody tr").first.locator("td").nth(1).inner_text() \
                == "BigHost B.V."  # fmt: skip
            assert page.locator("figure.chart svg").count() == 3
            assert page.locator("figure.chart svg rect, figure.chart svg path").count() > 10
            href = page.locator("a.csv").first.get_attribute("href")
            assert href
            download = page.request.get(world.url + href)
            assert download.ok
            lines = download.text().splitlines()
            assert lines[0].startswith("period_kind,period,rank,named,name")
            assert len(lines) == 1 + 3 + 1
            page.click("text=per quarter")
            assert "period=quarter" in page.url
            assert page.locator("table.hosters").count() == 1
            page.goto(f"{world.url}/monitor/report/2026")
            assert page.locator("h2", has_text="Method").count() == 1
            assert page.locator("img").count() == 0
            assert not page.url.endswith("/ui/sign-in")
            assert errors == []  # nothing the Content-Security-Policy refused
        finally:
            context.close()


def test_a_new_offline_event_is_on_the_page_within_5_seconds(db_url, settings, monkeypatch):
    monkeypatch.setenv("MELDPUNT_DATABASE_URL", db_url)
    reset_settings()
    with running(db_url, project=get_settings()) as world:  # a worker every 0.2 s
        sessions = sessions_of(db_url)
        now = clock.now()
        with sessions() as session:
            waiting = item(session, now - timedelta(hours=2), 100)
            session.commit()
        label = now.strftime("%Y-%m")
        with world.client(None) as anyone:

            def offline_24h() -> int | None:
                answer = anyone.get("/v1/monitor/hosters", params={"period": "month",
                                                                   "at": label})  # fmt: skip
                if answer.status_code != 200:
                    return None
                rows = answer.json()["rows"]
                return rows[0]["offline_24h"] if rows else None

            deadline = time.monotonic() + 10
            while offline_24h() != 0:
                assert time.monotonic() < deadline, "the notified item never showed"
                time.sleep(0.1)
            with sessions() as session:
                session.add(waiting)
                waiting.state, waiting.gone_at = "offline", clock.now()
                waiting.offline_at = waiting.updated_at = clock.now()
                session.commit()
            committed = time.monotonic()
            while offline_24h() != 1:
                assert time.monotonic() - committed < 5.0, "not on the page within 5 seconds"
                time.sleep(0.05)
        # every count is complete; the median and p90 of the totals and of quarters and years
        # follow with the worker's next full refresh (every 30 s), or any refresh() now
        with sessions() as session:
            differences = compare(reference_tables(session), stored_tables(session))
        assert all("_hours" in d for d in differences), differences
        refresh(sessions)
        with sessions() as session:
            assert compare(reference_tables(session), stored_tables(session)) == []
