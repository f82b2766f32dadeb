"""Text the database cannot store never gets that far: every text field of every route refuses
NUL and other control characters with a JSON error, alike on SQLite and PostgreSQL; names that
the pages could not serve are refused; one platform's bad text never fails another's checks.

The fields are enumerated from the service's own OpenAPI document, so a route or field added
later without a place here makes the test fail instead of going untested."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from meldpunt import checks, clock
from meldpunt.registry import selfcases
from meldpunt.store.db import begin_write
from meldpunt.store.models import AbuseContact, Notice, NoticeItem
from notice_support import add_contact, ready_item
from service import World, running
from web_support import csrf_of, sign_in

BAD = ["\x00", "\x1b", "\x7f", "\x85"]  # NUL, ESC, DEL, a C1 control (NEL)

# A request that succeeds, per route that takes a JSON body; the role that may send it.
PICTURE = {"pdq": "a5" * 32, "quality": 90, "md5": "3c" * 16, "orientations": ["5a" * 32]}

BODIES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("POST", "/v1/sets"): (
        "analyst",
        {"name": "nl-2026", "kind": "blocklist", "description": "from the hotline",
         "source_org": "hotline", "default_category": "csam_baseline"},
    ),
    ("POST", "/v1/sets/{name}/items"): (
        "analyst",
        {"signals": [{"type": "md5", "value": "0" * 31 + "1"}], "category": "A1",
         "category_scheme": "industry", "reference": "case 12", "note": "seen twice"},
    ),
    ("POST", "/v1/sets/{name}/items/{item_id}/withdraw"): (
        "analyst", {"reason": "listed twice"}
    ),
    ("PUT", "/v1/sets/{name}/ways"): ("analyst", {"off": ["verified"], "on": ["trimmed"]}),
    ("POST", "/v1/orgs"): (
        "admin", {"name": "platform-c", "kind": "platform", "contact_email": "abuse@c.example"}
    ),
    ("POST", "/v1/orgs/{name}/keys"): ("admin", {"role": "platform", "label": "uploads"}),
    ("PUT", "/v1/orgs/{name}/subscription"): (
        "admin", {"sets": ["police"], "categories": ["csam_baseline"]}
    ),
    ("POST", "/v1/hits/{hit_id}/outcome"): (
        "platform", {"outcome": "other", "report_id": "r-1", "reason": "kept for the police"}
    ),
    ("POST", "/v1/items/{item_id}/grade"): ("analyst", {"grade": "illegal", "category": "csam"}),
    ("POST", "/v1/notices/{notice_id}/answer"): (
        "hoster",
        {"answers": [{"url": "http://hoster.example/1.jpg", "answer": "other",
                      "note": "kept for the police"}], "note": "see above"},
    ),
    ("POST", "/v1/check"): (
        "platform",
        {"items": [{"signals": [{"type": "md5", "value": "KNOWN"}], "ref": "upload-1",
                    "url": "https://media.example/1.jpg"}]},
    ),
    ("POST", "/v1/reports"): (
        "admin",
        {"reference": "case 12", "kind": "csam", "note": "seen twice",
         "urls": [{"url": "https://media.example/1.jpg", "referer": "https://forum.example/"}]},
    ),
    # the authority's (what they act on is made by ``authority_things``)
    ("POST", "/v1/cases"): (
        "admin", {"url": "https://media.example/9.jpg", "title": "a case", "note": "see above"}
    ),
    ("POST", "/v1/orders"): (
        "admin", {"case_id": 1, "reasons": "ignored", "legal_basis": "the act",
                  "recipient": "abuse@hoster.example"},
    ),
    ("POST", "/v1/orders/{order_id}/withdraw"): ("admin", {"note": "withdrawn"}),
    ("POST", "/v1/cases/{case_id}/close"): ("admin", {"note": "closed"}),
    ("POST", "/v1/fines"): (
        "admin", {"asn": 64500, "amount_euros": 100, "legal_basis": "the act", "reasons": "ignored"}
    ),
    ("POST", "/v1/fines/{fine_id}/objection"): ("admin", {"outcome": "upheld", "note": "heard"}),
    ("POST", "/v1/fines/{fine_id}/appeal"): ("admin", {"outcome": "reduced", "amount_euros": 5,
                                                       "note": "judged"}),
    # self-hashing: no key needed (one is ignored); add comes before withdraw
    ("POST", "/v1/protect/cases"): ("admin", {"adult": True, "own_pictures": True,
                                              "pin": "tulip-7391", "pictures": [PICTURE]}),
    ("POST", "/v1/protect/cases/{number}"): ("admin", {"pin": "tulip-7391"}),
    ("POST", "/v1/protect/cases/{number}/pictures"): ("admin", {"pin": "tulip-7391",
                                                                "pictures": [PICTURE]}),
    ("POST", "/v1/protect/cases/{number}/withdraw"): ("admin", {"pin": "tulip-7391"}),
}  # fmt: skip

# A request that succeeds, per route that takes a multipart form (with one picture as its
# 'file'): the role that may send it and its text fields.
FORMS: dict[tuple[str, str], tuple[str, dict[str, str]]] = {
    ("POST", "/v1/check"): ("platform", {"ref": "upload-1"}),
    ("POST", "/v1/sets/{name}/pictures"): ("analyst", {"category": "A1"}),
}

# A field that only another shape of the body has (a list of strings instead of objects): the
# body that has it.
OTHER_SHAPES: dict[tuple[str, str, str], dict[str, Any]] = {
    ("POST", "/v1/reports", "urls[]"): {"kind": "csam", "urls": ["https://media.example/2.jpg"]},
}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def string_fields(spec: dict[str, Any], schema: dict[str, Any], at: str = "") -> set[str]:
    """The paths of every string in a request schema: ``items[].signals[].type``."""
    schema = _resolve(spec, schema)
    found: set[str] = set()
    for option in schema.get("anyOf", []):
        found |= string_fields(spec, option, at)
    if schema.get("type") == "string":
        found.add(at)
    for name, sub in schema.get("properties", {}).items():
        found |= string_fields(spec, sub, f"{at}.{name}" if at else name)
    if "items" in schema:
        found |= string_fields(spec, schema["items"], f"{at}[]")
    return found


def with_value(body: Any, path: str, change: Any) -> Any:
    """A copy of ``body`` whose string at ``path`` is ``change(old)``."""
    if not path:
        return change(body)
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        head = head[:-2]
        items = list(body[head])
        items[0] = with_value(items[0], rest, change)
        return {**body, head: items}
    return {**body, head: with_value(body[head], rest, change)}


def concrete(path: str, hit_id: int, notice_id: int = 1, number: str = "NC-0") -> str:
    name = "platform-a" if path.startswith("/v1/orgs/") else "police"
    path = path.replace("{number}", number)
    path = path.replace("{name}", name).replace("{hit_id}", str(hit_id)).replace("{item_id}", "1")
    fine = "2" if path.endswith("/appeal") else "1"  # see authority_things
    path = path.replace("{case_id}", "1").replace("{order_id}", "1").replace("{fine_id}", fine)
    return path.replace("{notice_id}", str(notice_id))


def a_notice(world: World) -> tuple[str, int]:
    """A hoster's key, and a notice sent to that hoster's abuse contact."""
    with world.session() as s:
        checks.create_org(s, "hoster-a", "hoster")
        _, key = checks.create_key(s, "hoster-a", "hoster")
        contact = add_contact(s, "desk-a", org_id=checks.get_org(s, "hoster-a").id)
        item = ready_item(s, "http://hoster.example/1.jpg", contact, state="noticed")
        notice = Notice(
            contact_id=contact.id,
            kind="notice",
            status="sent",
            attempts=1,
            created_at=clock.now(),
            sent_at=clock.now(),
            message_id="<n-1@x>",
        )
        s.add(notice)
        s.flush()
        s.add(NoticeItem(notice_id=notice.id, item_id=item.id))
        s.commit()
        return key, notice.id


def authority_things(world: World) -> None:
    """Case 1 on an escalated item of desk-a (AS64500); fine 1 with an objection to decide,
    fine 2 with an appeal to decide."""
    from meldpunt.authority import cases, fines
    from meldpunt.config import get_settings

    with world.session() as s:
        begin_write(s)  # the service's worker writes too (SQLite: read, then write fails)
        contact = checks.get_org(s, "hoster-a")
        desk = s.scalars(select(AbuseContact).where(AbuseContact.name == "desk-a")).one()
        item = ready_item(s, "http://hoster.example/2.jpg", desk, state="escalated")
        cases.open_case(s, actor="test", item_ids=[item.id])
        terms = {"actor": "test", "legal_basis": "the act", "reasons": "r", "asn": desk.asn}
        first = fines.impose_fine(s, get_settings(), amount_euros=100, **terms)
        fines.record_objection(s, first.id, actor="test")
        second = fines.impose_fine(s, get_settings(), amount_euros=100, **terms)
        fines.record_objection(s, second.id, actor="test")
        fines.decide_objection(s, second.id, "upheld", actor="test")
        fines.record_appeal(s, second.id, actor="test")
        s.commit()
        assert (first.id, second.id, contact.id) == (1, 2, contact.id)


def known_body(world: World, body: dict[str, Any]) -> dict[str, Any]:
    return with_value(body, "items[].signals[].value", lambda _: world.known_md5)


def a_hit(world: World) -> int:
    with world.client("platform") as client:
        answer = client.post("/v1/check", json={"items": [{"signals": [
            {"type": "md5", "value": world.known_md5}]}]}).json()  # fmt: skip
    return int(answer["results"][0]["matches"][0]["hit_id"])


def a_queued_item(world: World) -> int:
    """A hotline item waiting for a grade (the first one: ``concrete`` names item 1)."""
    from meldpunt.reports import items

    with world.session() as session:
        item, _ = items.open_item(session, "http://pictures.example/1.jpg", kind="csam",
                                  actor="test")  # fmt: skip
        items.move(session, item, "queued", actor="test")
        session.commit()
        return item.id


def a_case(world: World) -> str:
    """A self-hashing case (PIN tulip-7391); its number."""
    with world.session() as session:
        view = selfcases.open_case(session, "tulip-7391", [selfcases.Picture("c3" * 32, 90)])
        session.commit()
        return view.number


def assert_json_error(response: httpx.Response, status: int, where: Any) -> None:
    assert response.status_code == status, (where, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), where
    assert set(response.json()["error"]) >= {"code", "message"}, where


def assert_refused(response: httpx.Response, path: str, where: Any) -> None:
    """Bad text in a check goes no further than its item: the batch goes on, the item gets an
    error and is not checked; any other route refuses the request with a JSON 422."""
    if path == "/v1/check":
        assert response.status_code == 200, (where, response.text[:300])
        (result,) = response.json()["results"]
        assert result["error"] and not result["match"], where
    else:
        assert_json_error(response, 422, where)


def test_every_text_field_of_every_route_refuses_control_characters(db_url):
    with running(db_url) as world:
        with world.client(None) as anonymous:
            spec = anonymous.get("/openapi.json").json()
        hit_id = a_hit(world)
        assert a_queued_item(world) == 1
        number = a_case(world)
        hoster_key, notice_id = a_notice(world)
        authority_things(world)
        clients = {role: world.client(role) for role in ("platform", "analyst", "admin")}
        clients["hoster"] = world.client(None, headers={"Authorization": f"Bearer {hoster_key}"})
        tried = 0
        for (method, path), operation in (
            ((m.upper(), p), op) for p, ops in spec["paths"].items() for m, op in ops.items()
        ):
            json_body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if json_body is None:
                continue
            fields = string_fields(spec, json_body["schema"])
            if not fields:
                continue  # a body without text (PATCH /v1/orgs/{name} takes one flag)
            assert (method, path) in BODIES, f"{method} {path} takes text: add it to BODIES"
            role, body = BODIES[(method, path)]
            if path == "/v1/check":
                body = known_body(world, body)
            for field in sorted(fields):
                shaped = OTHER_SHAPES.get((method, path, field), body)
                for bad in BAD:
                    sent = with_value(shaped, field, lambda v, bad=bad: f"{v[:2]}{bad}{v[2:]}")
                    response = clients[role].request(
                        method, concrete(path, hit_id, notice_id, number), json=sent
                    )
                    tried += 1
                    assert_refused(response, path, (method, path, field, bad))
        assert tried >= 4 * 20
        # The bodies themselves are fine: each route accepts its own.
        shapes = [((m, p), (BODIES[(m, p)][0], body)) for (m, p, _), body in OTHER_SHAPES.items()]
        for (method, path), (role, body) in [*BODIES.items(), *shapes]:
            if path == "/v1/check":
                body = known_body(world, body)
            response = clients[role].request(
                method, concrete(path, hit_id, notice_id, number), json=body
            )
            assert response.status_code < 300, (method, path, response.text[:300])
        for client in clients.values():
            client.close()


def form_text_fields(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The text fields of a multipart form's schema (files, strings of format binary, aside)."""
    found = set()
    for name, sub in _resolve(spec, schema).get("properties", {}).items():
        sub = sub.get("items", sub)
        if sub.get("type") == "string" and sub.get("format") != "binary":
            found.add(name)
    return found


