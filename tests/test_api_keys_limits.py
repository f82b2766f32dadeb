"""Guessing keys is limited: text not shaped like a key costs no database read, an address that
fails too often gets 429 (the API, the check lane and the pages' sign-in alike), and the key
cache keeps the keys in use however many unknown keys arrive."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from meldpunt.api import auth
from meldpunt.api.errors import ApiError
from meldpunt.checks import looks_like_key
from meldpunt.clock import FrozenClock, use_clock
from service import World, running


def random_key() -> str:
    return "mp_" + secrets.token_urlsafe(30)


def test_the_cache_keeps_recent_entries_when_full():
    with use_clock(FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))) as clock:
        cache: auth.TtlCache[str] = auth.TtlCache(seconds=5, max_entries=3)
        for name in ("a", "b", "c"):
            cache.put(name, name.upper())
        assert cache.get("a") == (True, "A")  # used: now the most recent
        cache.put("d", "D")
        assert cache.get("b") == (False, None)  # the least recently used went, nothing else
        assert [cache.get(n) for n in ("a", "c", "d")] == [(True, "A"), (True, "C"), (True, "D")]
        clock.advance(timedelta(seconds=6))
        assert cache.get("a") == (False, None)
        assert cache.stale("a") == "A"


def test_unknown_keys_only_push_out_other_unknown_keys():
    cache = auth.KeyCache(seconds=5, max_entries=10)
    cache.known.put("platform", "principal")  # type: ignore[arg-type]
    for _ in range(1_000):
        cache.unknown.put(random_key(), True)
    assert cache.known.get("platform") == (True, "principal")


def test_the_failure_limiter_counts_per_address():
    with use_clock(FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))) as clock:
        limiter = auth.FailureLimiter(per_minute=6)
        for _ in range(6):
            limiter.check("10.0.0.1")
            limiter.failed("10.0.0.1")
        with pytest.raises(ApiError) as refused:
            limiter.check("10.0.0.1")
        assert refused.value.status == 429
        assert refused.value.headers == {"Retry-After": "10"}
        limiter.check("10.0.0.2")  # another address is not affected
        clock.advance(timedelta(seconds=10))  # one failure a ten seconds comes back
        limiter.check("10.0.0.1")


def test_only_text_shaped_like_a_key_is_looked_up():
    assert looks_like_key(random_key())
    for text in ("mp_short", "xx_" + "a" * 40, "mp_" + "a" * 39 + "!", "mp_" + "a" * 39 + "\x00"):
        assert not looks_like_key(text)


def from_address(world: World, address: str, key: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=world.url, transport=transport, timeout=30,
                        headers={"Authorization": f"Bearer {key}"})  # fmt: skip


CHECK = {"items": [{"signals": [{"type": "md5", "value": "0" * 32}]}]}


def test_an_address_guessing_keys_gets_429_and_others_keep_working(db_url, monkeypatch):
    lookups: list[str] = []
    real = auth.authenticate
    monkeypatch.setattr(auth, "authenticate", lambda s, k: lookups.append(k) or real(s, k))
    with running(db_url, loopback=True, auth_failures_per_minute=10) as world:
        with world.client("platform") as platform:  # a platform at work before the guessing
            assert platform.post("/v1/check", json=CHECK).status_code == 200
        lookups.clear()
        answers = []
        for number in range(14):
            # Through the check lane, FastAPI's own routes, and text that is no key at all.
            key = random_key() if number % 3 else "not-a-key"
            with from_address(world, "127.0.0.1", key) as guesser:
                answers.append(guesser.post("/v1/check" if number % 2 else "/v1/sets",
                                            json=CHECK))  # fmt: skip
        assert [a.status_code for a in answers] == [401] * 10 + [429] * 4
        assert {a.json()["error"]["code"] for a in answers[10:]} == {"too_many_failures"}
        assert all(int(a.headers["Retry-After"]) >= 1 for a in answers[10:])
        # Malformed keys and refused addresses cost no database read.
        assert len(lookups) == len([n for n in range(10) if n % 3])
        # The platform's key, known to work, still works from the same address ...
        with world.client("platform") as platform:
            assert platform.post("/v1/check", json=CHECK).status_code == 200
        # ... a key not seen before waits like the guesses ...
        with world.client("analyst") as analyst:
            assert analyst.get("/v1/sets").status_code == 429
        # ... and another address is not affected.
        with from_address(world, "127.0.0.2", random_key()) as other:
            assert other.post("/v1/check", json=CHECK).status_code == 401
        with from_address(world, "127.0.0.2", world.keys["analyst"]) as other:
            assert other.get("/v1/sets").status_code == 200


def test_the_pages_sign_in_counts_failures_too(db_url):
    with running(db_url, loopback=True, auth_failures_per_minute=3) as world:
        with httpx.Client(base_url=world.url, timeout=30) as browser:
            statuses = []
            for _ in range(5):
                form = browser.get("/ui/sign-in").text
                csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
                answer = browser.post("/ui/sign-in", data={"key": random_key(), "csrf": csrf})
                statuses.append(answer.status_code)
            assert statuses == [401, 401, 401, 429, 429]
        with from_address(world, "127.0.0.1", random_key()) as api:
            assert api.get("/v1/sets").status_code == 429  # one allowance for pages and API
