"""Compliance with orders and penalty payments, evaluated by the worker (``run_compliance``).

What counts, per listed URL (``judge_items``):

- **gone** when the item is ``offline``: at ``gone_at`` (the first miss of the run of misses
  that made it offline; ``offline_at`` where that is missing). An item the re-checks found
  **moved** to another hoster after the order was issued is gone from this hoster at the moment
  of the move (it is the new hoster's, noticed anew). An item that left in another final way
  (graded again, failed) is gone at its last change;
- **undecided** while misses are in progress (``gone_at`` set, not yet offline): the order is
  evaluated again shortly, and nothing is decided that depends on it;
- **online** otherwise (also when the hoster's server answers errors: not removed).

At ``check_at`` (the deadline, then again) an order that is running is evaluated:

- every URL gone: ``met`` when the last one was gone by the deadline, else ``late``. Both are
  final; penalty payments stop.
- something online after the deadline: ``unmet`` (audited once), evaluated again at the next
  re-check or penalty moment.

Penalty payments: period k is due at ``deadline + (k-1) * period``. It is forfeited when at its
due moment some listed URL was not gone (online, or first seen gone only later); it is decided
only once that is known (an undecided URL first seen gone by then is waited for). Each is
``penalty_cents``, except that the total never passes ``penalty_cap_cents``: the last one is the
part that reaches the cap exactly, and then they stop. Each due moment also brings the listed
URLs' re-checks forward to it, so the decision rests on a check at that moment.

A URL that comes back after the order was met or late is not the order's any more (the order is
final): the hotline notices it again, and the authority may issue a new order. While the order
still runs, a URL that comes back is online again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.config import Settings
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.vocabulary import FINAL_STATES, Event, ItemState
from meldpunt.store.models import ItemEvent, Order, OrderItem, Penalty, UrlItem

from .common import is_postgres, write_lock
from .orders import RUNNING, WATCHED_STATES
from .vocabulary import OrderStatus

__all__ = ["ACTOR", "Judged", "evaluate", "judge_items", "pull_checks", "run_compliance"]

log = logging.getLogger(__name__)

ACTOR = "worker"


@dataclass(frozen=True)
class Judged:
    verdict: str  # gone, undecided, online
    gone_at: datetime | None
    why: str


def _moves(session: Session, order: Order, item_ids: Sequence[int]) -> dict[int, datetime]:
    """The first move to another hoster after the order was issued, per item."""
    if not item_ids:
        return {}
    found: dict[int, datetime] = {}
    for item_id, at in session.execute(
        select(ItemEvent.item_id, ItemEvent.at)
        .where(
            ItemEvent.item_id.in_(list(item_ids)),
            ItemEvent.event == Event.moved,
            ItemEvent.at >= order.issued_at,
        )
        .order_by(ItemEvent.id)
    ):
        found.setdefault(item_id, at)
    return found


def _elsewhere(order: Order, row: UrlItem) -> bool:
    """Whether the item is (being) attributed to another hoster than the order's."""
    if row.attributed_at is None:
        return True  # attributed anew after a move
    if order.contact_id is not None and row.contact_id is not None:
        return row.contact_id != order.contact_id
    return row.asn != order.asn


def judge_items(session: Session, order: Order, rows: Sequence[UrlItem]) -> dict[int, Judged]:
    moves = _moves(session, order, [r.id for r in rows])
    found: dict[int, Judged] = {}
    for row in rows:
        moved = moves.get(row.id)
        if row.state == ItemState.offline:
            at = row.gone_at or row.offline_at
            found[row.id] = Judged("gone", at, "offline")
        elif moved is not None and _elsewhere(order, row):
            found[row.id] = Judged("gone", moved, "moved to another hoster")
        elif row.state in FINAL_STATES:
            found[row.id] = Judged("gone", row.updated_at, row.state)
        elif row.gone_at is not None:
            found[row.id] = Judged("undecided", row.gone_at, f"{row.misses} miss(es) so far")
        else:
            found[row.id] = Judged("online", None, row.state)
    return found


