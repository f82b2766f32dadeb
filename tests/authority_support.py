"""What the authority's tests share: hosters on loopback serving pictures, a real SMTP sink,
escalated items made as the hotline leaves them, and the whole worker (``worker.run_once``)
on a frozen clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select

from imaging import jpeg, photo
from mail_sink import MailSink
from meldpunt import worker
from meldpunt.reports import items
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.fetcher import FetchPolicy, NameTable
from meldpunt.reports.vocabulary import Event, ItemState
from meldpunt.signals import pdq_signal
from meldpunt.store import make_sessionmaker
from meldpunt.store.models import AuditEvent, Order, Penalty, UrlItem
from meldpunt.takedown.attribution import run_attributions
from takedown_support import LOOPBACK, mark_noticed, ready_item

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
PICTURE = jpeg(photo("coffee"))
OTHER = jpeg(photo("rocket"))


class AuthorityWorld:
    """Polder (AS64500, contact "Polder") and Dijk (AS64501) serve pictures on loopback; a
    mail sink takes what the worker mails."""

    def __init__(self, engine, session, settings, names, clock, polder, dijk, sink: MailSink):
        self.engine, self.session, self.names, self.clock = engine, session, names, clock
        self.polder, self.dijk, self.sink = polder, dijk, sink
        self.settings = settings.model_copy(
            update={"public_url": "https://hotline.example",
                    "smtp_from": "orders@authority.example",
                    "authority_name": "Toezichthouder Test", "smtp_retry_minutes": 5.0,
                    "smtp_attempts": 3})  # fmt: skip
        policy = FetchPolicy(allow_networks=LOOPBACK, names=NameTable(names.path),
                             timeout_seconds=5.0, total_seconds=10.0)  # fmt: skip
        self.ctx = HotlineContext(make_sessionmaker(engine), settings=self.settings,
                                  policy=policy, relay=sink.relay, secret=b"k" * 32)  # fmt: skip

    def url(self, path: str, host: str = "site.test") -> str:
        return f"http://{host}:{self.polder.port}{path}"

    def noticed(
        self, paths: list[str], host: str = "site.test", body: bytes = PICTURE
    ) -> list[int]:
        pdq = pdq_signal(body).hash
        ids = []
        for path in paths:
            self.polder.pages[path] = (200, body)
            self.dijk.pages[path] = (200, body)
            ids.append(ready_item(self.session, self.url(path, host), body=body, pdq=pdq).id)
        self.session.commit()
        assert run_attributions(self.ctx, len(ids)) == len(ids)
        for item_id in ids:
            item = self.item(item_id)
            assert item.state == "ready", item.state
            mark_noticed(self.session, item, self.settings)
        self.session.commit()
        return ids

    def escalated(self, paths: list[str], host: str = "site.test") -> list[int]:
        """Items noticed and escalated now (as the re-checks leave them past the norm)."""
        ids = self.noticed(paths, host)
        for item_id in ids:
            item = self.item(item_id)
            item.escalated_at = self.clock.now()
            note = items.move(self.session, item, ItemState.escalated, actor="worker",
                              event=Event.escalation_due)  # fmt: skip
            items.note(self.session, [note] if note else [])
        self.session.commit()
        return ids

    def remove(self, path: str) -> None:
        self.polder.pages[path] = (404, b"gone")

    def run(self, after: timedelta | None = None) -> int:
        if after is not None:
            self.clock.advance(after)
        self.session.commit()
        done = worker.run_once(self.ctx)
        self.session.commit()
        return done

    def run_until(self, moment: datetime, step: timedelta = timedelta(minutes=1)) -> None:
        """Run the worker at every minute up to ``moment``."""
        while self.clock.now() < moment:
            self.run(min(step, moment - self.clock.now()))

    def item(self, item_id: int) -> UrlItem:
        self.session.commit()
        return self.session.get(UrlItem, item_id, populate_existing=True)

    def order(self, order_id: int) -> Order:
        self.session.commit()
        return self.session.get(Order, order_id, populate_existing=True)

    def penalties(self, order_id: int) -> list[Penalty]:
        self.session.commit()
        return list(
            self.session.scalars(
                select(Penalty).where(Penalty.order_id == order_id).order_by(Penalty.seq)
            )
        )

    def orders_mailed(self) -> list[EmailMessage]:
        return [m for m in self.sink.received() if m["X-Meldpunt-Order"]]

    def audited(self, action: str) -> list[dict[str, Any]]:
        self.session.commit()
        return [
            json.loads(e.details)
            for e in self.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        ]


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
