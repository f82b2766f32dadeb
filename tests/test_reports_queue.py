"""The analysts' queue (``reports.queue``): grades and categories, the second analyst, the police
flow, the hotline's own set closing the known-versus-new loop (for the worker and for every
platform's check), and the blurred preview that is never stored. SQLite and PostgreSQL."""

from __future__ import annotations

import io
import ipaddress
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from imaging import encode, jpeg, photo
from loopback_web import send, serve
from meldpunt import registry
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports import Conflict, items, queue
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.fetcher import FetchPolicy
from meldpunt.reports.grading import run_fetches
from meldpunt.reports.preview import PreviewUnavailable, preview_item
from meldpunt.signals import digest_bytes, pdq_signal
from meldpunt.sim.edits import apply_edit
from meldpunt.store import make_sessionmaker
from meldpunt.store.models import AuditEvent, ItemEvent, UrlItem
from service import running

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
POLICY = FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.2/32"),), timeout_seconds=3)
NEW = jpeg(photo("astronaut"))


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


def queued_item(session, url: str, data: bytes | None = NEW, *, kind: str = "csam") -> int:
    """An item that was fetched and found new: hashes set, state queued."""
    item, _ = items.open_item(session, url, kind=kind, actor="test")
    if data is not None:
        digests, signal = digest_bytes(data), pdq_signal(data)
        item.md5, item.sha1, item.sha256 = digests.md5, digests.sha1, digests.sha256
        item.pdq, item.pdq_quality, item.media = signal.hash, signal.quality, "image"
    items.move(session, item, "queued", actor="test")
    session.commit()
    return item.id


def item_of(session, item_id: int) -> UrlItem:
    session.rollback()  # a new transaction, and nothing of the old one remembered
    session.expire_all()
    return items.get_item(session, item_id)


def events_of(session, item_id: int) -> list[tuple[str, str, dict]]:
    session.rollback()
    return [(e.event, e.actor, json.loads(e.details or "{}"))
            for e in items.timeline(session, item_id)]  # fmt: skip


def grade(session, settings, item_id, grade_, category=None, actor="key:1"):
    queue.grade(session, item_id, grade_, category, actor=actor, settings=settings)
    session.commit()
    return item_of(session, item_id)


def test_grades_need_fitting_categories_and_final_grades_end_the_item(session, settings, clock):
    a = queued_item(session, "http://pictures.example/a.jpg")
    b = queued_item(session, "http://pictures.example/b.jpg")
    c = queued_item(session, "http://pictures.example/c.jpg")
    for grade_, category in (("illegal", None), ("illegal", "child_exploitive"),
                             ("illegal", "no such thing"), ("police", ""),
                             ("not_illegal", "csam"), ("maybe", None)):  # fmt: skip
        with pytest.raises(InvalidInput) as caught:
            queue.grade(session, a, grade_, category, actor="key:1", settings=settings)
        assert caught.value.status == 400
        session.rollback()
    assert item_of(session, a).state == "queued"

    item = grade(session, settings, a, "illegal", "A1")  # a value of a scheme the registry knows
    assert (item.state, item.grade, item.category, item.graded_by) == (
        "ready", "illegal", "csam_baseline", "key:1"
    )  # fmt: skip
    assert item.due_at == item.graded_at == T0 and item.open_key is not None
    item = grade(session, settings, b, "not_illegal")
    assert (item.state, item.grade, item.category, item.open_key, item.due_at) == (
        "not_illegal", "not_illegal", None, None, None
    )  # fmt: skip
    assert grade(session, settings, c, "ignore").state == "ignored"
    for done in (a, b, c):
        with pytest.raises(Conflict) as caught:
            queue.grade(session, done, "ignore", actor="key:1", settings=settings)
        assert caught.value.status == 409
        session.rollback()
    assert [e for e, _, _ in events_of(session, a)] == ["graded"]
    audited = session.scalars(
        select(AuditEvent.action).where(AuditEvent.subject_type == "url_item")
    ).all()
    assert sorted(audited) == ["hotline.graded"] * 3


