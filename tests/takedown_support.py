"""What the takedown tests share: hosters on loopback addresses whose answers a test changes
while they run, a name table file the resolver reads, an IP-to-ASN table of the loopback
networks, and items put in the states the steps before attribution and re-checks leave them in."""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.config import Settings
from meldpunt.reports import items
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.fetcher import FetchPolicy, NameTable
from meldpunt.reports.vocabulary import Event, ItemState
from meldpunt.store import make_sessionmaker
from meldpunt.store.models import UrlItem

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)

#: The loopback networks as a small IP-to-ASN table (start,end,asn,org,country).
TABLE = """start,end,asn,org,country
127.0.0.0,127.0.255.255,64500,Polder Hosting B.V.,NL
127.1.0.0,127.1.255.255,64501,Dijk Cloud B.V.,NL
127.2.0.0,127.2.255.255,64502,Rhein Server GmbH,DE
127.3.0.0,127.3.255.255,64503,Grachten CDN B.V.,NL
"""

_stamps = itertools.count(1)


class Hoster:
    """An HTTP server on ``address`` (and ``port``, 0 for any) answering what ``pages`` holds:
    path -> (status, body). Counts requests per path; ``delay`` slows every answer."""

    def __init__(self, address: str, port: int = 0) -> None:
        self.pages: dict[str, tuple[int, bytes]] = {}
        self.hits: dict[str, int] = {}
        self.delay = 0.0
        self.active: dict[str, int] = {}  # requests being answered now, per path
        self.most_at_once: dict[str, int] = {}
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path
                with lock:
                    owner.hits[path] = owner.hits.get(path, 0) + 1
                    owner.active[path] = owner.active.get(path, 0) + 1
                    owner.most_at_once[path] = max(owner.most_at_once.get(path, 0),
                                                   owner.active[path])  # fmt: skip
                try:
                    if owner.delay:
                        threading.Event().wait(owner.delay)
                    status, body = owner.pages.get(path, (404, b"not here"))
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header(
                        "Content-Type", "image/jpeg" if status == 200 else "text/plain"
                    )
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with lock:
                        owner.active[path] -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        self.address = address
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def hosting(address: str, port: int = 0) -> Iterator[Hoster]:
    hoster = Hoster(address, port)
    try:
        yield hoster
    finally:
        hoster.close()


class Names:
    """A name table file in the shape of /etc/hosts that a test rewrites to move names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: dict[str, str] = {}
        self.write()

    def point(self, name: str, address: str | None) -> None:
        if address is None:
            self.names.pop(name, None)
        else:
            self.names[name] = address
        self.write()

    def write(self) -> None:
        self.path.write_text("".join(f"{a} {n}\n" for n, a in sorted(self.names.items())))
        stamp = 1_700_000_000_000_000_000 + next(_stamps) * 1_000_000
        os.utime(self.path, ns=(stamp, stamp))  # a new stamp even within the clock's tick


def context(engine: Engine, settings: Settings, names: Names, **policy: float) -> HotlineContext:
    fetch_policy = FetchPolicy(allow_networks=LOOPBACK, names=NameTable(names.path),
                               timeout_seconds=policy.get("timeout", 5.0),
                               total_seconds=policy.get("total", 10.0))  # fmt: skip
    return HotlineContext(make_sessionmaker(engine), settings=settings, policy=fetch_policy)


def ready_item(
    session: Session,
    url: str,
    *,
    body: bytes | None = None,
    pdq: str | None = None,
    media: str = "image",
    category: str = "csam_baseline",
) -> UrlItem:
    """An item graded illegal (as grading leaves it): ready, due now, not attributed."""
    item, created = items.open_item(session, items.normalise_url(url), kind="csam", actor="public")
    assert created
    now = clock.now()
    item.media = media
    if body is not None:
        item.sha256 = hashlib.sha256(body).hexdigest()
        item.size = len(body)
    item.pdq = pdq
    item.grade, item.category, item.graded_by, item.graded_at = "illegal", category, "test", now
    item.first_seen_at = item.last_seen_at = now
    note = items.move(session, item, ItemState.ready, actor="test", event=Event.graded,
                      due_at=now)  # fmt: skip
    items.note(session, [note] if note else [])
    session.flush()
    return item


def mark_noticed(session: Session, item: UrlItem, settings: Settings) -> None:
    """What takedown.notices does when a notice of ``item`` was sent."""
    now = clock.now()
    item.first_notice_at = item.first_notice_at or now
    item.last_notice_at = now
    item.next_check_at = now + timedelta(minutes=settings.takedown_first_check_minutes)
    item.renotice_at = now + timedelta(hours=settings.takedown_renotice_hours)
    if item.escalation_at is None:
        item.escalation_at = now + timedelta(hours=settings.takedown_escalation_hours)
    note = items.move(session, item, ItemState.noticed, actor="worker", event=Event.notice)
    items.note(session, [note] if note else [])
    session.flush()


def no_dns(host: str, port: int) -> list[str]:
    """Stands in for DNS in the tests (which never leave loopback): a name the name table does
    not hold does not resolve."""
    from meldpunt.reports.fetcher import FetchUnresolvable

    raise FetchUnresolvable(f"{host} does not resolve (no DNS in the tests)")
