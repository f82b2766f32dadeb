"""The check lane answers the hot routes exactly as the FastAPI routes do.

Two services on one database, the lane on and off; every request, valid or not, must get the
same status, the same headers that matter and the same body (hit ids aside, which differ because
each answer records its own hits).
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from meldpunt import checks
from meldpunt.api import create_app
from service import World, in_process, running, service_settings


@pytest.fixture
def pair(db_url):
    plain_settings = service_settings(db_url, rate_per_second=0, check_lane=False)
    with (
        running(db_url, rate_per_second=0) as world,
        in_process(create_app(plain_settings)) as plain,
    ):
        yield world, plain


def _comparable(response: httpx.Response) -> tuple[int, str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict) and "results" in body:
        for result in body["results"]:
            for m in result["matches"]:
                assert isinstance(m.pop("hit_id"), int)
    elif isinstance(body, dict) and "error" not in body:  # HMA answers: hit ids per bank
        for matches in body.values():
            for m in matches:
                assert isinstance(m.pop("bank_content_id"), int)
    return response.status_code, response.headers.get("content-type", ""), body


def test_lane_and_routes_answer_alike(pair: tuple[World, httpx.BaseTransport]):
    world, plain = pair
    key = world.keys["platform"]
    bearer = {"Authorization": f"Bearer {key}"}
    pdq = {"type": "pdq", "value": world.known_pdq}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/check", {"json": {"items": [{"signals": [pdq]}]}, "headers": bearer}),
        (
            "POST",
            "/v1/check",
            {
                "json": {
                    "items": [{"signals": [pdq], "ref": "r1"}] * 3,
                },
                "headers": {"X-API-Key": key},
            },
        ),
        (
            "POST",
            "/v1/check",
            {
                "json": {
                    "items": [
                        {
                            "signals": [{"type": "md5", "value": world.known_md5}],
                            "url": "http://x.test/a",
                        },
                        {"signals": [{"type": "pdq", "value": "zz"}]},
                        {
                            "signals": [
                                {"type": "pdq", "value": secrets.token_hex(32), "quality": 10}
                            ]
                        },
                        {"signals": [pdq], "url": "ftp://example.test/x"},
                    ]
                },
                "headers": bearer,
            },
        ),
        ("POST", "/v1/check", {"json": {"items": []}, "headers": bearer}),
        ("POST", "/v1/check", {"json": {"items": [{"signals": [pdq]}], "x": 1}, "headers": bearer}),
        ("POST", "/v1/check", {"content": b"{not json", "headers": bearer}),
        ("POST", "/v1/check", {"content": b"", "headers": bearer}),
        ("POST", "/v1/check", {"json": {"items": [{"signals": [pdq]}]}}),
        ("POST", "/v1/check", {"json": {"items": []}, "headers": {"Authorization": "Bearer no"}}),
        ("POST", "/v1/check", {"json": {"items": []}, "headers": {"Authorization": "Basic eDp5"}}),
        (
            "POST",
            "/v1/check",
            {
                "json": {"items": [{"signals": [pdq]}]},
                "headers": {"Authorization": f"Bearer {world.keys['analyst']}"},
            },
        ),
        (
            "POST",
            "/v1/check",
            {
                "json": {"items": [{"signals": [pdq]}]},
                "headers": {"Authorization": "Basic eDp5", "X-API-Key": key},
            },
        ),
        ("GET", "/m/lookup", {"params": {"signal": world.known_pdq}, "headers": bearer}),
        (
            "GET",
            "/m/lookup",
            {
                "params": {"signal_type": "md5", "signal": world.known_md5},
                "headers": {"X-API-Key": key},
            },
        ),
        ("GET", "/m/lookup", {"params": {"signal": secrets.token_hex(32)}, "headers": bearer}),
        ("GET", "/m/lookup", {"params": {"signal": "nothex"}, "headers": bearer}),
        (
            "GET",
            "/m/lookup",
            {"params": {"signal_type": "video", "signal": "ab"}, "headers": bearer},
        ),
        ("GET", "/m/lookup", {"params": {"signal": "a" * 201}, "headers": bearer}),
        ("GET", "/m/lookup", {"headers": bearer}),
        ("GET", "/m/lookup", {"params": {"signal": world.known_pdq}}),
        (
            "GET",
            "/m/lookup",
            {
                "params": {"signal": world.known_pdq},
                "headers": {"Authorization": f"Bearer {world.keys['admin']}"},
            },
        ),
    ]
    for method, path, kwargs in cases:
        with world.client(None) as lane:
            fast = lane.request(method, path, **kwargs)
        with httpx.Client(base_url=world.url, transport=plain) as routes:
            slow = routes.request(method, path, **kwargs)
        assert _comparable(fast) == _comparable(slow), (method, path, kwargs)
    # the lane really answered: both services counted their checks as hits in the database
    with world.session() as session:
        org = checks.get_org(session, "platform-a")
        hits = checks.list_hits(session, org.id, limit=1000)
    assert len(hits) >= 2 * 6


def test_lane_keeps_rate_limits_and_body_limits(db_url):
    limits = {"rate_per_second": 1, "rate_burst": 3, "max_body_bytes": 10_000}
    with running(db_url, **limits) as world, world.client() as client:
        huge = client.post(
            "/v1/check", content=b"x" * 20_000, headers={"Content-Type": "application/json"}
        )
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
        # sent in chunks without a declared length: counted while it arrives
        chunked = client.post("/v1/check", content=iter([b"x" * 6_000] * 3))
        assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "too_large"
        body = {"items": [{"signals": [{"type": "md5", "value": world.known_md5}]}]}
        statuses = [client.post("/v1/check", json=body) for _ in range(4)]
        assert statuses[0].status_code == 200
        limited = [r for r in statuses if r.status_code == 429]
        assert limited and limited[0].headers["Retry-After"].isdigit()
        assert limited[0].json()["error"]["code"] == "rate_limited"


def test_the_no_match_answer_built_directly_is_the_general_one():
    from meldpunt.api.routes_check import _no_match, _result

    assert _no_match(7, "upload-7") == _result(7, "upload-7")
    assert _no_match(0, None) == _result(0, None)
