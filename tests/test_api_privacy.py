"""What a platform can learn from the check service, over real HTTP on SQLite and PostgreSQL.

The attack these tests replay: take a near copy of a listed picture (here its hash with ten bits
flipped) and check it together with its 256 one-bit changes. With distances in the answers, a
change that brings the distance down marks a bit where the listed hash differs, so one request
spells the listed hash out. Without distances every answer is the same ``match: true``, and the
probing detector throttles the key, records an alert in the audit log and shows it to admins.
"""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from sqlalchemy import select
from starlette.requests import Request

from meldpunt.api.app import check_metrics_access
from meldpunt.api.errors import ApiError
from meldpunt.store.models import AuditEvent
from service import World, running, service_settings, serving
from web_support import csrf_of, sign_in


def flip(value: str, bits: list[int]) -> str:
    number = int(value, 16)
    for bit in bits:
        number ^= 1 << bit
    return f"{number:064x}"


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def oracle_items(listed: str) -> list[str]:
    """A near copy (10 bits away) and its 256 one-bit changes: 257 hashes."""
    near = flip(listed, [3, 40, 77, 100, 131, 160, 199, 201, 230, 250])
    return [near] + [flip(near, [bit]) for bit in range(256)]


def recover(items: list[str], distances: list[int]) -> str:
    """The listed hash, from the distances of ``oracle_items``' answers."""
    near, base = items[0], distances[0]
    return flip(near, [bit for bit in range(256) if distances[bit + 1] < base])


def body(hashes: list[str]) -> dict:
    return {"items": [{"signals": [{"type": "pdq", "value": h}]} for h in hashes]}


def alerts(world: World) -> list[dict]:
    with world.client("admin") as admin:
        found = admin.get("/v1/probing-alerts")
    assert found.status_code == 200, found.text
    return found.json()


@pytest.fixture
def world(db_url):
    with running(db_url) as w:
        yield w


@pytest.fixture(params=[True, False], ids=["check-lane", "fastapi"])
def either_world(db_url, request):
    """The service with and without the check lane in front (both answer the hot routes)."""
    with running(db_url, check_lane=request.param) as w:
        yield w


def test_the_257_item_oracle_attack_leaks_nothing_and_is_caught(either_world: World):
    world = either_world
    items = oracle_items(world.known_pdq)
    # the attack itself is sound: given the distances, it spells out the listed hash
    assert recover(items, [hamming(i, world.known_pdq) for i in items]) == world.known_pdq

    with world.client() as client:
        answer = client.post("/v1/check", json=body(items))
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert all(r["match"] for r in results)
        shown = {json.dumps({k: v for k, v in r["matches"][0].items() if k != "hit_id"})
                 for r in results}  # fmt: skip
        # the same for every item: nothing about distances ("reviewed" is the set's, not the hit's)
        assert shown == {
            '{"set": "police", "category": "csam_baseline", "signal_type": "pdq", "way": "plain", '
            '"reviewed": true}'
        }
        assert "distance" not in answer.text

        # the key is throttled: 429 with Retry-After, on every check route
        again = client.post("/v1/check", json=body([secrets.token_hex(32)]))
        assert again.status_code == 429 and again.json()["error"]["code"] == "throttled"
        assert int(again.headers["Retry-After"]) >= 1
        lookup = client.get("/m/lookup", params={"signal": secrets.token_hex(32)})
        assert lookup.status_code == 429
    with world.client("platform_b") as other:  # nobody else is slowed down
        assert other.post("/v1/check", json=body([world.known_pdq])).status_code == 200

    (alert,) = alerts(world)
    assert alert["org_name"] == "platform-a" and alert["reason"] == "close_queries"
    assert world.known_pdq not in json.dumps(alert)
    with world.session() as session:
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "checks.probing.detected")
        ).all()
        assert event.subject_type == "api_key" and json.loads(event.details)["org_id"]

    # the hotline sees it on its pages
    with sign_in(world, "admin") as pages:
        shown = pages.get("/ui/probing").text
        assert "platform-a" in shown and "matching checks within 8 bits" in shown

    # a restarted service still throttles the key
    key = {"Authorization": f"Bearer {world.keys['platform']}"}
    with serving(service_settings(world.db_url)) as url, httpx.Client(base_url=url) as client:
        assert client.post("/v1/check", json=body([items[0]]), headers=key).status_code == 429