def _at_moment(judged: Sequence[Judged], moment: datetime) -> bool | None:
    """Whether every URL was gone at ``moment``: True, False, or None (not known yet)."""
    unknown = False
    for j in judged:
        if j.verdict == "online" or (j.gone_at is not None and j.gone_at > moment):
            return False
        if j.verdict == "undecided":
            unknown = True
    return None if unknown else True


def _penalties(session: Session, order: Order, judged: Sequence[Judged], now: datetime) -> int:
    """Decide the penalty moments that have come; returns how many were forfeited."""
    forfeited = 0
    amount, cap = order.penalty_cents or 0, order.penalty_cap_cents or 0
    period = timedelta(hours=order.penalty_period_hours or 24.0)
    while order.next_penalty_at is not None and order.next_penalty_at <= now:
        moment = order.next_penalty_at
        gone = _at_moment(judged, moment)
        if gone is None:
            break  # wait for the undecided URLs
        if gone:
            order.next_penalty_at = None  # the material was gone: no more
            break
        due = min(amount, cap - order.penalty_total_cents)
        if due <= 0:
            order.next_penalty_at = None
            break
        seq = 1 + round((moment - order.deadline_at) / period)
        session.add(
            Penalty(order_id=order.id, seq=seq, due_at=moment, forfeited_at=now,
                    amount_cents=due, asn=order.asn, network_owner=order.network_owner)
        )  # fmt: skip
        order.penalty_total_cents += due
        forfeited += 1
        audit.record(
            session,
            actor=ACTOR,
            action="authority.penalty_forfeited",
            subject=("order", order.id),
            details={"ref": order.ref, "seq": seq, "due_at": moment.isoformat(),
                     "amount_cents": due, "total_cents": order.penalty_total_cents,
                     "asn": order.asn},
        )  # fmt: skip
        following = moment + period
        order.next_penalty_at = (
            following if order.penalty_total_cents < cap and amount > 0 else None
        )
    return forfeited


def evaluate(session: Session, order: Order, settings: Settings, now: datetime) -> str:
    """Evaluate one running order whose ``check_at`` has come (in the caller's transaction);
    returns what happened: ``wait`` (a re-check of a URL is due first), ``undecided``,
    ``unmet``, ``met`` or ``late``."""
    links = list(session.scalars(select(OrderItem).where(OrderItem.order_id == order.id)))
    rows = list(
        session.scalars(select(UrlItem).where(UrlItem.id.in_([link.item_id for link in links])))
    )
    pending = [
        r for r in rows
        if r.state in WATCHED_STATES and r.next_check_at is not None and r.next_check_at <= now
        and (r.lease_until is None or r.lease_until <= now)
    ]  # fmt: skip
    if pending:
        return "wait"  # the re-checks look at these first (they run before this step)
    judged = judge_items(session, order, rows)
    by_item = {link.item_id: link for link in links}
    for item_id, j in judged.items():
        link = by_item.get(item_id)
        if link is not None:
            link.gone_at = j.gone_at if j.verdict == "gone" else None
    values = list(judged.values())
    _penalties(session, order, values, now)
    check = timedelta(minutes=settings.takedown_check_minutes)
    soon = timedelta(minutes=max(settings.takedown_miss_spacing_minutes, 1.0))
    order.updated_at = now
    if all(j.verdict == "gone" for j in values):
        last = max((j.gone_at for j in values if j.gone_at is not None), default=now)
        status = OrderStatus.met if last <= order.deadline_at else OrderStatus.late
        order.status = status
        order.gone_at = last
        order.check_at = order.next_penalty_at = None
        audit.record(
            session,
            actor=ACTOR,
            action=f"authority.order_{status.value}",
            subject=("order", order.id),
            details={"ref": order.ref, "gone_at": last.isoformat(),
                     "deadline_at": order.deadline_at.isoformat(),
                     "penalty_total_cents": order.penalty_total_cents},
        )  # fmt: skip
        return status.value
    if any(j.verdict == "online" for j in values):
        if order.status == OrderStatus.issued:
            order.status = OrderStatus.unmet
            online = [i for i, j in judged.items() if j.verdict == "online"]
            audit.record(
                session,
                actor=ACTOR,
                action="authority.order_unmet",
                subject=("order", order.id),
                details={"ref": order.ref, "online": online[:100], "count": len(online),
                         "deadline_at": order.deadline_at.isoformat()},
            )  # fmt: skip
        following = now + check
        if order.next_penalty_at is not None:
            following = min(following, order.next_penalty_at)
        if any(j.verdict == "undecided" for j in values):
            following = min(following, now + soon)
        order.check_at = max(following, now + timedelta(seconds=1))
        return "unmet"
    order.check_at = now + soon  # misses in progress: look again soon
    return "undecided"


