"""Sending mail: the one module besides the fetcher that opens outbound connections, and only to
the relay the settings name (``smtp_*``). Notices, re-notices and messages to police contacts
go out through ``send``.

A message goes to the relay with its own ``Message-ID``; the caller fixes that id before the
first attempt and keeps it, so a message that is sent again after a crash (the relay accepted
it, the process died before recording so) is the same message to every receiver.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meldpunt.config import Settings

__all__ = ["MailError", "MailFailed", "MailRefused", "Relay", "send"]


class MailError(Exception):
    """A message that did not reach the relay; the message says why."""


class MailFailed(MailError):
    """The relay could not be reached or answered with a temporary failure: try again later."""


class MailRefused(MailError):
    """The relay refused the message or every recipient for good: trying again will not help."""


@dataclass(frozen=True)
class Relay:
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 30.0
    ca_file: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Relay:
        from meldpunt.config import get_settings

        s = settings or get_settings()
        return cls(
            host=s.smtp_host,
            port=s.smtp_port,
            starttls=s.smtp_starttls,
            username=s.smtp_username,
            password=s.smtp_password,
            timeout_seconds=s.smtp_timeout_seconds,
            ca_file=s.fetch_ca_file,
        )


def send(message: EmailMessage, relay: Relay) -> list[str]:
    """Hand ``message`` (with its From, To and Message-ID) to ``relay``; returns the recipients
    the relay refused while taking the message for the others (usually none). Raises
    ``MailFailed`` (worth another attempt) or ``MailRefused`` (nobody will get it)."""
    if not message.get("Message-ID"):
        raise MailRefused("a message needs its Message-ID before it is sent")
    try:
        with smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout_seconds) as client:
            if relay.starttls:
                client.starttls(context=ssl.create_default_context(cafile=relay.ca_file))
            if relay.username:
                client.login(relay.username, relay.password or "")
            refused = client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailRefused(f"the relay refused every recipient: {_codes(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        error = MailFailed if 400 <= exc.smtp_code < 500 else MailRefused
        raise error(f"the relay answered {exc.smtp_code}: {text[:200]}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise MailFailed(f"cannot send through {relay.host}:{relay.port}: {exc}") from None
    return [f"{who} ({code})" for who, (code, _) in refused.items()]


def _codes(recipients: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{who} ({code})" for who, (code, _) in list(recipients.items())[:5])
