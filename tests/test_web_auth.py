"""Signing in to the pages, CSRF tokens and roles, over plain HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from meldpunt.clock import FrozenClock, use_clock
from meldpunt.web.sessions import SessionStore
from service import World, running
from web_support import browser_client, csrf_of, sign_in


@pytest.fixture
def world(db_url):
    with running(db_url) as w:
        yield w


PAGES = ["/ui/", "/ui/sets", "/ui/sets/police", "/ui/check", "/ui/reviews", "/ui/hits",
         "/ui/orgs", "/ui/orgs/platform-a", "/ui/sets/police/export?format=jsonl"]  # fmt: skip


def test_without_a_session_every_page_sends_you_to_sign_in(world: World):
    with browser_client(world) as client:
        assert client.get("/").headers["location"] == "/ui/"
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/ui/sign-in?next=/ui/"), path
        response = client.post("/ui/sets", data={"name": "x"})
        assert response.status_code == 303 and response.headers["location"] == "/ui/sign-in"
        htmx = client.post("/ui/keys/1/revoke", headers={"HX-Request": "true"})
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/ui/sign-in"


def test_sign_in_sets_a_strict_http_only_cookie_and_a_new_session_id(world: World):
    with browser_client(world) as client:
        form = client.get("/ui/sign-in")
        before = client.cookies["meldpunt_session"]
        cookie = form.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
        fields = {"key": world.keys["admin"], "csrf": csrf_of(form.text), "next": "/ui/sets"}
        answer = client.post("/ui/sign-in", data=fields)
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/sets"
        after = client.cookies["meldpunt_session"]
        assert after != before and world.keys["admin"] not in answer.headers["set-cookie"]
        assert client.get("/ui/sets").status_code == 200
        # the session id from before sign-in is worth nothing now
        client.cookies.set("meldpunt_session", before, path="/ui")
        assert client.get("/ui/sets").status_code == 303


def test_a_wrong_key_or_a_foreign_next_does_not_get_in(world: World):
    with browser_client(world) as client:
        form = client.get("/ui/sign-in")
        token = csrf_of(form.text)
        wrong = client.post("/ui/sign-in", data={"key": "mp_" + "x" * 40, "csrf": token})
        assert wrong.status_code == 401 and "unknown, revoked or expired" in wrong.text
        ok = client.post("/ui/sign-in", data={"key": world.keys["analyst"], "csrf": token,
                                              "next": "//evil.example/ui/"})  # fmt: skip
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/"


def test_the_sign_in_form_needs_its_own_token(world: World):
    with browser_client(world) as client:
        client.get("/ui/sign-in")
        refused = client.post("/ui/sign-in", data={"key": world.keys["admin"]})
        assert refused.status_code == 403 and "Form refused" in refused.text
    with browser_client(world) as fresh:  # no anonymous session at all
        refused = fresh.post("/ui/sign-in", data={"key": world.keys["admin"], "csrf": "x"})
        assert refused.status_code == 403


def test_a_post_without_the_sessions_csrf_token_is_refused(world: World):
    with sign_in(world, "admin") as client:
        token = csrf_of(client.get("/ui/sets").text)
        for data, headers in [
            ({"name": "sneaky"}, {}),
            ({"name": "sneaky", "csrf": "forged"}, {}),
            ({"name": "sneaky", "csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
            ({"name": "sneaky", "csrf": token}, {"Origin": "http://evil.example"}),
        ]:
            response = client.post("/ui/sets", data=data, headers=headers)
            assert response.status_code == 403, (data, headers)
            assert "Form refused" in response.text
        assert "sneaky" not in client.get("/ui/sets").text
        made = client.post("/ui/sets", data={"name": "honest", "csrf": token})
        assert made.status_code == 303 and made.headers["location"] == "/ui/sets/honest"
        header_token = client.post("/ui/sets", data={"name": "via-header"},
                                   headers={"X-CSRF-Token": token})  # fmt: skip
        assert header_token.status_code == 303
        # another session's token does not work here
        with sign_in(world, "admin") as other:
            theirs = csrf_of(other.get("/ui/sets").text)
        assert client.post("/ui/sets", data={"name": "x", "csrf": theirs}).status_code == 403


def test_roles_decide_the_pages(world: World):
    for role, signal, ref in (("platform", ("pdq", world.known_pdq), "upload-a"),
                              ("platform_b", ("md5", world.known_md5), "upload-b")):  # fmt: skip
        item = {"signals": [{"type": signal[0], "value": signal[1]}], "ref": ref}
        with world.client(role) as api:  # one hit for each platform
            assert api.post("/v1/check", json={"items": [item]}).status_code == 200
    with sign_in(world, "platform") as platform:
        assert platform.get("/ui/").headers["location"] == "/ui/hits"
        hits = platform.get("/ui/hits")
        assert hits.status_code == 200 and "upload-a" in hits.text and "upload-b" not in hits.text
        for path in ("/ui/sets", "/ui/sets/police", "/ui/orgs", "/ui/reviews", "/ui/check"):
            response = platform.get(path)
            assert response.status_code == 403 and "Not for your role" in response.text, path
    with sign_in(world, "analyst") as analyst:
        for path in ("/ui/", "/ui/sets", "/ui/sets/police", "/ui/reviews", "/ui/check"):
            assert analyst.get(path).status_code == 200, path
        for path in ("/ui/hits", "/ui/orgs", "/ui/orgs/platform-a"):
            assert analyst.get(path).status_code == 403, path
        token = csrf_of(analyst.get("/ui/sets").text)
        refused = analyst.post("/ui/orgs", data={"name": "x", "kind": "platform", "csrf": token})
        assert refused.status_code == 403
    with sign_in(world, "admin") as admin:
        hits = admin.get("/ui/hits").text
        assert "upload-a" in hits and "upload-b" in hits and "platform-b" in hits


def test_revoking_a_key_ends_its_page_sessions(world: World):
    with world.client("admin") as api:
        made = api.post("/v1/orgs/hotline/keys", json={"role": "analyst"}).json()
    with sign_in(world, key=made["key"]) as client:
        assert client.get("/ui/sets").status_code == 200
        with world.client("admin") as api:
            assert api.delete(f"/v1/keys/{made['id']}").status_code == 200
        assert client.get("/ui/sets").status_code == 303


def test_sign_out_ends_the_session(world: World):
    with sign_in(world, "analyst") as client:
        token = csrf_of(client.get("/ui/sets").text)
        assert client.post("/ui/sign-out", data={}).status_code == 403
        out = client.post("/ui/sign-out", data={"csrf": token})
        assert out.status_code == 303 and out.headers["location"] == "/ui/sign-in"
        assert client.get("/ui/sets").status_code == 303


def test_pages_carry_a_policy_that_loads_no_pictures(world: World):
    with sign_in(world, "admin") as client:
        response = client.get("/ui/")
    policy = response.headers["content-security-policy"]
    assert "img-src 'none'" in policy and "script-src 'self'" in policy
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


def test_sessions_expire_when_idle_by_the_clock():
    with use_clock(FrozenClock()) as frozen:
        store = SessionStore(idle=60, lifetime=600)
        session = store.new()
        frozen.advance(59)
        assert store.get(session.id) is session  # a request: the idle time starts again
        frozen.advance(59)
        assert store.get(session.id) is session
        frozen.advance(61)
        assert store.get(session.id) is None and len(store) == 0


def test_sessions_end_after_their_lifetime_even_when_busy():
    with use_clock(FrozenClock()) as frozen:
        store = SessionStore(idle=60, lifetime=150)
        session = store.new()
        for _ in range(2):
            frozen.advance(50)
            assert store.get(session.id) is session
        frozen.advance(50)
        assert store.get(session.id) is None
