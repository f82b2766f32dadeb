"""The authority's API: the roles matrix of every new route (platform, analyst, flagger,
hoster, authority, admin, no key), a case opened from escalations, an order issued, read by its
hoster and acknowledged (another hoster's refused), fines with their review, the public
decisions without a key, and hostile input refused with a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from meldpunt import checks
from meldpunt.store import make_engine, make_sessionmaker
from notice_support import add_contact, ready_item
from service import World, running

# (method, path): the roles that may use it ("public": no key needed)
ROUTES = {
    ("GET", "/v1/escalations"): {"authority", "admin"},
    ("GET", "/v1/cases"): {"authority", "admin"},
    ("POST", "/v1/cases"): {"authority", "admin"},
    ("GET", "/v1/cases/{case_id}"): {"authority", "admin"},
    ("POST", "/v1/cases/{case_id}/items"): {"authority", "admin"},
    ("POST", "/v1/cases/{case_id}/close"): {"authority", "admin"},
    ("GET", "/v1/orders"): {"authority", "admin", "hoster"},
    ("POST", "/v1/orders"): {"authority", "admin"},
    ("GET", "/v1/orders/{order_id}"): {"authority", "admin", "hoster"},
    ("POST", "/v1/orders/{order_id}/acknowledge"): {"hoster"},
    ("POST", "/v1/orders/{order_id}/withdraw"): {"authority", "admin"},
    ("POST", "/v1/orders/{order_id}/publish"): {"authority", "admin"},
    ("POST", "/v1/orders/{order_id}/resend"): {"authority", "admin"},
    ("GET", "/v1/fines"): {"authority", "admin"},
    ("POST", "/v1/fines"): {"authority", "admin"},
    ("GET", "/v1/fines/{fine_id}"): {"authority", "admin"},
    ("POST", "/v1/fines/{fine_id}/objection"): {"authority", "admin"},
    ("POST", "/v1/fines/{fine_id}/appeal"): {"authority", "admin"},
    ("POST", "/v1/fines/{fine_id}/publish"): {"authority", "admin"},
    ("GET", "/v1/hosters/{asn}/record"): {"authority", "admin"},
    ("GET", "/v1/public/decisions"): {"public"},
}
ROLES = ("platform", "analyst", "admin", "flagger", "hoster", "authority")


@dataclass
class Bench:
    world: World
    keys: dict[str, str]
    escalated: list[int]
    other: list[int]  # escalated at the other hoster

    def client(self, who: str | None) -> httpx.Client:
        if who in self.keys:
            return self.world.client(None, headers={"Authorization": f"Bearer {self.keys[who]}"})
        return self.world.client(who)


@pytest.fixture
def bench(db_url: str, settings) -> Iterator[Bench]:
    with running(db_url, run_worker=False) as world:
        engine = make_engine(db_url)
        keys: dict[str, str] = {}
        with make_sessionmaker(engine)() as s:
            orgs = {}
            for name, kind in (("polder", "hoster"), ("dijk", "hoster"), ("atkm", "authority"),
                               ("flaggers", "flagger")):  # fmt: skip
                orgs[name] = checks.create_org(s, name, kind).id
            keys["hoster"] = checks.create_key(s, "polder", "hoster")[1]
            keys["dijk"] = checks.create_key(s, "dijk", "hoster")[1]
            keys["authority"] = checks.create_key(s, "atkm", "authority")[1]
            keys["flagger"] = checks.create_key(s, "flaggers", "flagger")[1]
            polder = add_contact(s, "polder", org_id=orgs["polder"])
            dijk = add_contact(s, "dijk", org_id=orgs["dijk"])
            escalated = [
                ready_item(s, f"http://p.example/{n}.jpg", polder, state="escalated").id
                for n in range(3)
            ]
            other = [ready_item(s, "http://d.example/1.jpg", dijk, state="escalated").id]
            s.commit()
        yield Bench(world, keys, escalated, other)
        engine.dispose()


def concrete(path: str) -> str:
    for name in ("{case_id}", "{order_id}", "{fine_id}"):
        path = path.replace(name, "999999")
    return path.replace("{asn}", "64500")


def test_every_authority_route_is_guarded(bench: Bench):
    with bench.client(None) as anonymous:
        spec = anonymous.get("/openapi.json").json()
        served = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
        assert set(ROUTES) <= served
        for (method, path), allowed in ROUTES.items():
            response = anonymous.request(method, concrete(path), json={})
            if "public" in allowed:
                assert response.status_code == 200, (method, path)
            else:
                assert response.status_code == 401, (method, path)
                assert set(response.json()) == {"error"}
    for role in ROLES:
        with bench.client(role) as client:
            for (method, path), allowed in ROUTES.items():
                response = client.request(method, concrete(path), json={})
                if role in allowed or "public" in allowed:
                    assert response.status_code not in (401, 403), (role, method, path)
                else:
                    assert response.status_code == 403, (role, method, path, response.text)
                    assert set(response.json()) == {"error"}


def test_a_case_an_order_its_hosters_view_and_acknowledgement(bench: Bench):
    with bench.client("authority") as authority:
        groups = authority.get("/v1/escalations").json()
        assert sorted(g["count"] for g in groups) == [1, 3]
        mixed = authority.post("/v1/cases", json={"items": bench.escalated + bench.other})
        assert mixed.status_code == 400 and "another hoster" in mixed.json()["error"]["message"]
        opened = authority.post("/v1/cases", json={"items": bench.escalated, "title": "Polder"})
        assert opened.status_code == 201, opened.text
        case = opened.json()
        assert case["source"] == "escalation" and len(case["items"]) == 3
        assert case["items"][0]["url"] == "http://p.example/0.jpg" and case["asn"] == 64500
        assert [g["count"] for g in authority.get("/v1/escalations").json()] == [1]

        too_long = authority.post("/v1/orders", json={"case_id": case["id"], "hours": 13,
                                                      "reasons": "Ignored notices."})  # fmt: skip
        assert too_long.status_code == 400
        assert "at most 12 hours" in too_long.json()["error"]["message"]
        nul = authority.post("/v1/orders", json={"case_id": case["id"], "reasons": "a\u0000b"})
        assert nul.status_code == 422 and set(nul.json()) == {"error"}
        huge = authority.post("/v1/orders", json={"case_id": case["id"], "reasons": "R",
                                                  "items": list(range(1, 2002))})  # fmt: skip
        assert huge.status_code == 422
        issued = authority.post("/v1/orders", json={"case_id": case["id"], "hours": 1,
                                                    "reasons": "Ignored notices.",
                                                    "items": bench.escalated[:2]})  # fmt: skip
        assert issued.status_code == 201, issued.text
        order = issued.json()
        assert order["status"] == "issued" and order["hours"] == 1
        assert [i["verdict"] for i in order["items"]] == ["online", "online"]
        assert order["recipient"] == "abuse@polder.example"
        assert authority.get(f"/v1/cases/{case['id']}").json()["orders"][0]["id"] == order["id"]

    with bench.client("hoster") as hoster:
        (mine,) = hoster.get("/v1/orders").json()
        assert mine["id"] == order["id"]
        assert hoster.get(f"/v1/orders/{order['id']}").status_code == 200
        acknowledged = hoster.post(f"/v1/orders/{order['id']}/acknowledge")
        assert acknowledged.status_code == 200, acknowledged.text
        assert acknowledged.json()["acknowledged_by"] == "hoster:polder"
        assert acknowledged.json()["delivered_at"] is not None
    with bench.client("dijk") as other:
        assert other.get("/v1/orders").json() == []
        assert other.get(f"/v1/orders/{order['id']}").status_code == 403
        refused = other.post(f"/v1/orders/{order['id']}/acknowledge")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert other.post("/v1/orders/999999/acknowledge").status_code == 404

    with bench.client(None) as public:
        assert public.get("/v1/public/decisions").json()["total"] == 0
    with bench.client("authority") as authority:
        assert authority.post(f"/v1/orders/{order['id']}/publish").status_code == 200
        fine = authority.post("/v1/fines", json={"case_id": case["id"], "amount_euros": 25000,
                                                 "legal_basis": "Art. 2", "reasons": "Ignored.",
                                                 "public": True})  # fmt: skip
        assert fine.status_code == 201, fine.text
        by_share = {"case_id": case["id"], "share": 0.02, "legal_basis": "Art. 2", "reasons": "R"}
        share = authority.post("/v1/fines", json=by_share)
        assert share.status_code == 400 and "turnover" in share.json()["error"]["message"]
        fine_id = fine.json()["id"]
        objected = authority.post(f"/v1/fines/{fine_id}/objection", json={"note": "too high"})
        assert objected.status_code == 200 and objected.json()["objection_at"]
        reduced = authority.post(f"/v1/fines/{fine_id}/objection",
                                 json={"outcome": "reduced", "amount_euros": 10000})  # fmt: skip
        assert reduced.json()["final_cents"] == 1_000_000
        assert authority.post(f"/v1/fines/{fine_id}/appeal", json={}).status_code == 200
        annulled = authority.post(f"/v1/fines/{fine_id}/appeal", json={"outcome": "annulled"})
        assert annulled.json()["final_cents"] == 0
        record = authority.get("/v1/hosters/64500/record").json()
        assert record["totals"]["orders"] == 1 and record["totals"]["fines"] == 1
        withdrawn = authority.post(f"/v1/orders/{order['id']}/withdraw", json={"note": "test"})
        assert withdrawn.json()["status"] == "withdrawn"
        assert authority.post(f"/v1/orders/{order['id']}/withdraw", json={}).status_code == 409
        closed = authority.post(f"/v1/cases/{case['id']}/close", json={})
        assert closed.json()["state"] == "closed"
    with bench.client(None) as public:
        shown = public.get("/v1/public/decisions").json()
        assert shown["total"] == 2
        assert sorted(d["kind"] for d in shown["decisions"]) == ["fine", "order"]
        assert "p.example" not in str(shown)  # never the URLs
        assert public.get("/v1/public/decisions?limit=1000").status_code == 422
