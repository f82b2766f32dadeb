"""Sign-in sessions of the pages, and their CSRF tokens.

A person signs in by pasting an API key. The key is checked once, with ``checks.authenticate``;
after that the browser holds only a random session id (``secrets.token_urlsafe``, 256 bits) in
an HttpOnly, SameSite=Strict cookie. The id maps, in this process's memory, to the key's id and
the ``Principal`` it stood for; neither the key nor its hash is kept. Every page request checks
that the key is still active, so revoking a key (or disabling its organisation) ends its sessions
at once. Sessions end after ``IDLE`` without a request, after ``LIFETIME`` in any case, on sign-out,
and when the process restarts.

Each session has its own CSRF token (random, 256 bits), which every form carries in a hidden
``csrf`` field (htmx requests may send it as ``X-CSRF-Token`` instead). The sign-in form itself
gets an anonymous session with a token, so that no other site can sign a browser in; signing in
replaces that session with a new id and a new token.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from meldpunt import clock
from meldpunt.checks import Principal

__all__ = ["COOKIE", "IDLE", "LIFETIME", "SessionStore", "WebSession", "store_of"]

COOKIE = "meldpunt_session"
IDLE = 2 * 3600.0
LIFETIME = 12 * 3600.0
MAX_SESSIONS = 10_000


@dataclass
class WebSession:
    id: str
    csrf: str
    created: float
    seen: float
    principal: Principal | None = None
    #: Messages to show once, on the next page: (kind, text), kind 'ok' or 'error'.
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def flash(self, text: str, kind: str = "ok") -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


class SessionStore:
    """Sessions of one process, by id. Thread-safe: sync routes run in a thread pool."""

    def __init__(self, idle: float = IDLE, lifetime: float = LIFETIME) -> None:
        self.idle, self.lifetime = idle, lifetime
        self._sessions: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    def _alive(self, session: WebSession, at: float) -> bool:
        return at - session.seen < self.idle and at - session.created < self.lifetime

    def new(self, principal: Principal | None = None) -> WebSession:
        at = clock.monotonic()
        session = WebSession(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), at, at, principal
        )
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._prune(at)
            self._sessions[session.id] = session
        return session

    def _prune(self, at: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if not self._alive(s, at)]:
            del self._sessions[sid]
        if len(self._sessions) >= MAX_SESSIONS:  # still full: drop the least recently used
            oldest = sorted(self._sessions.values(), key=lambda s: s.seen)
            for s in oldest[: len(oldest) // 10 + 1]:
                del self._sessions[s.id]

    def get(self, session_id: str | None) -> WebSession | None:
        if not session_id:
            return None
        at = clock.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if not self._alive(session, at):
                del self._sessions[session_id]
                return None
            session.seen = at
            return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def drop_key(self, key_id: int) -> int:
        """End every session signed in with this key; returns how many."""
        with self._lock:
            ids = [sid for sid, s in self._sessions.items()
                   if s.principal is not None and s.principal.key_id == key_id]  # fmt: skip
            for sid in ids:
                del self._sessions[sid]
        return len(ids)

    def __len__(self) -> int:
        return len(self._sessions)


_create_lock = threading.Lock()


def store_of(state: Any) -> SessionStore:
    """The application's session store (``app.state.web_sessions``), made on first use."""
    store = getattr(state, "web_sessions", None)
    if store is None:
        with _create_lock:
            store = getattr(state, "web_sessions", None)
            if store is None:
                store = SessionStore()
                state.web_sessions = store
    return store
