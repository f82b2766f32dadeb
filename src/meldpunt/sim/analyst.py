"""The scenario's analyst: grades what waits in the queue, a while after it came, and clears
items the police were told about.

Decisions are drawn per URL from the seed: most new material is illegal (category
``csam_baseline``), a share (``police_share``) is graded "first police" and cleared by the
police ``police_hours`` later, a share (``not_illegal_share``) is not illegal. Grades go through
meldpunt's own queue (``reports.queue.grade``), as an analyst's would.

Items that wait for an abuse contact get one ``contact_hours`` later, as an analyst would fix
the directory: the hoster's contact approved when it is there, added (the simulated hoster's
``abuse@`` address) when it is not, then attribution asked again
(``takedown.attribution.retry_attribution``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from meldpunt.config import Settings
from meldpunt.reports import queue
from meldpunt.reports.errors import Conflict
from meldpunt.reports.vocabulary import Grade, ItemState
from meldpunt.sim.internet import Internet
from meldpunt.store.models import AbuseContact, UrlItem
from meldpunt.takedown import directory
from meldpunt.takedown.attribution import retry_attribution

__all__ = ["Analyst"]

ACTOR = "analyst:sim"
CATEGORY = "csam_baseline"


@dataclass
class Analyst:
    seed: int
    settings: Settings
    minutes: float = 30.0  # from entering the queue to the grade
    police_hours: float = 4.0  # from the police grade to the police's word
    police_share: float = 0.05
    not_illegal_share: float = 0.05
    internet: Internet | None = None  # to look hosters' contacts up (None: leave them waiting)
    contact_hours: float = 6.0  # from "contact needed" to the directory fixed
    graded: int = 0
    cleared: int = 0
    contacts_fixed: int = 0

    def decide(self, url: str) -> Grade:
        """The grade for ``url``, the same for every run of the seed (the port, which differs
        from run to run, plays no part)."""
        parts = urlsplit(url)
        digest = hashlib.sha256(f"{self.seed}:{parts.hostname}{parts.path}".encode()).digest()
        draw = int.from_bytes(digest[:4], "big") / 2**32
        if draw < self.police_share:
            return Grade.police
        if draw < self.police_share + self.not_illegal_share:
            return Grade.not_illegal
        return Grade.illegal

    def _waits(self) -> tuple[tuple[str, timedelta], ...]:
        waits = [
            (ItemState.queued, timedelta(minutes=self.minutes)),
            (ItemState.police, timedelta(hours=self.police_hours)),
        ]
        if self.internet is not None:
            waits.append((ItemState.contact_needed, timedelta(hours=self.contact_hours)))
        return tuple(waits)

    def next_due(self, session: Session) -> datetime | None:
        """When the analyst will next have something to do."""
        found: list[datetime] = []
        for state, wait in self._waits():
            oldest = session.scalar(
                select(func.min(UrlItem.updated_at)).where(UrlItem.state == state)
            )
            if oldest is not None:
                found.append(oldest + wait)
        return min(found, default=None)

    def act(self, sessions: sessionmaker[Session], now: datetime) -> int:
        """Grade every queued item that waited ``minutes`` and clear every police item that
        waited ``police_hours``; returns how many."""
        done = 0
        for state, wait in self._waits():
            with sessions() as session:
                due = list(
                    session.execute(
                        select(UrlItem.id, UrlItem.url)
                        .where(UrlItem.state == state, UrlItem.updated_at <= now - wait)
                        .order_by(UrlItem.id)
                    )
                )
            for item_id, url in due:
                with sessions() as session, session.begin():
                    try:
                        if state == ItemState.contact_needed:
                            if not self._fix_contact(session, item_id):
                                continue
                            retry_attribution(session, item_id, actor=ACTOR)
                            self.contacts_fixed += 1
                        elif state == ItemState.police:
                            queue.police_cleared(
                                session, item_id, actor=ACTOR, settings=self.settings
                            )
                            self.cleared += 1
                        else:
                            grade = self.decide(url)
                            category = CATEGORY if grade in (Grade.illegal, Grade.police) else None
                            queue.grade(
                                session,
                                item_id,
                                str(grade),
                                category,
                                actor=ACTOR,
                                settings=self.settings,
                            )
                            self.graded += 1
                    except Conflict:  # someone else acted on it meanwhile
                        continue
                done += 1
        return done

    def _fix_contact(self, session: Session, item_id: int) -> bool:
        """Approve or add the contact of the item's network; False when it cannot be found
        (no address, a network that is no simulated hoster's): the item keeps waiting."""
        item = session.get(UrlItem, item_id)
        hoster = None
        if item is not None and item.asn is not None and self.internet is not None:
            hoster = next((h for h in self.internet.hosters.values() if h.asn == item.asn), None)
        if hoster is None:
            return False
        found = session.scalars(
            select(AbuseContact).where(
                AbuseContact.asn == hoster.asn, AbuseContact.kind == "hoster"
            )
        ).first()
        if found is None:
            directory.add_contact(
                session,
                f"{hoster.org} abuse desk",
                actor=ACTOR,
                email=hoster.abuse_email,
                asn=hoster.asn,
                org=hoster.org,
                country=hoster.country,
                approved=True,
            )
        elif not found.approved or not found.email:
            directory.update_contact(
                session, found.id, actor=ACTOR, approved=True, email=hoster.abuse_email
            )
        return True
