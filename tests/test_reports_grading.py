"""Fetching and grading (``reports.grading.run_fetches``) against HTTP servers on 127.0.0.2 that
serve benign pictures and HTML pages, on SQLite and PostgreSQL, with a frozen clock."""

from __future__ import annotations

import ipaddress
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from imaging import jpeg, photo
from loopback_web import send, serve
from meldpunt import registry, worker
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports import fetcher, grading, items
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.fetcher import FetchPolicy, FetchUnresolvable, NameTable
from meldpunt.reports.grading import run_fetches
from meldpunt.signals import digest_bytes, pdq_signal
from meldpunt.store import make_sessionmaker
from meldpunt.store.models import AuditEvent, UrlItem

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
POLICY = FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.2/32"),), timeout_seconds=3)

KNOWN = jpeg(photo("coffee"))
NEW = jpeg(photo("astronaut"))


def smaller_copy(data: bytes, *, turn: bool = False) -> bytes:
    """A resized, recompressed (and, with ``turn``, rotated) copy: other bytes, same picture."""
    with Image.open(__import__("io").BytesIO(data)) as picture:
        copy = picture.convert("RGB").resize((picture.width * 2 // 3, picture.height * 2 // 3))
    if turn:
        copy = copy.transpose(Image.Transpose.ROTATE_90)
    return jpeg(np.asarray(copy), quality=70)


def picture(data: bytes, kind: str = "image/jpeg"):
    return lambda h: send(h, 200, data, Content_Type=kind)


def html(text: str):
    return lambda h: send(h, 200, text.encode(), Content_Type="text/html; charset=utf-8")


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


@pytest.fixture
def known_set(session):
    police = registry.create_set(session, "police", default_category="csam_baseline")
    entry = registry.add_item(
        session, police, [("pdq", pdq_signal(KNOWN).hash), ("md5", digest_bytes(KNOWN).md5)]
    ).item
    session.commit()
    return police, entry


def context_of(engine, settings, policy=POLICY, **changes) -> HotlineContext:
    chosen = settings.model_copy(update=changes) if changes else settings
    return HotlineContext(make_sessionmaker(engine), settings=chosen, policy=policy)


def report(session, *urls: str, kind: str = "csam") -> list[int]:
    ids = []
    for url in urls:
        item, created = items.open_item(session, items.normalise_url(url), kind=kind, actor="test")
        assert created
        ids.append(item.id)
    session.commit()
    return ids


def item_of(session, item_id: int) -> UrlItem:
    session.rollback()  # a new transaction: what the worker committed since
    session.expire_all()
    return items.get_item(session, item_id)


def events_of(session, item_id: int) -> list[tuple[str, dict]]:
    session.rollback()
    return [(e.event, json.loads(e.details or "{}")) for e in items.timeline(session, item_id)]


def test_a_known_picture_is_graded_automatically_naming_the_set_and_entry(
    engine, session, settings, clock, known_set
):
    police, entry = known_set
    with serve("127.0.0.2", {"/a.jpg": picture(KNOWN)}) as (base, _):
        (item_id,) = report(session, f"{base}/a.jpg")
        assert run_fetches(context_of(engine, settings), 10) == 1
    item = item_of(session, item_id)
    digests = digest_bytes(KNOWN)
    assert (item.state, item.grade, item.category, item.graded_by) == (
        "ready", "illegal", "csam_baseline", "match"
    )  # fmt: skip
    assert (item.match_set_id, item.match_entry_id, item.match_distance) == (police.id, entry.id, 0)
    assert (item.md5, item.sha1, item.sha256) == (digests.md5, digests.sha1, digests.sha256)
    assert item.pdq == pdq_signal(KNOWN).hash and item.pdq_quality >= 50
    assert (item.media, item.content_type, item.size) == ("image", "image/jpeg", len(KNOWN))
    assert item.first_seen_at == item.last_seen_at == item.graded_at == item.due_at == T0
    assert item.attributed_at is None  # attribution is the next step's
    events = events_of(session, item_id)
    assert [e for e, _ in events] == ["fetched", "graded"]
    graded = events[1][1]
    assert (graded["set"], graded["entry"], graded["graded_by"]) == ("police", entry.id, "match")
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "hotline.graded")).one()
    assert (audit.actor, audit.subject_type) == ("worker", "url_item")
    assert audit.subject_id == str(item_id)
    recorded = json.loads(audit.details)
    assert (recorded["set"], recorded["set_id"]) == ("police", police.id)
    assert recorded["entry"] == entry.id


