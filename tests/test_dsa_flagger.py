"""The trusted flagger's yearly report (``monitor/transparency.py``) against an independent
recount over the raw rows of a generated history, its formats, its bounds, and the command
line (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from meldpunt.cli.dsa import dsa_app
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.monitor import transparency
from meldpunt.monitor.dsa import InvalidInput
from meldpunt.store import make_engine, make_sessionmaker
from meldpunt.store.models import AbuseContact, Notice, NoticeItem, UrlItem

NOW = datetime(2027, 1, 3, 12, 0, tzinfo=UTC)  # a few days into the next year
YEAR = 2026

runner = CliRunner()
cli = typer.Typer()
cli.add_typer(dsa_app, name="dsa")

HOSTERS = [(64500, "Example Hosting"), (64501, "Slow Networks"), (64502, None), (None, None)]
STATES = ["offline", "offline", "offline", "noticed", "escalated", "forwarded", "not_illegal"]


def generate(session, seed: int = 7, count: int = 400) -> None:
    """Items first noticed around the year (some before, some after), in several states, each
    with one to three notices (some police, some failed, some sent outside the year)."""
    rng = random.Random(seed)
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    contacts = []
    for n in range(3):
        contact = AbuseContact(name=f"abuse desk {n}", kind="hoster", email=f"abuse{n}@example.org",
                               approved=True, created_at=start, updated_at=start)  # fmt: skip
        session.add(contact)
        contacts.append(contact)
    session.flush()
    message = 0
    for n in range(count):
        # from mid-December the year before to mid-January the year after, and the last days
        first = start - timedelta(days=15) + timedelta(minutes=rng.randrange(0, 60 * 24 * 395))
        if n % 25 == 0:
            first = NOW - timedelta(days=rng.randrange(0, 10), hours=rng.randrange(24))
            first = min(first, datetime(YEAR, 12, 31, 23, tzinfo=UTC))
        asn, owner = rng.choice(HOSTERS)
        state = rng.choice(STATES)
        gone = None
        offline = None
        if state == "offline":
            gone = first + timedelta(
                hours=rng.choice([1, 23, 24, 25, 47, 48, 49, 100, 168, 169, 900])
            )
            offline = gone + timedelta(hours=rng.choice([2, 30]))
            if n % 17 == 0:
                gone = None  # an older item that only has offline_at
        url = f"https://h{n % 13}.example.net/{n}"
        item = UrlItem(
            url=url, url_key=hashlib.sha256(url.encode()).hexdigest(), host=url.split("/")[2],
            kind=rng.choice(["csam", "csam", "ncii", "other"]),
            media=rng.choice(["image", "image", "video", "page", "other", None]),
            state=state, created_at=first - timedelta(hours=1), updated_at=first,
            first_notice_at=first, notice_asn=asn, notice_owner=owner,
            asn=asn, network_owner=owner, contact_id=rng.choice(contacts).id,
            gone_at=gone, offline_at=offline,
            escalated_at=first + timedelta(days=3) if state == "escalated" else None,
        )  # fmt: skip
        session.add(item)
        session.flush()
        for k in range(rng.randrange(1, 4)):
            message += 1
            kind = "notice" if k == 0 else rng.choice(["renotice", "renotice", "police"])
            status = rng.choice(["sent", "sent", "sent", "failed", "open"])
            sent = first + timedelta(days=k) if status == "sent" else None
            notice = Notice(contact_id=item.contact_id, kind=kind, status=status,
                            created_at=first, sent_at=sent,
                            message_id=f"<{message}@test>")  # fmt: skip
            session.add(notice)
            session.flush()
            session.add(NoticeItem(notice_id=notice.id, item_id=item.id))
    # one notice naming several items (grouped per contact): counted once per group
    shared = Notice(contact_id=contacts[0].id, kind="notice", status="sent", created_at=start,
                    sent_at=start + timedelta(days=40), message_id="<shared@test>")  # fmt: skip
    session.add(shared)
    session.flush()
    for item_id in range(1, 9):
        if session.get(NoticeItem, (shared.id, item_id)) is None:
            session.add(NoticeItem(notice_id=shared.id, item_id=item_id))
    session.commit()


def recount(session) -> tuple[dict, dict]:
    """The report's figures again, straight from raw rows, with none of its code."""
    start, end = datetime(YEAR, 1, 1, tzinfo=UTC), datetime(YEAR + 1, 1, 1, tzinfo=UTC)
    contacts = {r.id: r.name for r in session.execute(text("SELECT id, name FROM abuse_contacts"))}
    items = {}
    for r in session.execute(text("SELECT * FROM url_items")).mappings():
        items[r["id"]] = dict(r)

    def aware(value):
        if value is None or isinstance(value, datetime):
            return None if value is None else value.replace(tzinfo=value.tzinfo or UTC)
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def group(item):
        if item["notice_asn"] is not None:
            name = f"AS{item['notice_asn']}" + (
                f" {item['notice_owner']}" if item["notice_owner"] else ""
            )
        else:
            name = f"contact: {contacts[item['contact_id']]}"
        return (name, item["kind"], item["media"] or "other")

    figures: dict = {}
    for item in items.values():
        first = aware(item["first_notice_at"])
        if not (start <= first < end):
            continue
        counts = figures.setdefault(group(item), Counter())
        counts["urls"] += 1
        if item["state"] == "offline":
            gone = aware(item["gone_at"]) or aware(item["offline_at"])
            hours = (gone - first).total_seconds() / 3600
            counts["removed"] += 1
            bucket = ("removed_24h" if hours <= 24 else "removed_48h" if hours <= 48
                      else "removed_7d" if hours <= 168 else "removed_later")  # fmt: skip
            counts[bucket] += 1
        elif (
            item["state"] in ("noticed", "forwarded", "ready")
            and item["escalated_at"] is None
            and (NOW - first).total_seconds() < 7 * 86400
        ):
            counts["pending"] += 1
        else:
            counts["not_removed"] += 1
    pairs = set()
    rows = session.execute(
        text(
            "SELECT n.id, n.kind, n.status, n.sent_at, ni.item_id FROM notices n "
            "JOIN notice_items ni ON ni.notice_id = n.id"
        )
    )
    for notice_id, kind, status, sent_at, item_id in rows:
        sent = aware(sent_at)
        if status == "sent" and kind in ("notice", "renotice") and start <= sent < end:
            pairs.add((notice_id, group(items[item_id])))
    for _, key in pairs:
        figures.setdefault(key, Counter())["notices"] += 1
    totals = Counter()
    for counts in figures.values():
        totals.update(counts)
    return figures, totals


