"""The simulated internet: hosters serving benign pictures and pages over real HTTP on loopback.

Hoster ``n`` (1, 2, ...) listens on its own address, ``127.0.x.y`` counted from 127.0.0.2 (so
127.0.0.1 stays free), on one port that all hosters share. It serves its site, ``hN.sim.test``:
pictures (``/<tag>/i/<k>.jpg``) and pages linking to pictures (``/<tag>/p/<k>.html``). A request
is answered by the ``Host`` header and the path: 200 with the content, 404 when the hoster does
not serve that host or path (any more). One asyncio event loop in a background thread serves
every address (``asyncio.start_server`` per address, HTTP/1.1 GET and HEAD, one request per
connection).

Hosters act on notices by their ``Behaviour`` (``behaviour.py``). What they decide to do later
is kept in a schedule on meldpunt's clock: ``run_due()`` applies what is due by ``clock.now()``,
``next_due()`` says when the next thing is, so a scenario on a ``FrozenClock`` can jump from one
moment to the next. A hoster that is *down* stops listening on its address (connections are
refused) and listens again when it is back. A *move* points the site's name at another hoster's
address in the name table (``names.py``), and that hoster serves the same content from then on.
``latency_ms`` holds every answer back, as a real network's round trips would (benchmarks).
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import logging
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from meldpunt import clock
from meldpunt.sim.behaviour import Behaviour, BehaviourKind, draw_behaviours
from meldpunt.sim.loop import LoopThread
from meldpunt.sim.names import write_name_table
from meldpunt.sim.pictures import PictureStore
from meldpunt.sim.serving import Body, HttpServers, page

__all__ = [
    "DOMAIN",
    "Hoster",
    "Internet",
    "Resource",
    "SimEvent",
    "address_of",
]

log = logging.getLogger(__name__)

DOMAIN = "sim.test"  # .test never resolves by DNS (RFC 6761)
ABROAD = ("DE", "US", "FR", "RO")


def address_of(number: int, base: str = "127.0.0.0") -> str:
    """Hoster ``number``'s address: 127.0.0.2, 127.0.0.3, ... 127.0.0.254, 127.0.1.1, ...
    (never a last byte of 0 or 255, never 127.0.0.1)."""
    if number < 1:
        raise ValueError("hosters are numbered from 1")
    step, last = divmod(number, 254)
    value = int(ipaddress.ip_address(base)) + step * 256 + last + 1
    return str(ipaddress.ip_address(value))


@dataclass
class Hoster:
    number: int
    address: str
    behaviour: Behaviour
    country: str = "NL"

    @property
    def name(self) -> str:
        return f"h{self.number}"

    @property
    def domain(self) -> str:
        return f"{self.name}.{DOMAIN}"

    @property
    def asn(self) -> int:
        return 4_200_000_000 + self.number  # private 32-bit AS numbers (RFC 6996)

    @property
    def org(self) -> str:
        return f"Sim Hosting {self.number}"

    @property
    def abuse_email(self) -> str:
        return f"abuse@{self.domain}"


@dataclass(frozen=True)
class Resource:
    """What a path serves: a picture (by number) or a page linking to pictures."""

    picture: int | None = None
    links: tuple[str, ...] = ()


@dataclass
class Site:
    host: str
    hoster: int  # the hoster serving it now
    paths: dict[str, Resource] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    moved: bool = False


@dataclass(frozen=True)
class SimEvent:
    """Something a hoster did: ``notice`` (received), ``removed``, ``restored``, ``moved``,
    ``down``, ``up``."""

    at: datetime
    hoster: str
    event: str
    url: str | None = None
    details: dict[str, Any] | None = None


@dataclass(order=True)
class _Due:
    at: datetime
    seq: int
    action: str = field(compare=False)
    args: tuple[Any, ...] = field(compare=False, default=())


class Internet:
    """``hosters`` simulated hosters with behaviours drawn from ``seed``; their name table is
    written to ``folder/names.hosts``. ``start()`` listens, ``stop()`` ends everything."""

    def __init__(
        self,
        folder: Path,
        *,
        hosters: int = 10,
        seed: int = 0,
        port: int = 0,
        base: str = "127.0.0.0",
        abroad: float = 0.1,
        home: str = "NL",
        behaviours: list[Behaviour] | None = None,
        pictures: PictureStore | None = None,
        loop: LoopThread | None = None,
        latency_ms: float = 0.0,
    ) -> None:
        self.folder = Path(folder)
        self.seed = seed
        self.requested_port = port
        self.port = port
        self.pictures = pictures or PictureStore(seed)
        rng = random.Random(f"countries:{seed}")
        drawn = behaviours if behaviours is not None else draw_behaviours(seed, hosters)
        self.hosters: dict[int, Hoster] = {}
        for number, behaviour in enumerate(drawn, start=1):
            country = rng.choice(ABROAD) if rng.random() < abroad else home
            self.hosters[number] = Hoster(number, address_of(number, base), behaviour, country)
        self.sites: dict[str, Site] = {
            h.domain: Site(h.domain, h.number) for h in self.hosters.values()
        }
        self.names_path = self.folder / "names.hosts"
        self.events: list[SimEvent] = []
        self._schedule: list[_Due] = []
        self._seq = 0
        self._lock = threading.RLock()
        self._loop = loop or LoopThread()
        self._own_loop = loop is None
        addresses = {number: h.address for number, h in self.hosters.items()}
        self._http = HttpServers(self._loop, addresses, self.answer)
        self.latency_ms = latency_ms
        self._down: set[int] = set()
        self._went_down: set[int] = set()
        self._scheduled: set[tuple[str, str]] = set()  # (host, path) with a removal to come
        self._returned: set[tuple[str, str]] = set()  # put back once already
        self._counter = 0

    # --- running ---------------------------------------------------------------------------------

    @property
    def loop(self) -> LoopThread:
        return self._loop

    @property
    def latency_ms(self) -> float:
        """How long every answer is held back, in milliseconds, as over a real network (0: as
        fast as loopback goes); may be changed while the hosters serve."""
        return self._http.latency * 1000

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"latency must be 0 ms or more, not {value}")
        self._http.latency = value / 1000

    @property
    def requests(self) -> Counter[int]:
        """Answers given so far, by status."""
        return self._http.requests

    def start(self) -> None:
        """Listen on every hoster's address (one port for all) and write the name table."""
        self._loop.start()
        self.port = self._http.start(self.hosters, self.requested_port)
        self.write_names()

    def stop(self) -> None:
        self._http.stop()
        if self._own_loop:
            self._loop.stop()

    def __enter__(self) -> Internet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- serving ---------------------------------------------------------------------------------

    def answer(self, number: int, host: str, target: str) -> tuple[int, str, Body]:
        """What hoster ``number`` answers for ``Host: host`` and ``target`` (status, type, body)."""
        name = host.rsplit(":", 1)[0].lower().rstrip(".") if host else ""
        path = target.split("?", 1)[0].split("#", 1)[0]
        with self._lock:
            site = self.sites.get(name)
            if site is None or site.hoster != number:
                return 404, "text/plain", b"no such site here\n"
            if path == "/":
                links = sorted(p for p, r in site.paths.items() if r.picture is None)
                return 200, "text/html; charset=utf-8", page(site.host, links)
            resource = site.paths.get(path)
            if resource is None or path in site.removed:
                return 404, "text/plain", b"not found\n"
        if resource.picture is not None:
            wanted = resource.picture
            kind = self.pictures.content_type(wanted)
            if self.pictures.ready(wanted):
                return 200, kind, self.pictures.get(wanted).body
            return 200, kind, lambda: self.pictures.get(wanted).body
        return 200, "text/html; charset=utf-8", page(site.host, list(resource.links))

    # --- content ---------------------------------------------------------------------------------

    def url(self, host: str, path: str) -> str:
        port = "" if self.port == 80 else f":{self.port}"
        return f"http://{host}{port}{path}"

    def add_picture(self, hoster: int, picture: int, *, tag: str = "c") -> str:
        """Put picture number ``picture`` on hoster ``hoster``'s site; returns its URL."""
        with self._lock:
            site = self.sites[self.hosters[hoster].domain]
            self._counter += 1
            kind = self.pictures.content_type(picture)
            path = f"/{tag}/i/{self._counter}.{'png' if kind == 'image/png' else 'jpg'}"
            site.paths[path] = Resource(picture=picture)
            return self.url(site.host, path)

    def add_page(
        self, hoster: int, pictures: list[int], *, tag: str = "c"
    ) -> tuple[str, list[str]]:
        """A page on hoster ``hoster``'s site showing ``pictures`` (each added to the site);
        returns the page's URL and the pictures' URLs."""
        children = [self.add_picture(hoster, number, tag=tag) for number in pictures]
        with self._lock:
            site = self.sites[self.hosters[hoster].domain]
            self._counter += 1
            path = f"/{tag}/p/{self._counter}.html"
            site.paths[path] = Resource(links=tuple(urlsplit(u).path for u in children))
            return self.url(site.host, path), children

    def serving(self, url: str) -> int | None:
        """The hoster that answers ``url`` with its content now (None: nobody does)."""
        parts = urlsplit(url)
        with self._lock:
            site = self.sites.get((parts.hostname or "").lower())
            if site is None or parts.path not in site.paths or parts.path in site.removed:
                return None
            if site.hoster not in self.hosters or site.hoster in self._down:
                return None  # its name is gone, or its hoster is down
            return site.hoster

    def owner(self, url: str) -> int | None:
        """The hoster whose site ``url`` is on now (whether or not it still serves it)."""
        site = self.sites.get((urlsplit(url).hostname or "").lower())
        return None if site is None or site.hoster not in self.hosters else site.hoster

    # --- names -----------------------------------------------------------------------------------

    def names(self) -> dict[str, str]:
        with self._lock:
            return {
                host: self.hosters[site.hoster].address
                for host, site in self.sites.items()
                if site.hoster in self.hosters
            }

    def write_names(self) -> None:
        with self._lock:
            write_name_table(
                self.names_path,
                self.names(),
                comment="meldpunt simulation: hosters' names (rewritten when a name moves)",
            )

    def drop_name(self, host: str) -> None:
        """Take ``host`` out of the name table (the name no longer resolves)."""
        with self._lock:
            site = self.sites.get(host)
            if site is not None:
                site.hoster = 0  # nobody: hosters are numbered from 1
                self.write_names()

    # --- notices and behaviours ------------------------------------------------------------------

    def hoster_by_email(self, address: str) -> Hoster | None:
        domain = address.rsplit("@", 1)[-1].strip().lower().rstrip(">")
        for hoster in self.hosters.values():
            if hoster.domain == domain:
                return hoster
        return None

    def receive_notice(
        self, number: int, urls: list[str], *, message_id: str = "", kind: str = "notice"
    ) -> list[str]:
        """Hoster ``number`` got a notice naming ``urls``: it plans what its behaviour says.
        Returns the URLs it found its own (on a site it serves now)."""
        now = clock.now()
        hoster = self.hosters[number]
        behaviour = hoster.behaviour
        with self._lock:
            ours: list[tuple[Site, str, str]] = []
            for url in urls:
                parts = urlsplit(url)
                site = self.sites.get((parts.hostname or "").lower())
                if site is not None and site.hoster == number and parts.path in site.paths:
                    ours.append((site, parts.path, url))
            self.events.append(
                SimEvent(
                    now,
                    hoster.name,
                    "notice",
                    None,
                    {"message_id": message_id, "kind": kind, "urls": len(urls), "ours": len(ours)},
                )
            )
            delay = timedelta(minutes=behaviour.delay_minutes)
            for site, path, url in ours:
                key = (site.host, path)
                if path in site.removed or key in self._scheduled:
                    continue
                removes = behaviour.kind is BehaviourKind.removes or (
                    behaviour.kind is BehaviourKind.removes_some
                    and self._chosen(url, behaviour.fraction)
                )
                if removes:
                    self._plan(now + delay, "remove", site.host, path)
                elif behaviour.kind is BehaviourKind.returns:
                    self._plan(now + delay, "remove", site.host, path)
                    if key not in self._returned:
                        self._returned.add(key)
                        back = delay + timedelta(minutes=behaviour.duration_minutes)
                        self._plan(now + back, "restore", site.host, path)
                else:
                    continue
                self._scheduled.add(key)
            if behaviour.kind is BehaviourKind.moves and behaviour.to is not None:
                for site in {s.host: s for s, _, _ in ours}.values():
                    if not site.moved:
                        site.moved = True  # once: the new hoster answers its own notices
                        self._plan(now + delay, "move", site.host, behaviour.to)
            if behaviour.kind is BehaviourKind.down and ours and number not in self._went_down:
                self._went_down.add(number)
                self._plan(now + delay, "down", number)
                back = delay + timedelta(minutes=behaviour.duration_minutes)
                self._plan(now + back, "up", number)
            return [url for _, _, url in ours]

    def _chosen(self, url: str, fraction: float) -> bool:
        digest = hashlib.sha256(f"{self.seed}:{url}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < fraction

    def _plan(self, at: datetime, action: str, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._schedule, _Due(at, self._seq, action, args))

    def next_due(self) -> datetime | None:
        """When the hosters will next do something by themselves (None: nothing planned)."""
        with self._lock:
            return self._schedule[0].at if self._schedule else None

    def run_due(self, now: datetime | None = None) -> list[SimEvent]:
        """Do what the hosters planned for ``now`` (default ``clock.now()``) or earlier."""
        if self._loop.on_loop():
            raise RuntimeError("run_due runs beside the event loop, not on it")
        now = now or clock.now()
        done: list[SimEvent] = []
        names_changed = False
        while True:
            with self._lock:
                if not self._schedule or self._schedule[0].at > now:
                    break
                due = heapq.heappop(self._schedule)
                event = self._apply(due)
                names_changed |= due.action == "move"
            if due.action in ("down", "up"):
                number = due.args[0]
                try:
                    if due.action == "down":
                        self._http.go_down(number)
                    else:
                        self._http.come_up(number)
                except OSError as exc:  # the address and port were taken meanwhile
                    log.warning("hoster %s cannot listen again yet: %s", number, exc)
                    with self._lock:
                        self._down.add(number)
                        self._plan(due.at + timedelta(minutes=1), "up", number)
            if event is not None:
                done.append(event)
        if names_changed:
            self.write_names()
        return done

    def _apply(self, due: _Due) -> SimEvent | None:
        at = due.at
        if due.action in ("remove", "restore"):
            host, path = due.args
            site = self.sites[host]
            if due.action == "remove":
                site.removed.add(path)
                self._scheduled.discard((host, path))
            else:
                site.removed.discard(path)
            event = SimEvent(at, f"h{site.hoster}", f"{due.action}d", self.url(host, path))
        elif due.action == "move":
            host, to = due.args
            site = self.sites[host]
            before, site.hoster = site.hoster, to
            event = SimEvent(at, f"h{before}", "moved", None, {"host": host, "to": f"h{to}"})
        elif due.action == "down":
            (number,) = due.args
            self._down.add(number)
            event = SimEvent(at, f"h{number}", "down")
        elif due.action == "up":
            (number,) = due.args
            self._down.discard(number)
            event = SimEvent(at, f"h{number}", "up")
        else:
            return None
        self.events.append(event)
        return event

    def is_down(self, number: int) -> bool:
        with self._lock:
            return number in self._down
