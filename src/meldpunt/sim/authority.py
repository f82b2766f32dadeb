"""The simulation's authority: takes up what the hotline escalates, as the authority would.

Each ``act``: every hoster with escalated URLs that no open case holds gets a case, and at once
an order for them (``order_hours``, published); an order that has forfeited ``fine_after``
penalty payments (or ended late after forfeiting any) brings its hoster a published fine of
``fine_euros`` (once per case), after which the case closes when its orders are final. All
through meldpunt's own authority room, as a person at ``/ui/authority`` would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from meldpunt.authority import cases, fines, orders
from meldpunt.authority.common import write_lock
from meldpunt.authority.errors import AuthorityError
from meldpunt.authority.vocabulary import FINAL_ORDER_STATUSES, CaseState, OrderStatus
from meldpunt.config import Settings
from meldpunt.store.models import Case, Fine, Order

__all__ = ["ACTOR", "SimAuthority"]

log = logging.getLogger(__name__)

ACTOR = "authority:sim"
REASONS = (
    "The hoster was notified of this material and re-notified, and it stayed online past the "
    "escalation norm. (Simulation.)"
)


@dataclass
class SimAuthority:
    settings: Settings
    order_hours: float = 1.0
    fine_after: int = 2
    fine_euros: float = 25_000.0
    cases_opened: int = 0
    orders_issued: int = 0
    fines_decided: int = 0
    problems: list[str] = field(default_factory=list)

    def act(self, sessions: sessionmaker[Session]) -> int:
        """Open cases and issue orders for the escalations, fine the hosters that ignore
        orders; returns how many steps it took."""
        done = 0
        with sessions() as session:
            groups = cases.escalations(session)
        for group in groups:
            if group.contact_id is None:
                continue  # nobody to order: the analysts fix the directory first
            done += self._open_and_order(sessions, group.contact_id, [i.id for i in group.items])
        done += self._fine(sessions)
        return done

    def _open_and_order(
        self, sessions: sessionmaker[Session], contact_id: int, item_ids: list[int]
    ) -> int:
        """A case for the hoster (its open one, with these items added), and an order for
        these items."""
        try:
            with sessions() as session:
                write_lock(session)  # before reading: SQLite cannot upgrade a reader later
                case = session.scalars(
                    select(Case).where(Case.contact_id == contact_id, Case.state == CaseState.open)
                ).first()
                if case is None:
                    case = cases.open_case(session, actor=ACTOR, item_ids=item_ids)
                    self.cases_opened += 1
                else:
                    cases.add_items(session, case.id, item_ids, actor=ACTOR)
                session.commit()
                hours = min(self.order_hours, self.settings.authority_max_order_hours)
                orders.issue_order(session, self.settings, case_id=case.id, actor=ACTOR,
                                   reasons=REASONS, hours=hours, item_ids=item_ids,
                                   public=True)  # fmt: skip
                session.commit()
                self.orders_issued += 1
            return 2
        except AuthorityError as exc:  # taken up meanwhile, moved on: the next act sees
            self.problems.append(str(exc))
            log.info("the simulated authority could not act: %s", exc)
            return 0

    def _ignored(self, order: Order) -> bool:
        """Whether ``order`` was ignored long enough to bring a fine."""
        total = order.penalty_total_cents
        return (
            order.status == OrderStatus.late
            or (bool(order.penalty_cents) and total >= self.fine_after * (order.penalty_cents or 0))
            or (bool(order.penalty_cap_cents) and total >= (order.penalty_cap_cents or 0))
        )

    def _fine(self, sessions: sessionmaker[Session]) -> int:
        done = 0
        with sessions() as session:  # what to do, read first ...
            fined = set(session.scalars(select(Fine.case_id).where(Fine.case_id.is_not(None))))
            due = [
                o.case_id
                for o in session.scalars(select(Order).where(Order.penalty_total_cents > 0))
                if o.case_id not in fined and self._ignored(o)
            ]
            closing = [
                case.id
                for case in session.scalars(select(Case).where(Case.state == CaseState.open))
                if case.id in fined | set(due)
                and (statuses := set(session.scalars(
                    select(Order.status).where(Order.case_id == case.id))))
                and statuses <= FINAL_ORDER_STATUSES
            ]  # fmt: skip
        for case_id in dict.fromkeys(due):  # ... then each step in a transaction of its own
            with sessions() as session:
                try:
                    fines.impose_fine(session, self.settings, actor=ACTOR, case_id=case_id,
                                      amount_euros=self.fine_euros,
                                      legal_basis=self.settings.authority_legal_basis,
                                      reasons="Removal orders were ignored. (Simulation.)",
                                      public=True)  # fmt: skip
                    session.commit()
                    self.fines_decided += 1
                    done += 1
                except AuthorityError as exc:
                    self.problems.append(str(exc))
        for case_id in closing:
            with sessions() as session:
                try:
                    cases.close_case(session, case_id, actor=ACTOR)
                    session.commit()
                    done += 1
                except AuthorityError as exc:
                    self.problems.append(str(exc))
        return done