@pytest.fixture
def history(session, settings):
    with use_clock(FrozenClock(NOW)):
        generate(session)
        yield session


def test_the_report_equals_an_independent_recount(history):
    with use_clock(FrozenClock(NOW)):
        report = transparency.flagger_report(history, YEAR, flagger="meldpunt")
    expected, expected_totals = recount(history)
    got = {
        (r.hoster, r.kind, r.media): Counter(
            {k: v for k, v in r.plain().items() if k in transparency.COUNTS and v}
        )  # fmt: skip
        for r in report.rows
    }
    assert got == expected
    totals = report.totals()
    assert {k: v for k, v in totals.items() if v} == dict(expected_totals)
    # the history covers what the test means to cover
    assert totals["urls"] > 200 and totals["removed"] > 50
    assert totals["pending"] > 0 and totals["not_removed"] > 0 and totals["notices"] > 0
    for name, _ in transparency.BUCKETS:
        assert totals[name] > 0, name
    assert any(r.hoster.startswith("contact: ") for r in report.rows)
    for r in report.rows:
        assert r.removed == r.removed_24h + r.removed_48h + r.removed_7d + r.removed_later
        assert r.urls == r.removed + r.not_removed + r.pending


def test_the_formats_say_the_same_and_the_page_states_its_method(history):
    with use_clock(FrozenClock(NOW)):
        report = transparency.flagger_report(history, YEAR, flagger="meldpunt <nl>")
    plain = transparency.report_json(report)
    assert plain["year"] == YEAR and plain["method"] == transparency.METHOD
    assert json.loads(json.dumps(plain)) == plain
    rows = list(csv.DictReader(io.StringIO(transparency.report_csv(report))))
    assert len(rows) == len(report.rows)
    assert [int(r["urls"]) for r in rows] == [r.urls for r in report.rows]
    page = transparency.report_html(report)
    assert "Method" in page and "first notice" in page and "meldpunt &lt;nl&gt;" in page
    assert "<script" not in page and "<img" not in page
    assert str(report.totals()["urls"]) in page


def test_a_year_without_notices_is_empty_and_years_out_of_range_are_refused(session, settings):
    with use_clock(FrozenClock(NOW)):
        report = transparency.flagger_report(session, 2025)
        assert report.rows == [] and report.totals()["urls"] == 0
        assert "No notices in 2025" in transparency.report_html(report)
        for year in (1999, 2028, 10**9):
            with pytest.raises(InvalidInput, match="year"):
                transparency.flagger_report(session, year)


def test_the_command_prints_the_report_in_each_format(history, db_url, cli_db, tmp_path):
    with use_clock(FrozenClock(NOW)):
        out = runner.invoke(cli, ["dsa", "flagger-report", "--year", str(YEAR)])
        assert out.exit_code == 0, out.output
        printed = json.loads(out.stdout)
        direct = transparency.report_json(transparency.flagger_report(history, YEAR))
        assert printed["rows"] == direct["rows"] and printed["totals"] == direct["totals"]
        target = tmp_path / "report.html"
        out = runner.invoke(cli, ["dsa", "flagger-report", "--year", str(YEAR), "--format", "html",
                                  "--output", str(target)])  # fmt: skip
        assert out.exit_code == 0, out.output
        assert "Method" in target.read_text()
        out = runner.invoke(cli, ["dsa", "flagger-report", "--year", str(YEAR), "-f", "csv"])
        assert out.stdout.splitlines()[0].startswith("hoster,asn,kind,media,notices,urls")
        out = runner.invoke(cli, ["dsa", "flagger-report", "--year", "1900"])
        assert out.exit_code == 1 and "year 1900" in out.output


def test_the_report_reads_through_its_own_engine(db_url, settings):
    """The report needs nothing but the tables (a fresh engine, as the command line has)."""
    from meldpunt.store import init_db

    init_db(db_url)
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session, use_clock(FrozenClock(NOW)):
            assert transparency.flagger_report(session, YEAR).rows == []
    finally:
        engine.dispose()


def test_the_route_and_the_command_give_the_same_report(db_url, cli_db):
    from service import running

    with running(db_url) as world, use_clock(FrozenClock(NOW)):
        with world.session() as session:
            generate(session, seed=11, count=120)
        with world.client("analyst") as client:
            answered = client.get("/v1/dsa/flagger-report", params={"year": YEAR}).json()
            rows = client.get("/v1/dsa/flagger-report", params={"year": YEAR, "format": "csv"})
        printed = json.loads(runner.invoke(cli, ["dsa", "flagger-report", "--year", "2026"]).stdout)
        assert answered["rows"] and answered["rows"] == printed["rows"]
        assert answered["totals"] == printed["totals"]
        printed_csv = runner.invoke(cli, ["dsa", "flagger-report", "--year", "2026", "-f", "csv"])
        assert rows.text == printed_csv.stdout
