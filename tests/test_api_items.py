"""The hotline's items over the API (``/v1/items``): for analysts and admins only, the queue,
an item's record, grades with their errors, the police's word, and the blurred preview."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from imaging import jpeg, photo
from loopback_web import send, serve
from meldpunt.config import reset_settings
from meldpunt.reports import items
from meldpunt.signals import digest_bytes, pdq_signal
from service import World, running

NEW = jpeg(photo("chelsea"))


@pytest.fixture
def loopback_allowed(settings, monkeypatch):
    """The service's fetcher may reach 127.0.0.2 (the test's picture server), nothing else."""
    monkeypatch.setenv("MELDPUNT_FETCH_ALLOW_NETWORKS", '["127.0.0.2/32"]')
    reset_settings()


def new_item(world: World, url: str, *, state: str = "queued", data: bytes | None = NEW) -> int:
    with world.session() as session:
        item, _ = items.open_item(session, url, kind="csam", actor="test")
        if data is not None:
            digests, signal = digest_bytes(data), pdq_signal(data)
            item.md5, item.sha1, item.sha256 = digests.md5, digests.sha1, digests.sha256
            item.pdq, item.pdq_quality, item.media = signal.hash, signal.quality, "image"
        note = items.move(session, item, state, actor="worker", event="fetched",
                          details={"status": 200})  # fmt: skip
        items.note(session, [note])
        session.commit()
        return item.id


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    return error


def test_analysts_list_read_and_grade_items_and_others_may_not(db_url, settings):
    with running(db_url, run_worker=False) as world:
        first = new_item(world, "http://pictures.example/1.jpg")
        second = new_item(world, "http://pictures.example/2.jpg")
        done = new_item(world, "http://pictures.example/3.jpg", state="ignored")
        with world.client("platform") as platform, world.client(None) as anonymous:
            assert_error(platform.get("/v1/items"), 403)
            assert_error(anonymous.get(f"/v1/items/{first}"), 401)
            assert_error(platform.post(f"/v1/items/{first}/grade", json={"grade": "ignore"}), 403)
        with world.client("analyst") as analyst, world.client("admin") as admin:
            listed = analyst.get("/v1/items").json()
            assert [i["id"] for i in listed["items"]] == [second, first]
            assert listed["next_before"] is None
            page = analyst.get("/v1/items", params={"limit": 1}).json()
            assert [i["id"] for i in page["items"]] == [second] and page["next_before"] == second
            after = analyst.get("/v1/items", params={"limit": 1, "before": second}).json()
            assert [i["id"] for i in after["items"]] == [first]
            ignored = admin.get("/v1/items", params={"state": "ignored"}).json()["items"]
            assert [i["id"] for i in ignored] == [done]
            assert analyst.get("/v1/items", params={"state": "lost"}).status_code == 422

            record = analyst.get(f"/v1/items/{first}").json()
            assert record["hashes"]["md5"] == digest_bytes(NEW).md5
            assert record["hashes"]["pdq"] == pdq_signal(NEW).hash
            assert record["state"] == "queued" and record["grade"] is None
            assert record["attribution"] == {"ip": None, "asn": None, "network_owner": None,
                                             "country": None, "contact_id": None,
                                             "attributed_at": None}  # fmt: skip
            assert [e["event"] for e in record["timeline"]] == ["fetched"]
            assert_error(analyst.get("/v1/items/999999"), 404, "not_found")

            error = assert_error(
                analyst.post(f"/v1/items/{first}/grade", json={"grade": "illegal"}), 400
            )
            assert "needs a category" in error["message"]
            bad = {"grade": "illegal", "category": "child_exploitive"}
            assert_error(analyst.post(f"/v1/items/{first}/grade", json=bad), 400)
            assert_error(analyst.post(f"/v1/items/{first}/grade", json={"grade": "sure"}), 422)

            good = {"grade": "illegal", "category": "csam_baseline"}
            graded = analyst.post(f"/v1/items/{first}/grade", json=good)
            assert graded.status_code == 200, graded.text
            body = graded.json()
            assert (body["state"], body["grade"], body["category"]) == (
                "ready", "illegal", "csam_baseline"
            )  # fmt: skip
            assert body["graded_by"].startswith("key:")
            graded_event = body["timeline"][-1]
            assert graded_event["event"] == "graded"
            assert graded_event["details"]["hotline_set"]["set"] == "hotline"
            assert_error(analyst.post(f"/v1/items/{first}/grade", json=good), 409, "conflict")
            assert_error(analyst.post(f"/v1/items/{done}/grade", json=good), 409, "conflict")

            police = {"grade": "police", "category": "csam"}
            assert admin.post(f"/v1/items/{second}/grade", json=police).json()["state"] == "police"
            assert_error(analyst.post(f"/v1/items/{first}/police-cleared"), 409)
            cleared = analyst.post(f"/v1/items/{second}/police-cleared")
            assert cleared.status_code == 200, cleared.text
            assert (cleared.json()["state"], cleared.json()["grade"]) == ("ready", "illegal")
            assert [e["event"] for e in cleared.json()["timeline"]] == [
                "fetched", "graded", "police_cleared"
            ]  # fmt: skip


def test_the_preview_is_a_blurred_jpeg_that_no_one_caches(db_url, loopback_allowed):
    routes = {"/cat.jpg": lambda h: send(h, 200, NEW, Content_Type="image/jpeg")}
    with running(db_url, run_worker=False) as world, serve("127.0.0.2", routes) as (base, seen):
        item_id = new_item(world, f"{base}/cat.jpg")
        gone = new_item(world, f"{base}/gone.jpg")
        page = new_item(world, f"{base}/page", data=None)
        with world.session() as session:
            items.get_item(session, page).media = "page"
            session.commit()
        inside = new_item(world, "http://127.0.0.1:9/x.jpg")
        with world.client("analyst") as analyst, world.client("platform") as platform:
            assert_error(platform.get(f"/v1/items/{item_id}/preview"), 403)
            answer = analyst.get(f"/v1/items/{item_id}/preview")
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "image/jpeg"
            assert answer.headers["cache-control"] == "no-store"
            with Image.open(io.BytesIO(answer.content)) as shown:
                assert shown.format == "JPEG" and max(shown.size) <= 320
            assert_error(analyst.get(f"/v1/items/{gone}/preview"), 502, "preview_unavailable")
            assert_error(analyst.get(f"/v1/items/{page}/preview"), 409)
            error = assert_error(analyst.get(f"/v1/items/{inside}/preview"), 502)
            assert "inside the network" in error["message"]
            with world.client("analyst") as again:
                record = again.get(f"/v1/items/{item_id}").json()
    assert [s[":path"] for s in seen] == ["/cat.jpg", "/gone.jpg"]
    assert json.dumps(record).find("preview") == -1  # nothing of it was kept
