"""Helpers for the page tests: sign in over plain HTTP, read a form's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from service import World

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def browser_client(world: World) -> httpx.Client:
    """A client that behaves like a browser towards redirects: it does not follow them."""
    return world.client(None, follow_redirects=False)


@contextmanager
def sign_in(world: World, role: str = "admin", key: str | None = None) -> Iterator[httpx.Client]:
    """A client with a signed-in page session (the session cookie in its jar)."""
    with browser_client(world) as client:
        form = client.get("/ui/sign-in")
        fields = {"key": key or world.keys[role], "csrf": csrf_of(form.text), "next": "/ui/"}
        answer = client.post("/ui/sign-in", data=fields)
        assert answer.status_code == 303, answer.text
        yield client