def test_new_material_graded_illegal_goes_to_the_hotlines_own_set(session, settings, clock):
    a = queued_item(session, "http://pictures.example/a.jpg")
    flat = encode(np.full((64, 64, 3), 128, dtype=np.uint8), "PNG")  # PDQ quality 0
    b = queued_item(session, "http://pictures.example/flat.png", flat, kind="ncii")
    page = queued_item(session, "http://pictures.example/page", None)
    grade(session, settings, a, "illegal", "csam")
    grade(session, settings, b, "illegal", "ncii")
    grade(session, settings, page, "illegal", "csam")  # a page: no hashes to add

    hotline = registry.get_set(session, settings.hotline_set)
    assert (hotline.kind, hotline.source_org) == ("blocklist", settings.hotline_name)
    (entry_a,) = registry.find_items(session, "md5", digest_bytes(NEW).md5)
    assert (entry_a.set_id, entry_a.category, entry_a.reference) == (
        hotline.id, "csam", f"url_item:{a}"
    )  # fmt: skip
    assert {kind for kind, _ in entry_a.signals} == {"md5", "sha1", "sha256", "pdq"}
    (entry_b,) = registry.find_items(session, "sha256", digest_bytes(flat).sha256)
    assert entry_b.category == "ncii"
    assert "pdq" not in {kind for kind, _ in entry_b.signals}  # too low a quality to list
    graded = {i: events_of(session, i)[-1][2]["hotline_set"] for i in (a, b, page)}
    assert graded[a] == {"added": True, "set": "hotline", "set_id": hotline.id,
                         "entry": entry_a.id, "outcome": "added"}  # fmt: skip
    assert graded[page]["added"] is False


def test_a_second_analyst_confirms_or_sends_back_and_nobody_confirms_their_own(
    session, settings, clock
):
    two = settings.model_copy(update={"hotline_second_analyst": True})
    a = queued_item(session, "http://pictures.example/a.jpg")
    item = grade(session, two, a, "illegal", "csam_national", actor="key:1")
    assert (item.state, item.grade, item.proposed_grade, item.proposed_category,
            item.proposed_by) == ("review", None, "illegal", "csam_national", "key:1")  # fmt: skip
    with pytest.raises(Conflict, match="not its author"):
        queue.grade(session, a, "illegal", "csam_national", actor="key:1", settings=two)
    session.rollback()
    assert not registry.list_sets(session)  # nothing is listed on one analyst's word

    item = grade(session, two, a, "illegal", "csam_baseline", actor="key:2")  # they disagree
    assert (item.state, item.grade, item.proposed_grade) == ("queued", None, None)
    _, actor, details = events_of(session, a)[-1]
    assert details["outcome"] == "disagreed" and actor == "key:2"
    assert details["first"] == {"grade": "illegal", "category": "csam_national", "by": "key:1"}
    assert details["second"] == {"grade": "illegal", "category": "csam_baseline", "by": "key:2"}

    grade(session, two, a, "illegal", "csam_baseline", actor="key:2")
    item = grade(session, two, a, "illegal", "csam_baseline", actor="key:3")
    assert (item.state, item.grade, item.category, item.graded_by, item.proposed_by) == (
        "ready", "illegal", "csam_baseline", "key:2, key:3", None
    )  # fmt: skip
    assert [e for e, _, _ in events_of(session, a)] == ["proposed", "proposed", "proposed",
                                                        "graded"]  # fmt: skip
    assert registry.find_items(session, "md5", digest_bytes(NEW).md5)

    b = queued_item(session, "http://pictures.example/b.jpg")
    grade(session, two, b, "ignore", actor="key:1")
    assert grade(session, two, b, "ignore", actor="key:2").state == "ignored"
    # With the setting off, a proposal left in review is decided by the next grade.
    c = queued_item(session, "http://pictures.example/c.jpg")
    grade(session, two, c, "not_illegal", actor="key:1")
    assert grade(session, settings, c, "not_illegal", actor="key:1").state == "not_illegal"