def test_distances_are_an_admins_decision_and_small_requests_are_caught_too(world: World):
    near = flip(world.known_pdq, list(range(0, 63, 7)))
    with world.client() as client:
        (result,) = client.post("/v1/check", json=body([near])).json()["results"]
        assert "distance" not in result["matches"][0]
        (hma,) = client.get("/m/lookup", params={"signal": near}).json()["police"]
        assert set(hma) == {"bank_content_id"}
        (hit,) = [h for h in client.get("/v1/hits").json() if h["id"] == hma["bank_content_id"]]
        assert hit["distance"] is None
        uploaded = client.post("/v1/check", files={"file": ("a.jpg", world.known_jpeg)})
        assert uploaded.json()["results"][0]["match"] and "distance" not in uploaded.text
    with sign_in(world, "platform") as pages:
        assert "distance" not in pages.get("/ui/hits").text

    with world.client("admin") as admin:
        changed = admin.patch("/v1/orgs/platform-a", json={"show_distances": True})
        assert changed.status_code == 200 and changed.json()["show_distances"] is True
        refused = world.client().patch("/v1/orgs/platform-a", json={"show_distances": True})
        assert refused.status_code == 403
    with sign_in(world, "admin") as pages:  # the org page says so, and can switch it back
        org_page = pages.get("/ui/orgs/platform-b").text
        assert "Answers do not show distances." in org_page
        toggled = pages.post("/ui/orgs/platform-b/distances",
                             data={"csrf": csrf_of(org_page), "show": "true"})  # fmt: skip
        assert toggled.status_code == 303
        assert "Answers show distances." in pages.get("/ui/orgs/platform-b").text
    with world.session() as session:
        assert session.scalar(
            select(AuditEvent.id).where(AuditEvent.action == "checks.org.distances_shown")
        )

    items = oracle_items(world.known_pdq)
    learned: dict[int, int] = {}
    with world.client() as client:
        (result,) = client.post("/v1/check", json=body([near])).json()["results"]
        assert result["matches"][0]["distance"] == 9
        (hma,) = client.get("/m/lookup", params={"signal": near}).json()["police"]
        assert hma["distance"] == "9"
        # the same attack, five items a request
        for start in range(0, len(items), 5):
            answer = client.post("/v1/check", json=body(items[start : start + 5]))
            if answer.status_code == 429:
                break
            for offset, r in enumerate(answer.json()["results"]):
                if "distance" in r["matches"][0]:
                    learned[start + offset] = r["matches"][0]["distance"]
        else:
            pytest.fail("257 probing checks in small requests were never throttled")
    assert len(learned) < 40  # of the 257 distances the attack needs
    (alert,) = alerts(world)
    assert alert["org_name"] == "platform-a"


def test_a_platforms_normal_traffic_is_not_taken_for_probing(world: World):
    with world.client() as client:
        for _ in range(6):  # unrelated pictures
            hashes = [secrets.token_hex(32) for _ in range(100)]
            assert client.post("/v1/check", json=body(hashes)).status_code == 200
        for _ in range(40):  # the same listed picture uploaded again and again
            answer = client.post("/v1/check", json=body([world.known_pdq]))
            assert answer.status_code == 200 and answer.json()["results"][0]["match"]
        # a few re-encodings of it: close to one another, but a handful
        variants = [flip(world.known_pdq, [i, i + 50]) for i in range(8)]
        assert client.post("/v1/check", json=body(variants)).status_code == 200
        assert client.post("/v1/check", json=body([world.known_pdq])).status_code == 200
    assert alerts(world) == []


def test_hit_ids_do_not_count_other_platforms_hits(world: World):
    with world.client() as a, world.client("platform_b") as b:

        def hit_id(client) -> int:
            answer = client.post("/v1/check", json=body([world.known_pdq])).json()
            return answer["results"][0]["matches"][0]["hit_id"]

        first = hit_id(a)
        for _ in range(20):
            hit_id(b)
        second = hit_id(a)
        assert abs(second - first) > 1000 and 0 < first < 2**53 and 0 < second < 2**53
        assert a.get(f"/v1/hits/{second}").json()["id"] == second
        done = a.post(f"/v1/hits/{first}/outcome", json={"outcome": "blocked"})
        assert done.status_code == 200 and done.json()["id"] == first
        assert b.get(f"/v1/hits/{first}").status_code == 404


def test_metrics_need_the_token_and_name_no_organisation_unless_asked(db_url):
    token = secrets.token_urlsafe(24)
    with running(db_url, metrics_token=token) as world, world.client(None) as client:
        client.post("/v1/check", json=body([world.known_pdq]),
                    headers={"Authorization": f"Bearer {world.keys['platform']}"})  # fmt: skip
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
        shown = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert shown.status_code == 200 and "meldpunt_checks_total 1.0" in shown.text
        assert "platform-a" not in shown.text and "org=" not in shown.text


def test_metrics_labels_organisations_only_when_asked(db_url):
    with (
        running(db_url, loopback=True, metrics_org_labels=True) as world,
        world.client(None) as client,
    ):
        client.post("/v1/check", json=body([world.known_pdq]),
                    headers={"Authorization": f"Bearer {world.keys['platform']}"})  # fmt: skip
        text = client.get("/metrics").text  # from the loopback address: no token needed
        assert 'meldpunt_checks_total{org="platform-a"} 1.0' in text


@pytest.mark.parametrize(
    ("client", "token", "header", "status"),
    [
        ("203.0.113.5", None, None, 403),  # no token set: loopback only
        ("127.0.0.1", None, None, None),
        ("::1", None, None, None),
        ("203.0.113.5", "t" * 20, None, 401),
        ("127.0.0.1", "t" * 20, None, 401),  # a token, once set, is needed from loopback too
        ("203.0.113.5", "t" * 20, "Bearer " + "t" * 20, None),
    ],
)
def test_who_may_read_metrics(client, token, header, status):
    headers = [(b"authorization", header.encode())] if header else []
    request = Request({"type": "http", "headers": headers, "client": (client, 40000)})
    if status is None:
        check_metrics_access(request, token)
        return
    with pytest.raises(ApiError) as refused:
        check_metrics_access(request, token)
    assert refused.value.status == status
