"""What the hotline's work needs besides the database: the settings, the fetch policy, the mail
relay, the key that signs links, and the registry's matcher, kept in step with the change log.

One ``HotlineContext`` per worker (the thread in ``meldpunt serve``, a ``meldpunt worker``
process, a simulation); tests build one with their own policy and relay.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from meldpunt.config import Settings, get_settings
from meldpunt.registry.matching import MatchAnswer, Matcher, Query, open_matcher
from meldpunt.reports.fetcher import FetchPolicy
from meldpunt.reports.smtp import Relay

__all__ = ["HotlineContext", "link_secret"]

_SECRET_FILE = "link-secret"
T = TypeVar("T")


def link_secret(settings: Settings) -> bytes:
    """The key that signs links in notices: ``link_secret`` when set, else one made once and
    kept in ``data_dir`` (readable by its owner only), so every process of one installation
    signs alike."""
    if settings.link_secret:
        return settings.link_secret.encode("utf-8")
    path = Path(settings.data_dir) / _SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32).encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value


@dataclass
class HotlineContext:
    sessions: sessionmaker[Session]
    settings: Settings = field(default_factory=get_settings)
    policy: FetchPolicy | None = None
    relay: Relay | None = None
    secret: bytes | None = None
    #: Runs work with a matcher someone else keeps in step (the service's index follower);
    #: None: the context builds and refreshes its own.
    use_matcher: Callable[[Callable[[Matcher], Any]], Any] | None = None
    _matcher: Matcher | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.policy is None:
            self.policy = FetchPolicy.from_settings(self.settings)
        if self.relay is None:
            self.relay = Relay.from_settings(self.settings)

    @property
    def fetch_policy(self) -> FetchPolicy:
        assert self.policy is not None
        return self.policy

    @property
    def mail_relay(self) -> Relay:
        assert self.relay is not None
        return self.relay

    @property
    def link_key(self) -> bytes:
        """Made (or read from ``data_dir``) on first use."""
        if self.secret is None:
            self.secret = link_secret(self.settings)
        return self.secret

    def match_many(self, queries: Sequence[Query], **options: Any) -> list[MatchAnswer]:
        """``Matcher.match_many`` on the registry as it is now (allow-lists, set thresholds and
        set states apply as for the check service)."""
        if self.use_matcher is not None:
            found: list[MatchAnswer] = self.use_matcher(lambda m: m.match_many(queries, **options))
            return found
        matcher = self.matcher()
        with self._lock:
            return matcher.match_many(queries, **options)

    def matcher(self) -> Matcher:
        """The registry's matcher with every change applied (built on first use, from the
        newest snapshot in ``data_dir/index`` when there is one)."""
        with self._lock:
            with self.sessions() as session:
                if self._matcher is None:
                    snapshots = Path(self.settings.data_dir) / "index"
                    self._matcher = open_matcher(session, snapshots)
                self._matcher.refresh(session)
            return self._matcher