def test_first_police_waits_for_their_word_then_goes_on(session, settings, clock):
    a = queued_item(session, "http://pictures.example/a.jpg")
    item = grade(session, settings, a, "police", "csam_baseline")
    assert (item.state, item.grade, item.category, item.due_at) == (
        "police", "police", "csam_baseline", T0
    )  # fmt: skip
    assert not registry.list_sets(session)  # listed once the police cleared it
    clock.advance(timedelta(hours=2))
    queue.police_cleared(session, a, actor="key:4", settings=settings)
    session.commit()
    item = item_of(session, a)
    assert (item.state, item.grade, item.category, item.due_at) == (
        "ready", "illegal", "csam_baseline", T0 + timedelta(hours=2)
    )  # fmt: skip
    assert [e for e, _, _ in events_of(session, a)] == ["graded", "police_cleared"]
    assert registry.find_items(session, "md5", digest_bytes(NEW).md5)[0].category == "csam_baseline"
    with pytest.raises(Conflict):
        queue.police_cleared(session, a, actor="key:4", settings=settings)


def test_the_queue_lists_by_state_and_pages_on(session, settings, clock):
    ids = [queued_item(session, f"http://pictures.example/{n}.jpg") for n in range(5)]
    assert [i.id for i in queue.queue(session, limit=2)] == ids[::-1][:2]
    assert [i.id for i in queue.queue(session, limit=2, before=ids[3])] == [ids[2], ids[1]]
    assert [i.id for i in queue.queue(session, oldest_first=True, limit=2)] == ids[:2]
    grade(session, settings, ids[0], "ignore")
    assert [i.id for i in queue.queue(session, state="ignored")] == [ids[0]]
    assert queue.counts(session, ["queued", "ignored", "review"]) == {
        "queued": 4, "ignored": 1, "review": 0
    }  # fmt: skip
    with pytest.raises(InvalidInput):
        queue.queue(session, state="nonsense")