def test_every_text_field_of_every_form_refuses_control_characters(db_url):
    """The multipart forms (files with text fields beside them) follow the same rules: a bad
    ref is its file's item error, a bad category refuses the request; nothing is written."""
    from imaging import jpeg, photo
    from meldpunt.store.models import Item

    picture = {"file": ("upload.jpg", jpeg(photo("rocket")), "image/jpeg")}

    def entries() -> int:
        with world.session() as session:
            return len(session.scalars(select(Item.id)).all())

    with running(db_url) as world:
        with world.client(None) as anonymous:
            spec = anonymous.get("/openapi.json").json()
        clients = {role: world.client(role) for role in ("platform", "analyst")}
        before, tried = entries(), 0
        for path, ops in spec["paths"].items():
            for method, operation in ops.items():
                content = operation.get("requestBody", {}).get("content", {})
                if "multipart/form-data" not in content:
                    continue
                fields = form_text_fields(spec, content["multipart/form-data"]["schema"])
                key = (method.upper(), path)
                assert key in FORMS, f"{key} takes a form: add it to FORMS"
                role, body = FORMS[key]
                assert fields == set(body), (key, fields)
                for field in sorted(fields):
                    for bad in BAD:
                        sent = {**body, field: f"{body[field][:1]}{bad}{body[field][1:]}"}
                        response = clients[role].post(concrete(path, 1), files=picture, data=sent)
                        tried += 1
                        assert_refused(response, path, (key, field, bad))
                assert entries() == before, key
                accepted = clients[role].post(concrete(path, 1), files=picture, data=body)
                assert accepted.status_code < 300, (key, accepted.text[:300])
        assert tried == len(BAD) * sum(len(body) for _, body in FORMS.values())
        for client in clients.values():
            client.close()