def test_resized_recompressed_and_turned_copies_are_known_by_pdq(
    engine, session, settings, clock, known_set
):
    copies = {"/small.jpg": smaller_copy(KNOWN), "/turned.jpg": smaller_copy(KNOWN, turn=True)}
    routes = {path: picture(data) for path, data in copies.items()}
    with serve("127.0.0.2", routes) as (base, _):
        ids = report(session, *(base + path for path in copies))
        assert run_fetches(context_of(engine, settings), 10) == 2
    for item_id in ids:
        item = item_of(session, item_id)
        assert (item.state, item.grade, item.category) == ("ready", "illegal", "csam_baseline")
        assert 0 < item.match_distance <= 31
        assert item.md5 != digest_bytes(KNOWN).md5
        graded = dict(events_of(session, item_id))["graded"]
        assert graded["signal_type"] == "pdq"


def test_a_new_picture_waits_in_the_queue(engine, session, settings, clock, known_set):
    with serve("127.0.0.2", {"/new.jpg": picture(NEW)}) as (base, _):
        (item_id,) = report(session, f"{base}/new.jpg")
        assert run_fetches(context_of(engine, settings), 10) == 1
    item = item_of(session, item_id)
    assert (item.state, item.grade, item.graded_by, item.due_at) == ("queued", None, None, None)
    assert item.pdq == pdq_signal(NEW).hash and item.md5 == digest_bytes(NEW).md5
    assert [e for e, _ in events_of(session, item_id)] == ["fetched"]


def test_allow_lists_and_categories_that_are_not_illegal_leave_an_item_to_analysts(
    engine, session, settings, clock, known_set
):
    other = jpeg(photo("rocket"))
    allow = registry.create_set(session, "false-positives", kind="allowlist")
    registry.add_item(session, allow, [("md5", digest_bytes(KNOWN).md5)])
    unassessed = registry.create_set(session, "seeds", default_category="uncategorised")
    registry.add_item(session, unassessed, [("sha256", digest_bytes(other).sha256)])
    session.commit()
    with serve("127.0.0.2", {"/k.jpg": picture(KNOWN), "/r.jpg": picture(other)}) as (base, _):
        allowed, seed = report(session, f"{base}/k.jpg", f"{base}/r.jpg")
        assert run_fetches(context_of(engine, settings), 10) == 2
    assert item_of(session, allowed).state == "queued"
    assert dict(events_of(session, allowed))["fetched"]["allowlisted"][0]["set"] == (
        "false-positives"
    )
    assert item_of(session, seed).state == "queued"
    noted = dict(events_of(session, seed))["fetched"]["matches_not_illegal"]
    assert noted[0]["set"] == "seeds" and noted[0]["category"] == "uncategorised"


PAGE = """<!doctype html><html><head><base href="/gallery/">
<meta property="og:image" content="/og.jpg"><title>benign</title></head><body>
<img src="one.jpg"><img srcset="two.jpg 1x, /three.jpg 2x"><img src="data:image/png;base64,AAAA">
<video poster="poster.jpg"><source src="clip.mp4" type="video/mp4"></video>
<a href="/about.html">about</a><a href="/nested.jpg">a page named like a picture</a>
<img src="one.jpg"><img src="http://127.0.0.1:9/inside.jpg">
</body></html>"""


