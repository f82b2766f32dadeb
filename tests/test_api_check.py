"""The hash check service over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import secrets
import time

import pytest

from imaging import jpeg, photo
from meldpunt import checks, registry
from service import World, running


@pytest.fixture
def world(db_url):
    with running(db_url) as w:
        yield w


def near(value: str, bits: int) -> str:
    number = int(value, 16)
    for bit in range(bits):
        number ^= 1 << (bit * 7)
    return f"{number:064x}"


def test_operations_routes(world: World):
    with world.client(None) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        # in process the caller is not on the loopback address: /metrics needs its token then
        assert client.get("/metrics").status_code == 403
        spec = client.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.1") and "/v1/check" in spec["paths"]
        # every schema the document refers to is in it (clients generate code from it)
        refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
        assert {"CheckRequest", "CheckItem", "SignalIn"} <= refs
        assert refs <= set(spec["components"]["schemas"])
        assert client.get("/docs").status_code == 200


def test_check_hashes_answers_without_revealing_the_lists(world: World):
    body = {
        "items": [
            {
                "signals": [{"type": "pdq", "value": near(world.known_pdq, 9), "quality": 100}],
                "ref": "c1",
            },
            {"signals": [{"type": "md5", "value": world.known_md5.upper()}], "ref": "c2"},
            {"signals": [{"type": "pdq", "value": secrets.token_hex(32)}], "ref": "c3"},
            {"signals": [{"type": "pdq", "value": world.known_pdq, "quality": 10}], "ref": "c4"},
            {"signals": [{"type": "pdq", "value": "not-hex"}], "ref": "c5"},
        ]
    }
    with world.client() as client:
        response = client.post("/v1/check", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["match"] for r in results] == [True, True, False, False, False]
    first = results[0]["matches"][0]
    assert first["set"] == "police" and first["category"] == "csam_baseline"
    assert "distance" not in first and isinstance(first["hit_id"], int)  # an admin allows them
    assert results[1]["matches"][0]["category"] == "csam_national"
    assert "below 50" in results[3]["notes"][0]
    assert "64 hex digits" in results[4]["error"]
    for value in world.stored_values:  # neither stored hashes nor entry ids leave the service
        assert value not in response.text
    assert "entry" not in response.text


def test_check_files_and_hostile_files(world: World):
    with world.client() as client:
        ok = client.post(
            "/v1/check",
            files=[
                ("file", ("a.jpg", world.known_jpeg, "image/jpeg")),
                ("file", ("b.jpg", jpeg(photo("rocket")), "image/jpeg")),
            ],
        )
        assert ok.status_code == 200, ok.text
        assert [r["match"] for r in ok.json()["results"]] == [True, False]
        for data, code in (
            (secrets.token_bytes(2000), "not_an_image"),
            (world.known_jpeg[:800], "corrupt_image"),
        ):
            # a bad file fails its own item only (tests/test_api_uploads.py has more)
            bad = client.post("/v1/check", files=[("file", ("x.jpg", data, "image/jpeg"))])
            assert bad.status_code == 200
            (result,) = bad.json()["results"]
            assert result["error_code"] == code and "x.jpg" in result["error"]


def test_batch_and_body_limits(world: World):
    too_many = {"items": [{"signals": [{"type": "md5", "value": "0" * 32}]}] * 1001}
    with world.client() as client:
        response = client.post("/v1/check", json=too_many)
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
        broken = client.post(
            "/v1/check", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 422
        huge = client.post(
            "/v1/check",
            content=b"x" * (65 * 1024 * 1024),
            headers={"content-type": "application/json"},
        )
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"


def test_hma_compatible_lookup(world: World):
    with world.client() as client:
        found = client.get("/m/lookup", params={"signal_type": "pdq", "signal": world.known_pdq})
        assert found.status_code == 200
        (match,) = found.json()["police"]
        assert set(match) == {"bank_content_id"} and isinstance(match["bank_content_id"], int)
        assert client.get("/m/lookup", params={"signal": secrets.token_hex(32)}).json() == {}
        by_file = client.post(
            "/m/lookup", files={"photo": ("p.jpg", world.known_jpeg, "image/jpeg")}
        )
        assert "police" in by_file.json()


def test_outcomes_are_per_organisation(world: World):
    with world.client() as client:
        result = client.post(
            "/v1/check",
            json={
                "items": [
                    {
                        "signals": [{"type": "md5", "value": world.known_md5}],
                        "ref": "post-1",
                        "url": "https://platform.example/p/1",
                    }
                ]
            },
        ).json()["results"][0]
        hit_id = result["matches"][0]["hit_id"]
        assert client.get("/v1/hits").json()[0]["id"] == hit_id
        missing_report = client.post(f"/v1/hits/{hit_id}/outcome", json={"outcome": "reported"})
        assert missing_report.status_code == 400
        done = client.post(
            f"/v1/hits/{hit_id}/outcome", json={"outcome": "reported", "report_id": "NCMEC-1"}
        )
        assert done.status_code == 200 and done.json()["outcome"] == "reported"
        assert done.json()["recheck_status"] == "pending"
        fp = client.post(
            f"/v1/hits/{hit_id}/outcome", json={"outcome": "false_positive", "reason": "stock"}
        )
        assert fp.json()["outcome"] == "false_positive"
    with world.client("platform_b") as other:
        stranger = other.post(f"/v1/hits/{hit_id}/outcome", json={"outcome": "removed"})
        assert stranger.status_code == 404  # never says whether the hit exists
        assert other.get("/v1/hits").json() == []
    with world.session() as session:
        assert [r.hit_id for r in checks.review_queue(session)] == [hit_id]
    with world.client() as client:
        stats = client.get("/v1/stats").json()
        assert stats[0]["hits"] == 1 and stats[0]["checks"] >= 1


def test_registry_changes_reach_checks_within_seconds(world: World):
    fresh = secrets.token_hex(16)
    body = {"items": [{"signals": [{"type": "md5", "value": fresh}]}]}
    with world.client() as client:
        assert client.post("/v1/check", json=body).json()["results"][0]["match"] is False
        with world.session() as session:  # another process changes the registry
            registry.add_item(session, "police", [("md5", fresh)])
            session.commit()
        deadline = time.monotonic() + 5
        while not client.post("/v1/check", json=body).json()["results"][0]["match"]:
            assert time.monotonic() < deadline, "the change did not reach checks within 5 s"
            time.sleep(0.1)


def test_revoked_key_and_bad_keys(world: World):
    with world.client(None) as anonymous:
        assert anonymous.post("/v1/check", json={"items": []}).status_code == 401
        bad = anonymous.post("/v1/check", json={"items": []}, headers={"X-API-Key": "mp_nope"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_key"
    with world.client("admin") as admin:
        keys = admin.get("/v1/keys").json()
        platform_key = next(k for k in keys if k["org_name"] == "platform-a")
        assert admin.delete(f"/v1/keys/{platform_key['id']}").status_code == 200
    with world.client() as client:
        assert client.post("/v1/check", json={"items": []}).status_code == 401


def test_rate_limit_answers_429_with_retry_after(db_url):
    with running(db_url, rate_per_second=1, rate_burst=3) as w, w.client() as client:
        body = {"items": [{"signals": [{"type": "md5", "value": "0" * 32}]}]}
        statuses = [client.post("/v1/check", json=body) for _ in range(6)]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited and int(limited[0].headers["Retry-After"]) >= 1
        assert limited[0].json()["error"]["code"] == "rate_limited"