def test_names_in_paths_and_queries_that_no_set_can_have_are_not_found(db_url):
    with running(db_url) as world:
        with world.client("admin") as admin:
            for name in ("po%00lice", "a%1Bb", "a%2Fb", "x%E2%80%AEy"):
                for method, path, body in (
                    ("POST", f"/v1/sets/{name}/items",
                     {"signals": [{"type": "md5", "value": "0" * 32}]}),
                    ("POST", f"/v1/orgs/{name}/keys", {"role": "platform"}),
                    ("PUT", f"/v1/orgs/{name}/subscription", {"sets": None}),
                ):  # fmt: skip
                    response = admin.request(method, path, json=body)
                    assert response.status_code in (404, 422), (path, response.text[:200])
                    assert response.json()["error"]["message"], path
        with world.client("platform") as platform:
            response = platform.get("/m/lookup", params={"signal": "0\x00", "signal_type": "md5"})
            assert_json_error(response, 400, "lookup")
            response = platform.get("/m/lookup", params={"signal": "0" * 32, "signal_type": "m\0"})
            assert_json_error(response, 400, "lookup")


@pytest.mark.parametrize(
    "name", ["a/b", "../x", "a\\b", "x..y", "tab\there", "line\nbreak", "x\u202ey", "", "   "]
)
def test_names_the_pages_cannot_serve_are_refused(db_url, name):
    with running(db_url) as world:
        with world.client("analyst") as analyst:
            assert_json_error(analyst.post("/v1/sets", json={"name": name}), 422, name)
        with world.client("admin") as admin:
            org = {"name": name, "kind": "platform"}
            assert_json_error(admin.post("/v1/orgs", json=org), 422, name)
            key = {"role": "platform", "label": name}
            assert_json_error(admin.post("/v1/orgs/hotline/keys", json=key), 422, name)
            assert name not in {s["name"] for s in admin.get("/v1/sets").json()}