def test_a_page_becomes_a_parent_of_its_media_capped_and_one_level_deep(
    engine, session, settings, clock, known_set
):
    inner = '<html><body><img src="/deeper.jpg"></body></html>'
    routes = {
        "/page": html(PAGE),
        "/page2": html(PAGE),
        "/og.jpg": picture(KNOWN),
        "/gallery/one.jpg": picture(NEW),
        "/gallery/two.jpg": picture(smaller_copy(KNOWN)),
        "/nested.jpg": html(inner),
        "/empty": html("<html><body><p>no pictures here</p></body></html>"),
    }
    with serve("127.0.0.2", routes) as (base, seen):
        page_id, empty_id = report(session, f"{base}/page", f"{base}/empty")
        context = context_of(engine, settings, hotline_max_children=6)
        assert run_fetches(context, 10) == 2
        page = item_of(session, page_id)
        assert (page.state, page.media, page.grade) == ("queued", "page", None)
        empty = item_of(session, empty_id)
        assert (empty.state, empty.media) == ("ignored", "page")
        children = session.scalars(
            select(UrlItem).where(UrlItem.parent_id == page_id).order_by(UrlItem.id)
        ).all()
        paths = [c.url.removeprefix(base) for c in children]
        # in page order, duplicates once, data: URIs left out, capped at six
        assert paths == ["/og.jpg", "/gallery/one.jpg", "/gallery/two.jpg", "/three.jpg",
                         "/gallery/poster.jpg", "/gallery/clip.mp4"]  # fmt: skip
        assert {(c.kind, c.state) for c in children} == {("csam", "received")}
        fetched = dict(events_of(session, page_id))["fetched"]
        assert (fetched["children"], fetched["linked"], fetched["links"]) == (6, 0, 6)

        assert run_fetches(context, 10) == 6  # the children, each on its own
        states = {c.url.removeprefix(base): item_of(session, c.id).state for c in children}
        assert states == {
            "/og.jpg": "ready", "/gallery/one.jpg": "queued", "/gallery/two.jpg": "ready",
            "/three.jpg": "failed", "/gallery/poster.jpg": "failed", "/gallery/clip.mp4": "failed",
        }  # fmt: skip

        # Another page with the same links and a larger cap: open items are linked, not made
        # again; the page named like a picture is fetched but never expanded.
        (second,) = report(session, f"{base}/page2")
        assert worker.run_once(context_of(engine, settings, hotline_max_children=20)) >= 1
        fetched = dict(events_of(session, second))["fetched"]
        assert (fetched["children"], fetched["linked"], fetched["links"]) == (5, 3, 8)
        nested = session.scalars(select(UrlItem).where(UrlItem.url == f"{base}/nested.jpg")).one()
        assert (nested.state, nested.media, nested.parent_id) == ("ignored", "page", second)
        assert dict(events_of(session, nested.id))["fetched"]["reason"].startswith("a page found")
        assert "/deeper.jpg" not in {s[":path"] for s in seen}  # never followed
        inside = session.scalars(select(UrlItem).where(UrlItem.url.endswith("/inside.jpg"))).one()
        assert inside.state == "failed" and "inside the network" in inside.last_error
        linked = [e for e, d in events_of(session, children[1].id) if d.get("page") == second]
        assert linked == ["linked"]


def test_failed_fetches_are_tried_again_with_doubling_waits_then_given_up(
    engine, session, settings, clock
):
    with serve("127.0.0.2", {"/busy": lambda h: send(h, 503, b"later")}) as (base, seen):
        (item_id,) = report(session, f"{base}/busy")
        context = context_of(engine, settings, hotline_fetch_attempts=3,
                             hotline_fetch_retry_minutes=10)  # fmt: skip
        assert run_fetches(context, 10) == 1
        item = item_of(session, item_id)
        assert (item.state, item.attempts) == ("received", 1)
        assert item.due_at == T0 + timedelta(minutes=10)
        assert "HTTP 503" in item.last_error
        clock.advance(timedelta(minutes=9))
        assert run_fetches(context, 10) == 0  # not due yet
        clock.advance(timedelta(minutes=1))
        assert run_fetches(context, 10) == 1
        item = item_of(session, item_id)
        assert (item.attempts, item.due_at) == (2, clock.now() + timedelta(minutes=20))
        clock.advance(timedelta(minutes=20))
        assert run_fetches(context, 10) == 1
        assert len(seen) == 3
    item = item_of(session, item_id)
    assert (item.state, item.attempts, item.due_at, item.open_key) == ("failed", 3, None, None)
    events = events_of(session, item_id)
    assert [e for e, _ in events] == ["fetch_failed"] * 3
    assert events[-1][1] == {"attempts": 3, "reason": events[-1][1]["reason"]}
    audited = session.scalars(
        select(AuditEvent.action).where(AuditEvent.subject_id == str(item_id))
    ).all()
    assert audited == ["hotline.fetch_failed"]  # the retries are on the timeline only


def test_gone_unresolvable_and_refused_urls_fail_at_once(
    engine, session, settings, clock, monkeypatch
):
    def no_such_name(host, port):
        raise FetchUnresolvable(f"{host} does not resolve")

    monkeypatch.setattr(fetcher, "resolve", no_such_name)
    routes = {"/gone": lambda h: send(h, 410), "/ok.jpg": picture(NEW)}
    with serve("127.0.0.2", routes) as (base, _):
        port = base.rsplit(":", 1)[1]
        ids = report(session, f"{base}/gone", f"{base}/missing", "http://nowhere.example/a.jpg",
                     f"http://127.0.0.3:{port}/ok.jpg", "http://[::1]/x.jpg")  # fmt: skip
        assert run_fetches(context_of(engine, settings), 10) == 5
    reasons = {}
    for item_id in ids:
        item = item_of(session, item_id)
        assert (item.state, item.attempts) == ("failed", 1), item.url
        reasons[item.url.removeprefix(base)] = item.last_error
    assert "HTTP 410" in reasons["/gone"] and "HTTP 404" in reasons["/missing"]
    assert "does not resolve" in reasons["http://nowhere.example/a.jpg"]
    assert "inside the network" in reasons[f"http://127.0.0.3:{port}/ok.jpg"]
    assert "inside the network" in reasons["http://[::1]/x.jpg"]


