"""Trusted flaggers' API: POST /v1/reports and GET /v1/reports/{id}, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from meldpunt import checks
from service import World, running


def with_flaggers(world: World) -> World:
    with world.session() as session:
        for name in ("flagger-a", "flagger-b"):
            checks.create_org(session, name, "flagger")
            world.keys[name] = checks.create_key(session, name, "flagger")[1]
        session.commit()
    return world


@pytest.fixture
def world(db_url):
    with running(db_url) as world:
        yield with_flaggers(world)


def report(**given: Any) -> dict[str, Any]:
    return {"reference": "case-1", "kind": "csam", "note": "found on a forum",
            "urls": ["https://pics.example/a.jpg"], **given}  # fmt: skip


def test_a_flagger_reports_urls_and_follows_them(world):
    with world.client("flagger-a") as flagger:
        answer = flagger.post("/v1/reports", json=report(urls=[
            {"url": "HTTPS://Pics.Example/a.jpg#x", "referer": "https://forum.example/t/1"},
            {"url": "https://pics.example/b.jpg"},
            {"url": "https://pics.example/a.jpg"},
        ]))  # fmt: skip
        assert answer.status_code == 201, answer.text
        created = answer.json()
        assert created["ref"].startswith("MP-") and created["reference"] == "case-1"
        assert created["duplicates"] == 1
        assert [
            (u["position"], u["url"], u["state"], u["item_state"]) for u in created["urls"]
        ] == [
            (0, "https://pics.example/a.jpg", "received", "received"),
            (1, "https://pics.example/b.jpg", "received", "received"),
        ]
        # Plain strings do too; an open URL is linked to its item.
        strings = ["https://PICS.example:443/a.jpg", "https://pics.example/c.jpg"]
        again = flagger.post("/v1/reports", json=report(reference="case-2", urls=strings))
        assert again.status_code == 201, again.text
        linked = again.json()["urls"]
        assert [u["state"] for u in linked] == ["linked", "received"]
        assert linked[0]["item_id"] == created["urls"][0]["item_id"]

        shown = flagger.get(f"/v1/reports/{created['id']}")
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert (body["ref"], body["reference"], body["kind"], body["source"]) == (
            created["ref"], "case-1", "csam", "flagger")  # fmt: skip
        first = body["urls"][0]
        assert first["referer"] == "https://forum.example/t/1"
        assert first["given"] == "HTTPS://Pics.Example/a.jpg#x"
        assert first["state"] == "received" and first["media"] == {}
        # Its own event only: not the later report's "linked".
        assert [e["event"] for e in first["events"]] == ["received"]
        assert first["events"][0]["at"].endswith(("Z", "+00:00"))
        second = flagger.get(f"/v1/reports/{again.json()['id']}").json()
        assert [e["event"] for e in second["urls"][0]["events"]] == ["linked"]


def test_another_organisations_report_is_not_found(world):
    with world.client("flagger-a") as flagger:
        created = flagger.post("/v1/reports", json=report()).json()
    with world.client("flagger-b") as other:
        for report_id in (created["id"], created["id"] + 1000):
            answer = other.get(f"/v1/reports/{report_id}")
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"]["code"] == "not_found"
            assert created["ref"] not in answer.text
    with world.client("admin") as admin:
        assert admin.get(f"/v1/reports/{created['id']}").json()["ref"] == created["ref"]
        made = admin.post("/v1/reports", json=report(urls=["https://other.example/"]))
        assert made.status_code == 201, made.text


@pytest.mark.parametrize("role", ["platform", "analyst", None])
def test_other_roles_may_not_report(world, role):
    with world.client(role) as client:
        posted = client.post("/v1/reports", json=report())
        read = client.get("/v1/reports/1")
    expected = 401 if role is None else 403
    assert (posted.status_code, read.status_code) == (expected, expected)
    assert set(posted.json()) == {"error"}


def test_a_thousand_urls_per_call_and_not_one_more(world):
    with world.client("flagger-a") as flagger:
        urls = [f"https://bulk.example/{i}" for i in range(1001)]
        refused = flagger.post("/v1/reports", json=report(urls=urls))
        assert refused.status_code == 413, refused.text
        assert "at most 1,000 URLs" in refused.json()["error"]["message"]
        taken = flagger.post("/v1/reports", json=report(urls=urls[:1000]))
        assert taken.status_code == 201, taken.text
        assert len(taken.json()["urls"]) == 1000
        shown = flagger.get(f"/v1/reports/{taken.json()['id']}").json()
        assert len(shown["urls"]) == 1000 and {u["state"] for u in shown["urls"]} == {"received"}


def test_a_bad_url_refuses_the_whole_call_naming_its_position(world):
    with world.client("flagger-a") as flagger:
        urls = ["https://ok.example/1", "https://ok.example/2", "ftp://files.example/x",
                {"url": "https://ok.example/3"}]  # fmt: skip
        mixed = flagger.post("/v1/reports", json=report(urls=urls))
        assert mixed.status_code == 422  # strings and objects are not mixed
        answer = flagger.post("/v1/reports", json=report(urls=urls[:3] + ["http://exa mple/"]))
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_url"
        assert [p["where"] for p in error["problems"]] == ["urls.2", "urls.3"]
        assert "URL 3: only http and https" in error["message"]
        referer = flagger.post("/v1/reports", json=report(urls=[
            {"url": "https://ok.example/1", "referer": "mailto:x@example.org"}]))  # fmt: skip
        assert referer.status_code == 422 and "referer" in referer.text
        for body in (report(note="a\x00b"), report(reference="a\nb"), report(kind="spam"),
                     report(urls=[]), report(urls=["https://ok.example/\x00"]),
                     report(extra=1)):  # fmt: skip
            answer = flagger.post("/v1/reports", json=body)
            assert answer.status_code == 422, (body, answer.text)
        # Nothing of the refused calls was kept.
        created = flagger.post("/v1/reports", json=report(urls=["https://ok.example/1"])).json()
        assert created["urls"][0]["state"] == "received"


def test_the_routes_are_documented(world):
    with world.client(None) as anonymous:
        spec = anonymous.get("/openapi.json").json()
    post = spec["paths"]["/v1/reports"]["post"]
    assert post["tags"] == ["reports"] and {"201", "413", "422"} <= set(post["responses"])
    assert "good faith" in post["description"]
    get = spec["paths"]["/v1/reports/{report_id}"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ReportOut")  # fmt: skip
    kinds = spec["components"]["schemas"]["ReportKind"]["enum"]
    assert kinds == ["csam", "ncii", "other"]
