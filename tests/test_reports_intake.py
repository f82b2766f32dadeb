"""Taking reports (``reports.intake``) and reading them back (``reports.views``), on SQLite and
PostgreSQL: URLs normalised and deduplicated, open URLs linked instead of processed twice, the
DSA's rules for the public form, the text rules, and a thousand URLs in a few statements."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from meldpunt import audit, checks
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.config import get_settings, reset_settings
from meldpunt.reports import items
from meldpunt.reports.errors import InvalidInput, NotFound
from meldpunt.reports.intake import InvalidReport, TooManyUrls, submit_report
from meldpunt.reports.views import (
    recent_reports,
    report_details,
    report_for_flagger,
    report_status,
)
from meldpunt.store import make_sessionmaker
from meldpunt.store.models import AuditEvent, ItemEvent, Report, ReportUrl, UrlItem

T0 = datetime(2025, 5, 6, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


def form(session: Session, urls, **given):
    values = {"source": "form", "kind": "csam", "note": "seen on a forum", "good_faith": True,
              "actor": "public"}  # fmt: skip
    values.update(given)
    return submit_report(session, urls=[(u, None) if isinstance(u, str) else u for u in urls],
                         **values)  # fmt: skip


def flag(session: Session, org_id: int, urls, **given):
    values = {"source": "flagger", "kind": "csam", "org_id": org_id, "actor": "flagger:f"}
    values.update(given)
    return submit_report(session, urls=[(u, None) for u in urls], **values)


def events_of(session: Session, item_id: int) -> list[str]:
    return [e.event for e in items.timeline(session, item_id)]


def test_urls_are_normalised_and_spellings_of_one_url_collapse(session, settings, clock):
    receipt = form(session, [
        "HTTP://Example.COM:80/a/b?x=1#top",
        "http://example.com/a/b?x=1",
        "example.com/a/b?x=1",
        "https://Bücher.example:443/straße",
        "https://example.com:8443/",
        "http://[2001:DB8::1]:8080/p q",
    ])  # fmt: skip
    session.commit()
    assert [u.url for u in receipt.urls] == [
        "http://example.com/a/b?x=1",
        "https://xn--bcher-kva.example/stra%C3%9Fe",
        "https://example.com:8443/",
        "http://[2001:db8::1]:8080/p%20q",
    ]
    assert [u.position for u in receipt.urls] == [0, 3, 4, 5]
    assert receipt.duplicates == 2 and receipt.received == 4 and receipt.linked == 0
    assert receipt.urls[0].given == "HTTP://Example.COM:80/a/b?x=1#top"
    assert session.scalar(select(func.count()).select_from(UrlItem)) == 4
    assert session.scalar(select(func.count()).select_from(ReportUrl)) == 4
    item = items.get_item(session, receipt.urls[1].item_id)
    assert (item.state, item.host, item.kind) == ("received", "xn--bcher-kva.example", "csam")
    assert item.due_at == T0 and item.url_key == items.url_key(item.url)
    assert events_of(session, item.id) == ["received"]


def test_a_url_already_open_is_linked_not_processed_twice(session, settings, clock):
    org = checks.create_org(session, "flagger-a", "flagger")
    first = form(session, ["http://example.com/1", "http://example.com/2"])
    session.commit()
    item = items.get_item(session, first.urls[0].item_id)
    items.note(session, [items.move(session, item, "noticed", actor="worker", event="notice")])
    session.commit()
    clock.advance(timedelta(minutes=5))
    second = flag(session, org.id, ["example.com/1", "http://example.com/3"], kind="other")
    session.commit()
    assert [(u.url, u.outcome, u.state) for u in second.urls] == [
        ("http://example.com/1", "linked", "noticed"),
        ("http://example.com/3", "received", "received"),
    ]
    assert second.urls[0].item_id == first.urls[0].item_id
    item = items.get_item(session, first.urls[0].item_id)
    assert (item.state, item.due_at, item.kind) == ("noticed", None, "csam")  # not re-queued
    assert events_of(session, item.id) == ["received", "notice", "linked"]
    linked = items.timeline(session, item.id)[-1]
    assert linked.actor == "flagger:f"
    assert json.loads(linked.details or "{}")["report"] == second.ref
    # A final item frees its URL: the next report of it opens a new item.
    items.note(session, [items.move(session, item, "offline", actor="worker", event="offline")])
    session.commit()
    third = form(session, ["http://example.com/1"])
    session.commit()
    assert third.urls[0].outcome == "received" and third.urls[0].item_id != item.id


def test_two_reports_of_the_same_urls_at_once_share_their_items(engine, settings, clock):
    sessions = make_sessionmaker(engine)
    urls = [f"http://race.example/{i}" for i in range(150)]
    receipts = []
    problems: list[BaseException] = []
    barrier = threading.Barrier(3)

    def report(order: list[str]) -> None:
        try:
            with sessions() as session:
                barrier.wait()
                receipts.append(form(session, order))
                session.commit()
        except BaseException as exc:  # noqa: BLE001 (shown by the assertion below)
            problems.append(exc)

    threads = [threading.Thread(target=report, args=(order,))
               for order in (urls, urls[::-1], urls[50:] + urls[:50])]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    ids = [{u.url: u.item_id for u in r.urls} for r in receipts]
    assert ids[0] == ids[1] == ids[2]
    assert sum(r.received for r in receipts) == 150
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(UrlItem)) == 150
        received = select(func.count()).where(ItemEvent.event == "received")
        linked = select(func.count()).where(ItemEvent.event == "linked")
        assert (session.scalar(received), session.scalar(linked)) == (150, 300)
        assert audit.verify(session).ok


@pytest.mark.parametrize("kind", ["ncii", "other"])
def test_the_form_asks_a_name_and_email_except_for_child_sexual_abuse(session, settings, kind):
    for name, email in ((None, None), ("Ann", None), (None, "ann@example.org"), ("  ", " ")):
        with pytest.raises(InvalidInput, match="name and an e-mail address"):
            form(session, ["http://x.example/"], kind=kind, reporter_name=name,
                 reporter_email=email)  # fmt: skip
    receipt = form(session, ["http://x.example/"], kind=kind, reporter_name=" Ann ",
                   reporter_email="ann@example.org")  # fmt: skip
    anonymous = form(session, ["http://y.example/"], kind="csam")
    session.commit()
    report = session.get(Report, receipt.report_id)
    assert report is not None
    assert (report.reporter_name, report.reporter_email, report.good_faith) == (
        "Ann", "ann@example.org", True)  # fmt: skip
    nobody = session.get(Report, anonymous.report_id)
    assert nobody is not None and (nobody.reporter_name, nobody.reporter_email) == (None, None)
    # Flaggers are known senders.
    org = checks.create_org(session, "flagger-a", "flagger")
    flag(session, org.id, ["http://z.example/"], kind=kind)


def test_the_form_needs_the_good_faith_statement_and_a_real_address(session, settings):
    with pytest.raises(InvalidInput, match="good faith"):
        form(session, ["http://x.example/"], good_faith=False)
    for email in ("ann", "ann@", "@example.org", "ann@localhost", "a b@example.org",
                  "ann@example.org>, eve@example.org"):  # fmt: skip
        with pytest.raises(InvalidInput, match="not an e-mail address"):
            form(session, ["http://x.example/"], reporter_email=email)
    for kind in ("", "CSAM", "spam"):
        with pytest.raises(InvalidInput, match="unknown kind"):
            form(session, ["http://x.example/"], kind=kind)
    with pytest.raises(InvalidInput, match="at least one URL"):
        form(session, [])
    assert session.scalar(select(func.count()).select_from(Report)) == 0


def test_text_rules_refuse_control_characters_everywhere(session, settings):
    for bad in ("\x00", "\x1b", "\x7f", "\x85", "\ud800"):
        with pytest.raises(InvalidInput, match="note|explanation"):
            form(session, ["http://x.example/"], note=f"seen{bad}there")
        with pytest.raises(InvalidInput, match="name"):
            form(session, ["http://x.example/"], reporter_name=f"A{bad}n")
        with pytest.raises(InvalidReport) as refused:
            form(session, ["http://ok.example/", f"http://x.example/a{bad}b"])
        assert [p.position for p in refused.value.problems] == [1]
        assert refused.value.status == 422 and "URL 2" in str(refused.value)
        with pytest.raises(InvalidReport, match="referer"):
            form(session, [("http://x.example/", f"http://r.example/{bad}x")])
        with pytest.raises(InvalidInput, match="reference"):
            form(session, ["http://x.example/"], source="flagger", flagger_ref=f"case{bad}1")
    # Free text keeps its lines and tabs.
    receipt = form(session, ["http://x.example/"], note="line one\n\tline two")
    report = session.get(Report, receipt.report_id)
    assert report is not None and report.note == "line one\n\tline two"
    with pytest.raises(InvalidInput, match="longer than 5,000"):
        form(session, ["http://x.example/"], note="x" * 5001)


def test_bad_urls_refuse_the_whole_report_naming_each_position(session, settings):
    urls = ["http://ok.example/", "ftp://files.example/a", "http://", "x" * 3000,
            "javascript:alert(1)", "http://exa mple.com/", "http://ok.example/2"]  # fmt: skip
    with pytest.raises(InvalidReport) as refused:
        form(session, urls)
    problems = {p.position: p.message for p in refused.value.problems}
    assert sorted(problems) == [1, 2, 3, 4, 5]
    assert "only http and https" in problems[1]
    assert "longer than" in problems[3]
    assert session.scalar(select(func.count()).select_from(UrlItem)) == 0
    assert session.scalar(select(func.count()).select_from(Report)) == 0


def test_a_report_names_at_most_the_configured_number_of_urls(session, settings, monkeypatch):
    monkeypatch.setenv("MELDPUNT_HOTLINE_REPORT_URLS", "3")
    reset_settings()
    small = get_settings()
    form(session, [f"http://x.example/{i}" for i in range(3)], settings=small)
    with pytest.raises(TooManyUrls, match="at most 3 URLs; this one names 4") as refused:
        form(session, [f"http://x.example/{i}" for i in range(4)], settings=small)
    assert refused.value.status == 413


def test_a_thousand_urls_take_a_few_statements(engine, session, settings, clock):
    org = checks.create_org(session, "flagger-a", "flagger")
    already = form(session, [f"https://bulk.example/{i}" for i in range(0, 1000, 2)])
    session.commit()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", count)
    try:
        # the statements are counted, not timed (speed is measured in bench/takedown.py)
        receipt = flag(session, org.id, [f"https://bulk.example/{i}" for i in range(1000)])
        session.commit()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert (receipt.received, receipt.linked) == (500, 500)
    assert {u.item_id for u in receipt.urls if u.outcome == "linked"} == {
        u.item_id for u in already.urls}  # fmt: skip
    # The report, its lookups (two chunks), one insert of items, one of links, the timeline,
    # the audit chain (report and items): no statement per URL.
    assert len(statements) <= 20, statements
    assert session.scalar(select(func.count()).select_from(UrlItem)) == 1000
    assert session.scalar(select(func.count()).select_from(ReportUrl)) == 1500
    assert session.scalar(select(func.count()).select_from(ItemEvent)) == 1500
    assert audit.verify(session).ok
    view = report_for_flagger(session, org.id, receipt.report_id)
    assert len(view.urls) == 1000 and all(u.state == "received" for u in view.urls)


def test_the_status_link_shows_states_and_only_this_reports_events(session, settings, clock):
    org = checks.create_org(session, "flagger-a", "flagger")
    earlier = flag(session, org.id, ["http://shared.example/a"], flagger_ref="case 7")
    receipt = form(session, ["http://shared.example/a", "http://own.example/b"],
                   kind="ncii", reporter_name="Ann", reporter_email="ann@example.org")  # fmt: skip
    later = form(session, ["http://own.example/b"])
    session.commit()
    assert receipt.token and receipt.status_path == (
        f"/report/status/{receipt.ref}?token={receipt.token}")  # fmt: skip
    assert earlier.token is None and earlier.status_path is None
    report = session.get(Report, receipt.report_id)
    assert report is not None and report.status_token_hash != receipt.token
    assert receipt.token not in json.dumps([a.details for a in session.scalars(select(AuditEvent))])

    view = report_status(session, receipt.ref.lower(), receipt.token)
    assert [(u.url, u.state, [e for _, e in u.events]) for u in view.urls] == [
        ("http://shared.example/a", "received", ["linked"]),  # not the flagger's "received"
        ("http://own.example/b", "received", ["received"]),  # not the later report's "linked"
    ]
    assert view.urls[0].words.startswith("Received")
    assert (view.reporter_name, view.reporter_email, view.note, view.flagger_ref) == (
        None, None, None, None)  # fmt: skip
    wrong = receipt.token[:-1] + ("x" if receipt.token[-1] != "x" else "y")  # one letter off
    for ref, token in ((receipt.ref, wrong), (receipt.ref, ""),
                       (later.ref, receipt.token), ("MP-0000-0000", receipt.token),
                       (earlier.ref, ""), ("x" * 500, receipt.token)):  # fmt: skip
        with pytest.raises(NotFound, match="no report with that reference"):
            report_status(session, ref, token)
    # Staff see everything.
    details = report_details(session, receipt.ref)
    assert details.reporter_email == "ann@example.org"
    assert [e for _, e in details.urls[0].events] == ["received", "linked"]
    assert [r.ref for r in recent_reports(session)] == [later.ref, receipt.ref, earlier.ref]
    assert [r.urls for r in recent_reports(session)] == [1, 2, 1]
    assert [r.ref for r in recent_reports(session, source="flagger")] == [earlier.ref]


def test_flaggers_read_their_own_reports_only(session, settings, clock):
    mine = checks.create_org(session, "flagger-a", "flagger")
    theirs = checks.create_org(session, "flagger-b", "flagger")
    receipt = flag(session, mine.id, ["http://a.example/1"], flagger_ref="ticket-1")
    page = items.get_item(session, receipt.urls[0].item_id)
    child, _ = items.open_item(session, "http://a.example/1.jpg", kind="csam", actor="worker",
                               parent_id=page.id)  # fmt: skip
    items.note(session, [items.move(session, page, "ignored", actor="worker", event="fetched")])
    session.commit()
    view = report_for_flagger(session, mine.id, receipt.report_id)
    assert (view.flagger_ref, view.kind, view.source) == ("ticket-1", "csam", "flagger")
    assert view.urls[0].state == "ignored" and view.urls[0].media == {"received": 1}
    assert [e for _, e in view.urls[0].events] == ["received", "fetched"]
    assert child.id not in [u.item_id for u in view.urls]
    for org_id, report_id in ((theirs.id, receipt.report_id), (mine.id, receipt.report_id + 1)):
        with pytest.raises(NotFound):
            report_for_flagger(session, org_id, report_id)


def test_the_audit_log_keeps_the_report_but_not_the_reporter(session, settings, clock):
    receipt = form(session, ["http://x.example/", "http://y.example/"], kind="other",
                   reporter_name="Ann Example", reporter_email="ann@example.org")  # fmt: skip
    session.commit()
    events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [e.action for e in events] == ["hotline.report", "hotline.received", "hotline.received"]
    assert events[0].subject_id == str(receipt.report_id) and events[0].actor == "public"
    text = json.dumps([(e.actor, e.details) for e in events])
    assert "Ann" not in text and "ann@example.org" not in text
    assert audit.verify(session).ok