def pull_checks(session: Session, now: datetime) -> int:
    """Bring the re-checks of running orders' URLs forward to the orders' next moment
    (``check_at``, when it lies ahead), so that each decision rests on a check at that
    moment."""
    pairs = list(
        session.execute(
            select(UrlItem.id, Order.check_at)
            .join(OrderItem, OrderItem.item_id == UrlItem.id)
            .join(Order, Order.id == OrderItem.order_id)
            .where(
                Order.status.in_(RUNNING),
                Order.check_at.is_not(None),
                Order.check_at > now,
                UrlItem.state.in_(WATCHED_STATES),
                UrlItem.next_check_at.is_not(None),
                UrlItem.next_check_at > Order.check_at,
                UrlItem.gone_at.is_(None),  # misses in progress keep their own spacing
            )
            .limit(1000)
        )
    )
    if not pairs:
        return 0
    earliest: dict[int, datetime] = {}
    for item_id, moment in pairs:
        assert moment is not None
        earliest[item_id] = min(moment, earliest.get(item_id, moment))
    for item_id, moment in sorted(earliest.items()):  # in id order, as the re-checks lock
        session.execute(
            update(UrlItem)
            .where(UrlItem.id == item_id, UrlItem.next_check_at > moment)
            .values(next_check_at=moment)
        )
    return 0  # bookkeeping: not work that makes a round go on


def run_compliance(context: HotlineContext, limit: int) -> int:
    """Evaluate up to ``limit`` running orders whose ``check_at`` has come; returns how many
    changed. Also keeps the listed URLs' re-checks at the orders' moments."""
    now = clock.now()
    due = (Order.status.in_(RUNNING), Order.check_at.is_not(None), Order.check_at <= now)
    with context.sessions() as session:
        anything = session.scalar(select(Order.id).where(*due).limit(1)) is not None
        stale = session.scalar(
            select(UrlItem.id)
            .join(OrderItem, OrderItem.item_id == UrlItem.id)
            .join(Order, Order.id == OrderItem.order_id)
            .where(Order.status.in_(RUNNING), Order.check_at.is_not(None), Order.check_at > now,
                   UrlItem.state.in_(WATCHED_STATES), UrlItem.gone_at.is_(None),
                   UrlItem.next_check_at > Order.check_at)
            .limit(1)
        )  # fmt: skip
    if not anything and stale is None:
        return 0
    done = 0
    with context.sessions() as session, session.begin():
        write_lock(session)
        pull_checks(session, now)
        query = select(Order).where(*due).order_by(Order.check_at, Order.id).limit(limit)
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        for order in session.scalars(query.execution_options(populate_existing=True)):
            before = (order.status, order.penalty_total_cents, order.check_at)
            outcome = evaluate(session, order, context.settings, now)
            if (order.status, order.penalty_total_cents, order.check_at) != before:
                done += 1
            log.debug("order %s: %s", order.ref, outcome)
        if done:
            pull_checks(session, now)
    return done