def test_a_name_resolving_inside_the_network_is_refused_unless_its_network_is_allowed(
    engine, session, settings, clock, tmp_path: Path
):
    names = tmp_path / "hosts"
    names.write_text("127.0.0.2 pictures.example\n")
    table = NameTable(names)
    closed = FetchPolicy(names=table, timeout_seconds=3)
    opened = FetchPolicy(allow_networks=POLICY.allow_networks, names=table, timeout_seconds=3)
    with serve("127.0.0.2", {"/new.jpg": picture(NEW)}) as (base, seen):
        port = base.rsplit(":", 1)[1]
        (refused,) = report(session, f"http://pictures.example:{port}/new.jpg")
        assert run_fetches(context_of(engine, settings, closed), 10) == 1
        item = item_of(session, refused)
        assert item.state == "failed" and "resolves to 127.0.0.2" in item.last_error
        assert seen == []  # never connected
        (allowed,) = report(session, f"http://pictures.example:{port}/new.jpg")
        assert run_fetches(context_of(engine, settings, opened), 10) == 1
    assert item_of(session, allowed).state == "queued"
    assert seen[0]["host"] == f"pictures.example:{port}"


def test_a_slow_host_does_not_hold_the_others(engine, session, settings, clock):
    fast_done = threading.Event()
    served: list[str] = []

    def fast(h):
        served.append(h.path)
        if len(served) == 3:
            fast_done.set()
        send(h, 200, NEW, Content_Type="image/jpeg")

    def slow(h):  # answers only once the three others were served: a sequential worker fails
        send(h, 200 if fast_done.wait(2.5) else 503, NEW, Content_Type="image/jpeg")

    routes = {"/slow": slow, "/a": fast, "/b": fast, "/c": fast}
    with serve("127.0.0.2", routes) as (base, _):
        ids = report(session, f"{base}/slow", f"{base}/a", f"{base}/b", f"{base}/c")
        assert run_fetches(context_of(engine, settings), 10) == 4
    assert [item_of(session, i).state for i in ids] == ["queued"] * 4


def test_one_items_trouble_in_a_batch_loses_nobody_elses_result(
    engine, session, settings, clock, monkeypatch
):
    """A batch is recorded in one transaction, each item in a savepoint: an item whose
    recording fails leaves no trace and is fetched again when its lease ends."""
    real = grading._record_media

    def troubled(session_, item, out, answer, now):
        if item.url.endswith("/bad.jpg"):
            item.grade = "illegal"  # half-written, then a fault
            raise RuntimeError("a fault while recording")
        return real(session_, item, out, answer, now)

    monkeypatch.setattr(grading, "_record_media", troubled)
    routes = {"/a.jpg": picture(NEW), "/bad.jpg": picture(NEW), "/c.jpg": picture(KNOWN)}
    with serve("127.0.0.2", routes) as (base, _):
        a, bad, c = report(session, f"{base}/a.jpg", f"{base}/bad.jpg", f"{base}/c.jpg")
        context = context_of(engine, settings)
        assert run_fetches(context, 10) == 2
        assert [item_of(session, i).state for i in (a, c)] == ["queued", "queued"]
        left = item_of(session, bad)
        assert (left.state, left.grade, left.sha256, left.attempts) == ("received", None, None, 0)
        assert events_of(session, bad) == []
        assert left.due_at is not None and left.due_at > clock.now()  # still claimed
        clock.set(left.due_at)
        monkeypatch.setattr(grading, "_record_media", real)
        assert run_fetches(context, 10) == 1
    assert item_of(session, bad).state == "queued"
    assert [e for e, _ in events_of(session, bad)] == ["fetched"]


def test_an_idle_worker_claims_nothing_and_items_not_yet_due_wait(engine, session, settings, clock):
    context = context_of(engine, settings)
    assert run_fetches(context, 10) == 0
    item, _ = items.open_item(session, "http://127.0.0.2:9/later.jpg", kind="ncii", actor="test",
                              due_at=T0 + timedelta(minutes=5))  # fmt: skip
    session.commit()
    assert run_fetches(context, 10) == 0
    assert item_of(session, item.id).due_at == T0 + timedelta(minutes=5)
    assert ("fetches", run_fetches) in worker.STEPS


def test_fetched_bytes_are_never_written_to_disk(engine, session, settings, clock, tmp_path):
    with serve("127.0.0.2", {"/new.jpg": picture(NEW)}) as (base, _):
        report(session, f"{base}/new.jpg")
        assert run_fetches(context_of(engine, settings), 10) == 1
    sample = NEW[len(NEW) // 2 : len(NEW) // 2 + 64]
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            assert sample not in path.read_bytes(), path
