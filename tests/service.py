"""A meldpunt service for API tests: in process by default, or on a loopback port.

``running(db_url)`` seeds a database and serves the application in process: clients talk to it
through Starlette's test transport, with the application's lifespan (index follower, writer,
worker) running as in production but no socket, no uvicorn start and no port. Tests that need a
real server (a browser, a second process, schemathesis over HTTP, raw sockets) ask for
``running(db_url, loopback=True)``, which runs uvicorn in a thread on 127.0.0.1.
"""

from __future__ import annotations

import secrets
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette suggests another HTTP client for its test client; httpx is what meldpunt uses.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from imaging import jpeg, photo
from meldpunt import checks, registry
from meldpunt.api import ServiceSettings, create_app
from meldpunt.signals import digest_bytes, pdq_signal
from meldpunt.store import init_db, make_engine, make_sessionmaker


@dataclass
class World:
    url: str
    db_url: str
    keys: dict[str, str]
    known_jpeg: bytes
    known_pdq: str
    known_md5: str
    stored_values: list[str] = field(default_factory=list)
    # In process: the transport of the test client that runs the application's lifespan.
    transport: httpx.BaseTransport | None = None

    def client(self, role: str | None = "platform", **kwargs: Any) -> httpx.Client:
        """A client of the service, signed with ``role``'s key (None: no key)."""
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        headers.update(kwargs.pop("headers", {}))
        if self.transport is not None:
            kwargs["transport"] = self.transport
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)

    def session(self) -> Any:
        return make_sessionmaker(make_engine(self.db_url))()


def seed(db_url: str) -> tuple[dict[str, str], bytes, str, str, list[str]]:
    init_db(db_url)
    engine = make_engine(db_url)
    known = jpeg(photo("coffee"))
    pdq = pdq_signal(known).hash
    md5 = secrets.token_hex(16)
    with make_sessionmaker(engine)() as session:
        block = registry.create_set(session, "police", default_category="csam_baseline")
        registry.add_item(session, block, [("pdq", pdq), ("md5", digest_bytes(known).md5)])
        registry.add_item(
            session, block, [("md5", md5)], category="national", category_scheme="interpol"
        )
        checks.create_org(session, "platform-a", "platform")
        checks.create_org(session, "platform-b", "platform")
        checks.create_org(session, "hotline", "hotline")
        keys = {
            "platform": checks.create_key(session, "platform-a", "platform")[1],
            "platform_b": checks.create_key(session, "platform-b", "platform")[1],
            "analyst": checks.create_key(session, "hotline", "analyst")[1],
            "admin": checks.create_key(session, "hotline", "admin")[1],
        }
        session.commit()
    engine.dispose()
    return keys, known, pdq, md5, [pdq, md5, digest_bytes(known).md5]


@contextmanager
def serving(settings: ServiceSettings) -> Iterator[str]:
    """The service with these settings on a free loopback port; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def service_settings(db_url: str, **overrides: Any) -> ServiceSettings:
    return ServiceSettings(database_url=db_url, poll_seconds=0.2, key_cache_seconds=0, **overrides)


@contextmanager
def in_process(app: FastAPI) -> Iterator[httpx.BaseTransport]:
    """The application with its lifespan running; yields a transport for any number of clients.

    Errors inside the application become 500 answers, as a real server's would."""
    with TestClient(app, raise_server_exceptions=False) as starter:
        yield starter._transport  # shares the portal (event loop) that runs the lifespan


@contextmanager
def running(db_url: str, *, loopback: bool = False, **overrides: Any) -> Iterator[World]:
    """A seeded service; in process unless ``loopback`` (a real server on a loopback port)."""
    keys, known, pdq, md5, stored = seed(db_url)
    settings = service_settings(db_url, **overrides)
    if loopback:
        with serving(settings) as url:
            yield World(url, db_url, keys, known, pdq, md5, stored)
        return
    with in_process(create_app(settings)) as transport:
        yield World("http://testserver", db_url, keys, known, pdq, md5, stored, transport)
