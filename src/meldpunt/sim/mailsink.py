"""The simulation's mail sink: a real SMTP server (aiosmtpd) on loopback that takes meldpunt's
notices and hands each to the hoster it is addressed to.

For every message: the recipients say who gets it (``abuse@hN.sim.test`` is hoster N; the
police contact's address is recorded only); the URLs come from the CSV attachment
(``url;ip;firstseen;lastseen;note``) or, without one, from the body (only URLs of simulated
sites count: a notice's answer link points at meldpunt itself). The message is recorded
(Message-ID, time on meldpunt's clock, kind, recipient, URLs) and the hoster's behaviour
applied (``Internet.receive_notice``). A message whose Message-ID came before is dropped and
counted: meldpunt promises to send nothing twice, and the sink keeps count of whether it did.

Kinds: ``police`` for the police contact; ``order`` for the authority's removal order (the
hoster acts on it by its behaviour, as on a notice); otherwise ``renotice`` when the hoster had
been sent every one of these URLs before, else ``notice``.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from aiosmtpd.smtp import SMTP, Envelope, Session

from meldpunt import clock
from meldpunt.sim.internet import Internet

__all__ = ["MailSink", "ReceivedMail", "notice_urls"]

_URL = re.compile(r"https?://[^\s<>\"';]+")


@dataclass(frozen=True)
class ReceivedMail:
    message_id: str
    at: datetime
    kind: str  # notice, renotice, order, police, other
    recipients: tuple[str, ...]
    hoster: str | None  # hN, or None (police, unknown)
    subject: str
    urls: tuple[str, ...]
    ours: tuple[str, ...] = ()  # the URLs the hoster found on a site it serves


@dataclass
class MailSink:
    """The SMTP sink for ``internet``; ``police`` are the addresses recorded as police."""

    internet: Internet
    host: str = "127.0.0.1"
    port: int = 0
    police: tuple[str, ...] = ()
    received: list[ReceivedMail] = field(default_factory=list)
    duplicates: int = 0
    unknown: int = 0  # recipients that are no hoster and no police
    _seen: set[str] = field(default_factory=set)
    _sent_before: dict[str, set[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: Any = None

    def start(self) -> None:
        """Listen on ``host``:``port`` (0: a free port, then ``self.port``) on the internet's
        event loop."""
        loop = self.internet.loop
        loop.start()
        self._server = loop.call(self._listen())
        self.port = self._server.sockets[0].getsockname()[1]

    async def _listen(self) -> Any:
        import asyncio

        running = asyncio.get_running_loop()
        return await running.create_server(
            lambda: SMTP(_Handler(self), hostname="sink.sim.test", ident="meldpunt-sim"),
            self.host,
            self.port,
        )

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None

            async def close() -> None:
                server.close()
                await server.wait_closed()

            self.internet.loop.call(close())

    def __enter__(self) -> MailSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- taking a message ------------------------------------------------------------------------

    def take(self, raw: bytes, recipients: list[str]) -> ReceivedMail | None:
        """Record the message ``raw`` for ``recipients`` and let the hoster act on it; None
        when its Message-ID came before (dropped)."""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message_id = str(message.get("Message-ID") or "").strip()
        with self._lock:
            if message_id and message_id in self._seen:
                self.duplicates += 1
                return None
            if message_id:
                self._seen.add(message_id)
        urls = notice_urls(message, self.internet)
        subject = str(message.get("Subject") or "")
        lowered = [r.lower() for r in recipients]
        hoster = next(
            (h for h in map(self.internet.hoster_by_email, lowered) if h is not None), None
        )
        ours: list[str] = []
        if any(r in self.police for r in lowered):
            kind = "police"
        elif hoster is not None and message.get("X-Meldpunt-Order"):
            kind = "order"  # the authority's removal order: the hoster acts as on a notice
            ours = self.internet.receive_notice(
                hoster.number, urls, message_id=message_id, kind=kind
            )
        elif hoster is None:
            kind = "other"
            with self._lock:
                self.unknown += 1
        else:
            with self._lock:
                before = self._sent_before.setdefault(hoster.name, set())
                kind = "renotice" if urls and set(urls) <= before else "notice"
                before.update(urls)
            ours = self.internet.receive_notice(
                hoster.number, urls, message_id=message_id, kind=kind
            )
        mail = ReceivedMail(
            message_id=message_id,
            at=clock.now(),
            kind=kind,
            recipients=tuple(lowered),
            hoster=None if kind == "police" or hoster is None else hoster.name,
            subject=subject,
            urls=tuple(urls),
            ours=tuple(ours),
        )
        with self._lock:
            self.received.append(mail)
        return mail

    def by_kind(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for mail in self.received:
                counts[mail.kind] = counts.get(mail.kind, 0) + 1
            return counts


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content or "").encode("utf-8")
        try:
            self.sink.take(raw, [str(r) for r in envelope.rcpt_tos])
        except Exception:  # a message the sink cannot read is still taken, as a relay would
            import logging

            logging.getLogger(__name__).exception("the mail sink could not read a message")
        return "250 Message accepted for delivery"


def notice_urls(message: EmailMessage, internet: Internet | None = None) -> list[str]:
    """The URLs a notice names: the ``url`` column of its CSV attachment when it has one, else
    every URL of its text parts; only URLs of simulated sites when ``internet`` is given. In
    order, each once."""
    found: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        name = (part.get_filename() or "").lower()
        if part.get_content_type() == "text/csv" or name.endswith(".csv"):
            found.extend(_csv_urls(_text_of(part)))
    if not found:
        for part in message.walk():
            if part.get_content_maintype() == "text" and not part.get_filename():
                found.extend(m.rstrip(".,)") for m in _URL.findall(_text_of(part)))
    if internet is not None:
        found = [u for u in found if (urlsplit(u).hostname or "").lower() in internet.sites]
    return list(dict.fromkeys(found))


def _text_of(part: Any) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return str(part.get_payload())
    charset = part.get_content_charset() or "utf-8"
    try:
        return bytes(payload).decode(charset, errors="replace")
    except LookupError:
        return bytes(payload).decode("utf-8", errors="replace")


def _csv_urls(text: str) -> list[str]:
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = header.index("url") if "url" in header else 0
    body = rows[1:] if "url" in header else rows
    return [row[column].strip() for row in body if len(row) > column and row[column].strip()]