def smaller_copy(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as picture:
        small = picture.convert("RGB").resize((picture.width // 2, picture.height // 2))
    return jpeg(np.asarray(small), quality=75)


def test_a_graded_picture_makes_its_next_copy_known_to_the_worker(engine, session, settings, clock):
    context = HotlineContext(make_sessionmaker(engine), settings=settings, policy=POLICY)
    routes = {
        "/first.jpg": lambda h: send(h, 200, NEW, Content_Type="image/jpeg"),
        "/copy.jpg": lambda h: send(h, 200, smaller_copy(NEW), Content_Type="image/jpeg"),
    }
    with serve("127.0.0.2", routes) as (base, _):
        first, _ = items.open_item(session, f"{base}/first.jpg", kind="ncii", actor="test")
        session.commit()
        assert run_fetches(context, 10) == 1
        assert item_of(session, first.id).state == "queued"
        grade(session, settings, first.id, "illegal", "ncii")

        copy, _ = items.open_item(session, f"{base}/copy.jpg", kind="ncii", actor="test")
        session.commit()
        assert run_fetches(context, 10) == 1
    item = item_of(session, copy.id)
    assert (item.state, item.grade, item.category, item.graded_by) == (
        "ready", "illegal", "ncii", "match"
    )  # fmt: skip
    graded = events_of(session, copy.id)[-1][2]
    assert (graded["set"], graded["signal_type"]) == ("hotline", "pdq")


def test_a_graded_picture_makes_its_cropped_and_captioned_copy_known(
    engine, session, settings, clock
):
    """New material keeps what its pixels gave until it is graded; its entry then carries the
    turned hashes and local features, so an edited copy the plain hash misses is known."""
    context = HotlineContext(make_sessionmaker(engine), settings=settings, policy=POLICY)
    edited, quality = apply_edit("rotate-3+crop-5%", photo("astronaut"), seed=2)
    routes = {
        "/first.jpg": lambda h: send(h, 200, NEW, Content_Type="image/jpeg"),
        "/edited.jpg": lambda h: send(h, 200, jpeg(edited, quality), Content_Type="image/jpeg"),
    }
    with serve("127.0.0.2", routes) as (base, _):
        first, _ = items.open_item(session, f"{base}/first.jpg", kind="ncii", actor="test")
        session.commit()
        assert run_fetches(context, 10) == 1
        assert item_of(session, first.id).picture_signals  # kept while it waits
        grade(session, settings, first.id, "illegal", "ncii")
        entry = events_of(session, first.id)[-1][2]["hotline_set"]["entry"]
        kinds = {kind for kind, _ in registry.get_item(session, entry).signals}
        assert {"pdq", "pdq_orientation", "features"} <= kinds
        copy, _ = items.open_item(session, f"{base}/edited.jpg", kind="ncii", actor="test")
        session.commit()
        assert run_fetches(context, 10) == 1
    item = item_of(session, copy.id)
    assert (item.state, item.grade, item.graded_by) == ("ready", "illegal", "match")
    graded = events_of(session, copy.id)[-1][2]
    assert (graded["entry"], graded["way"]) == (entry, "verified")


def test_a_graded_picture_is_known_to_every_platforms_check_within_seconds(db_url, settings):
    rocket = jpeg(photo("rocket"))
    with running(db_url, run_worker=False) as world:
        with world.session() as session:
            item_id = queued_item(session, "http://pictures.example/rocket.jpg", rocket)
        check = {"items": [{"signals": [{"type": "md5", "value": digest_bytes(rocket).md5}]}]}
        with world.client("platform") as platform, world.client("analyst") as analyst:
            assert platform.post("/v1/check", json=check).json()["results"][0]["match"] is False
            body = {"grade": "illegal", "category": "csam_baseline"}
            answer = analyst.post(f"/v1/items/{item_id}/grade", json=body)
            assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 10
            while True:
                (result,) = platform.post("/v1/check", json=check).json()["results"]
                if result["match"] or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    assert result["match"] is True
    assert [(m["set"], m["category"]) for m in result["matches"]] == [("hotline", "csam_baseline")]


def high_frequency(picture: Image.Image) -> float:
    """The mean absolute Laplacian of the picture's luminance: what a blur takes away."""
    grey = np.asarray(picture.convert("L"), dtype=np.float64)
    laplacian = (
        4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    )
    return float(np.abs(laplacian).mean())


def test_the_preview_is_small_blurred_and_never_stored(engine, session, settings, clock, tmp_path):
    detailed = jpeg(photo("gravel"))
    context = HotlineContext(make_sessionmaker(engine), settings=settings, policy=POLICY)
    routes = {
        "/gravel.jpg": lambda h: send(h, 200, detailed, Content_Type="image/jpeg"),
        "/page": lambda h: send(h, 200, b"<html><body>hi</body></html>", Content_Type="text/html"),
    }
    with serve("127.0.0.2", routes) as (base, seen):
        item_id = queued_item(session, f"{base}/gravel.jpg", detailed)
        gone = queued_item(session, f"{base}/removed.jpg", detailed)
        page_id = queued_item(session, f"{base}/page", None)
        page = item_of(session, page_id)
        page.media = "page"
        session.commit()
        files_before = sorted(p for p in Path(tmp_path).rglob("*") if p.is_file())
        rows_before = [session.scalar(select(func.count()).select_from(t))
                       for t in (AuditEvent, ItemEvent, UrlItem)]  # fmt: skip

        data = preview_item(context, item_id)
        with pytest.raises(PreviewUnavailable, match="HTTP 404") as caught:
            preview_item(context, gone)
        assert caught.value.status == 502
        with pytest.raises(Conflict):
            preview_item(context, page_id)
        assert [s[":path"] for s in seen] == ["/gravel.jpg", "/removed.jpg"]  # fetched again

        session.rollback()
        assert sorted(p for p in Path(tmp_path).rglob("*") if p.is_file()) == files_before
        assert [session.scalar(select(func.count()).select_from(t))
                for t in (AuditEvent, ItemEvent, UrlItem)] == rows_before  # fmt: skip
    shown = Image.open(io.BytesIO(data))
    assert shown.format == "JPEG" and max(shown.size) <= 320
    with Image.open(io.BytesIO(detailed)) as original:
        same_size = original.convert("RGB").resize(shown.size, Image.Resampling.LANCZOS)
    assert high_frequency(shown) < 0.15 * high_frequency(same_size)
    sample = data[len(data) // 2 : len(data) // 2 + 64]
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            assert sample not in path.read_bytes(), path
