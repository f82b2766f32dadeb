"""A real SMTP server on loopback that keeps what it is sent: the mail relay of the tests.

    with MailSink() as sink:
        context = HotlineContext(sessions, relay=sink.relay)
        ...
        (message,) = sink.wait_for(1)
        message["Message-ID"], message.get_body(("plain",)).get_content()

``sink.answer = "451 4.3.0 try later"`` makes it refuse messages for now (``"550 ..."`` for
good); ``sink.stop()``/``sink.start()`` take it off the network and back on the same port.
"""

from __future__ import annotations

import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller

from meldpunt.reports.smtp import Relay

__all__ = ["MailSink", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (bound and closed: a race is possible but harmless)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = self.sink.answer
        if answer is not None:
            with self.sink._lock:
                self.sink.refused += 1
            return answer
        parsed = cast(EmailMessage, message_from_bytes(envelope.content, policy=policy.default))
        with self.sink._lock:
            self.sink.messages.append(parsed)
            self.sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class MailSink:
    """An aiosmtpd server on ``host`` (127.0.0.1) and a free port, collecting parsed messages."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        #: None: take every message; an SMTP reply ("451 ...", "550 ...") to refuse them.
        self.answer: str | None = None
        self.refused = 0
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def relay(self) -> Relay:
        return Relay(self.host, self.port, timeout_seconds=10)

    def start(self) -> MailSink:
        if self._controller is None:
            self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.envelopes.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages once there are at least ``count`` (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.received()
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{len(found)} message(s), expected {count}"
                return found
            time.sleep(0.02)