def test_names_keep_no_surrounding_spaces_and_free_text_keeps_its_lines(db_url):
    with running(db_url) as world, world.client("analyst") as analyst:
        created = analyst.post("/v1/sets", json={"name": "  nl 2026 ", "description": "a\nb"})
        assert created.status_code == 201, created.text
        assert (created.json()["name"], created.json()["description"]) == ("nl 2026", "a\nb")
        item = {"signals": [{"type": "md5", "value": "1" * 32}], "note": "one\n\ttwo"}
        added = analyst.post("/v1/sets/nl 2026/items", json=item)
        assert added.status_code == 201, added.text
        assert added.json()["item"]["note"] == "one\n\ttwo"
        # One-line values take no line breaks.
        item = {"signals": [{"type": "md5", "value": "2" * 32}], "reference": "a\nb"}
        assert_json_error(analyst.post("/v1/sets/nl 2026/items", json=item), 422, "ref")


def test_one_platforms_bad_text_never_fails_anothers_checks(db_url):
    # A real server: four threads at once through the in-process test transport sometimes lost
    # a request body in the transport itself, which said nothing about meldpunt.
    with running(db_url, loopback=True, rate_per_second=0) as world:
        good_item = {"signals": [{"type": "md5", "value": world.known_md5}], "ref": "fine"}
        bad_item = {"signals": [{"type": "md5", "value": world.known_md5}], "ref": "bad\x00"}
        failures: list[str] = []

        def platform(role: str, item: dict[str, Any]) -> None:
            try:
                check(role, item)
            except Exception as exc:  # a request that failed counts, not just a wrong answer
                failures.append(f"{role}: {exc!r}")

        def check(role: str, item: dict[str, Any]) -> None:
            with world.client(role) as client:
                for _ in range(15):
                    response = client.post("/v1/check", json={"items": [item, good_item]})
                    if response.status_code != 200:
                        failures.append(f"{role}: {response.status_code} {response.text[:100]}")
                        continue
                    results = response.json()["results"]
                    if not results[1]["match"] or (role == "platform_b" and results[0]["error"]):
                        failures.append(f"{role}: {results}")

        threads = [
            threading.Thread(target=platform, args=("platform", bad_item)),
            threading.Thread(target=platform, args=("platform", bad_item)),
            threading.Thread(target=platform, args=("platform_b", good_item)),
            threading.Thread(target=platform, args=("platform_b", good_item)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []


def test_the_pages_refuse_the_same_text(db_url):
    """The pages' forms, paths and searches go through the same rules: an error page or a flash
    message, never a server error, and nothing stored."""
    with running(db_url) as world, sign_in(world, "admin") as client:
        csrf = csrf_of(client.get("/ui/sets").text)
        for name in ("a/b", "../x", "nul\x00", "esc\x1b"):
            created = client.post("/ui/sets", data={"name": name, "csrf": csrf})
            assert created.status_code == 303, (name, created.text[:200])
            flashed = client.get(created.headers["location"]).text
            assert "cannot contain" in flashed or "are not accepted" in flashed, name
            client.post("/ui/orgs", data={"name": name, "kind": "platform", "csrf": csrf})
        described = client.post(
            "/ui/sets", data={"name": "fine", "description": "nul\x00", "csrf": csrf}
        )
        assert described.status_code == 303
        names = {s["name"] for s in world.client("admin").get("/v1/sets").json()}
        assert names == {"police"}
        orgs = {o["name"] for o in world.client("admin").get("/v1/orgs").json()}
        assert orgs == {"platform-a", "platform-b", "hotline"}
        for path in ("/ui/sets/po%00lice", "/ui/orgs/x%00y", "/ui/sets/police?q=a%00b"):
            response = client.get(path)
            assert response.status_code in (200, 404), (path, response.text[:200])
