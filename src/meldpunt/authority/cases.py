"""Cases: the authority's file on one hoster.

- **Escalations** are the items the hotline escalated (state ``escalated``: still online past
  the escalation norm) that no open case holds yet, grouped by hoster (abuse contact, network,
  owner).
- A case opens from one or several escalated items of **one** hoster (source ``escalation``;
  items of different hosters are refused), or by the authority itself (source ``authority``) on
  a URL, taken in through the hotline's intake as a flagger's report of the authority's
  organisation, so that the hotline fetches, grades, attributes and re-checks it as any other
  (the case holds the item), or on a hoster (a contact or an AS number; items added later).
- The evidence is the items' timelines (``item_events``).
- Items are added while the case is open; a case closes when no order of it is still running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.reports.intake import submit_report
from meldpunt.reports.vocabulary import FINAL_STATES, ItemState, ReportSource
from meldpunt.store.models import AbuseContact, Case, CaseItem, ItemEvent, Order, UrlItem

from .common import (
    MAX_TITLE,
    Hoster,
    check_ids,
    free_text,
    iso,
    locked,
    new_ref,
    write_lock,
)
from .errors import Conflict, InvalidInput, NotFound
from .vocabulary import FINAL_ORDER_STATUSES, CaseSource, CaseState

__all__ = [
    "MAX_ESCALATIONS",
    "CaseItemView",
    "CaseView",
    "EscalatedItem",
    "HosterGroup",
    "add_items",
    "close_case",
    "escalations",
    "get_case",
    "list_cases",
    "open_case",
]

#: Escalated items one listing reads (the oldest first).
MAX_ESCALATIONS = 5000
#: Timeline lines shown per item of a case.
MAX_EVENTS = 200


@dataclass(frozen=True)
class EscalatedItem:
    id: int
    url: str
    escalated_at: str | None
    first_notice_at: str | None
    renotices: int


@dataclass
class HosterGroup:
    contact_id: int | None
    contact_name: str | None
    asn: int | None
    network_owner: str | None
    items: list[EscalatedItem] = field(default_factory=list)

    def plain(self) -> dict[str, Any]:
        return {
            "contact_id": self.contact_id,
            "contact": self.contact_name,
            "asn": self.asn,
            "network_owner": self.network_owner,
            "count": len(self.items),
            "items": [i.__dict__ for i in self.items],
        }


def _in_open_case() -> Any:
    return exists().where(
        CaseItem.item_id == UrlItem.id,
        CaseItem.case_id == Case.id,
        Case.state == CaseState.open,
    )


def escalations(session: Session, *, limit: int = MAX_ESCALATIONS) -> list[HosterGroup]:
    """The escalated items no open case holds, by hoster (most items first)."""
    rows = session.scalars(
        select(UrlItem)
        .where(UrlItem.state == ItemState.escalated, ~_in_open_case())
        .order_by(UrlItem.escalated_at, UrlItem.id)
        .limit(min(limit, MAX_ESCALATIONS))
    )
    groups: dict[tuple[Any, ...], HosterGroup] = {}
    for row in rows:
        key = (row.contact_id, row.asn, row.network_owner)
        group = groups.get(key)
        if group is None:
            group = groups[key] = HosterGroup(row.contact_id, None, row.asn, row.network_owner)
        group.items.append(
            EscalatedItem(
                row.id, row.url, iso(row.escalated_at), iso(row.first_notice_at), row.renotices
            )  # fmt: skip
        )
    names = _contact_names(session, [g.contact_id for g in groups.values()])
    for group in groups.values():
        group.contact_name = names.get(group.contact_id) if group.contact_id else None
    return sorted(groups.values(), key=lambda g: (-len(g.items), g.asn or 0, g.contact_id or 0))


def _contact_names(session: Session, ids: Sequence[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(
        session.execute(
            select(AbuseContact.id, AbuseContact.name).where(AbuseContact.id.in_(wanted))
        ).all()
    )


def _case(session: Session, case_id: int, *, lock: bool = False) -> Case:
    query = select(Case).where(Case.id == case_id)
    case = session.scalars(locked(session, query) if lock else query).first()
    if case is None:
        raise NotFound(f"no case {case_id}")
    return case


def _items_for(session: Session, item_ids: Sequence[int]) -> list[UrlItem]:
    rows = {
        r.id: r
        for r in session.scalars(
            locked(session, select(UrlItem).where(UrlItem.id.in_(list(item_ids))))
        )
    }
    missing = [i for i in item_ids if i not in rows]
    if missing:
        raise NotFound(f"no item {', '.join(map(str, missing[:10]))}")
    return [rows[i] for i in item_ids]


def _held_elsewhere(
    session: Session, item_ids: Sequence[int], case_id: int | None
) -> dict[int, str]:
    query = (
        select(CaseItem.item_id, Case.ref)
        .join(Case, Case.id == CaseItem.case_id)
        .where(CaseItem.item_id.in_(list(item_ids)), Case.state == CaseState.open)
    )
    if case_id is not None:
        query = query.where(Case.id != case_id)
    return dict(session.execute(query).all())


def _one_hoster(rows: Sequence[UrlItem], start: Hoster | None) -> Hoster | None:
    """The hoster every item is at (``start``: the case's), or ``InvalidInput``."""
    hoster = start
    for row in rows:
        if row.attributed_at is None and row.asn is None and row.contact_id is None:
            continue  # not attributed yet: any hoster's case may hold it
        here = Hoster.of_item(row)
        if hoster is None or (hoster.asn is None and hoster.contact_id is None):
            hoster = here
        elif not hoster.same_as(here):
            raise InvalidInput(
                f"item {row.id} is at another hoster ({here.describe()}) than "
                f"{hoster.describe()}: a case is about one hoster; open a case per hoster"
            )
    return hoster


def _link_items(session: Session, case: Case, rows: Sequence[UrlItem], actor: str) -> None:
    now = clock.now()
    session.add_all(
        CaseItem(case_id=case.id, item_id=row.id, added_at=now, added_by=actor) for row in rows
    )
    case.updated_at = now


def open_case(
    session: Session,
    *,
    actor: str,
    item_ids: Sequence[int] | None = None,
    url: str | None = None,
    contact_id: int | None = None,
    asn: int | None = None,
    title: str | None = None,
    note: str | None = None,
    org_id: int | None = None,
) -> Case:
    """Open a case (flushed, audited; the caller commits). Exactly one of: ``item_ids``
    (escalated items of one hoster), ``url`` (taken in as the authority's report; ``org_id`` is
    the authority's organisation), or a hoster (``contact_id`` and/or ``asn``)."""
    given = sum(1 for v in (item_ids, url) if v) + (1 if contact_id or asn else 0)
    if given != 1:
        raise InvalidInput(
            "a case opens from escalated items, from a URL, or on a hoster (a contact or an AS "
            "number): give exactly one of them"
        )
    title = free_text(title, "the title", MAX_TITLE, required=False)
    note = free_text(note, "the note", 10_000, required=False)
    write_lock(session)
    now = clock.now()
    rows: list[UrlItem] = []
    source = CaseSource.authority
    report_ref = None
    if item_ids:
        ids = check_ids(item_ids)
        rows = _items_for(session, ids)
        wrong = [r.id for r in rows if r.state != ItemState.escalated]
        if wrong:
            raise Conflict(
                f"item(s) {', '.join(map(str, wrong[:10]))} are not escalated: a case opens from "
                "the hotline's escalations (the authority can open one on a URL or hoster itself)"
            )
        held = _held_elsewhere(session, ids, None)
        if held:
            first = next(iter(held.items()))
            raise Conflict(f"item {first[0]} is in open case {first[1]} already")
        hoster = _one_hoster(rows, None)
        source = CaseSource.escalation
    elif url:
        receipt = submit_report(
            session,
            source=ReportSource.flagger,
            kind="csam",
            urls=[(url, None)],
            org_id=org_id,
            actor=actor,
        )
        report_ref = receipt.ref
        rows = _items_for(session, [receipt.urls[0].item_id])
        if _held_elsewhere(session, [rows[0].id], None):
            raise Conflict(f"the URL is item {rows[0].id}, which an open case holds already")
        hoster = _one_hoster(rows, None)
    else:
        contact = None
        if contact_id is not None:
            contact = session.get(AbuseContact, contact_id)
            if contact is None:
                raise NotFound(f"no abuse contact {contact_id}")
        hoster = Hoster(contact_id, asn if asn is not None else (contact.asn if contact else None),
                        contact.org if contact else None)  # fmt: skip
    hoster = hoster or Hoster(None, None, None)
    if hoster.contact_id is None and hoster.asn is not None:
        found = session.scalars(
            select(AbuseContact)
            .where(AbuseContact.asn == hoster.asn, AbuseContact.kind == "hoster")
            .order_by(AbuseContact.approved.desc(), AbuseContact.id)
            .limit(1)
        ).first()
        if found is not None:
            hoster = Hoster(found.id, hoster.asn, hoster.network_owner or found.org)
    contact = session.get(AbuseContact, hoster.contact_id) if hoster.contact_id else None
    case = Case(
        ref=new_ref("C", now),
        state=CaseState.open,
        source=source,
        contact_id=hoster.contact_id,
        asn=hoster.asn,
        network_owner=hoster.network_owner,
        title=title or _title(source, hoster.describe(contact), rows, url),
        note=note,
        opened_by=actor,
        opened_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    _link_items(session, case, rows, actor)
    audit.record(
        session,
        actor=actor,
        action="authority.case_opened",
        subject=("case", case.id),
        details={
            "ref": case.ref,
            "source": source.value,
            "contact_id": case.contact_id,
            "asn": case.asn,
            "items": [r.id for r in rows],
            "report": report_ref,
        },
    )
    session.flush()
    return case


def _title(source: str, hoster: str, rows: Sequence[UrlItem], url: str | None) -> str:
    if url:
        return f"Reported by the authority: {rows[0].host if rows else 'a URL'}"[:MAX_TITLE]
    if rows:
        return f"{len(rows)} escalated URL(s) at {hoster}"[:MAX_TITLE]
    return f"Hoster {hoster}"[:MAX_TITLE]


def add_items(session: Session, case_id: int, item_ids: Sequence[int], *, actor: str) -> Case:
    """Add open items of the case's hoster (flushed, audited); items already in it are skipped."""
    ids = check_ids(item_ids)
    if not ids:
        raise InvalidInput("name at least one item")
    write_lock(session)
    case = _case(session, case_id, lock=True)
    if case.state != CaseState.open:
        raise Conflict(f"case {case.ref} is closed")
    already = set(
        session.scalars(
            select(CaseItem.item_id).where(CaseItem.case_id == case.id, CaseItem.item_id.in_(ids))
        )
    )
    rows = [r for r in _items_for(session, ids) if r.id not in already]
    final = [r.id for r in rows if r.state in FINAL_STATES]
    if final:
        raise Conflict(f"item(s) {', '.join(map(str, final[:10]))} are final (offline or closed)")
    held = _held_elsewhere(session, [r.id for r in rows], case.id)
    if held:
        first = next(iter(held.items()))
        raise Conflict(f"item {first[0]} is in open case {first[1]} already")
    hoster = _one_hoster(rows, Hoster(case.contact_id, case.asn, case.network_owner))
    if hoster is not None and case.asn is None and case.contact_id is None:
        case.contact_id, case.asn, case.network_owner = (
            hoster.contact_id, hoster.asn, hoster.network_owner)  # fmt: skip
    _link_items(session, case, rows, actor)
    audit.record(
        session,
        actor=actor,
        action="authority.case_items_added",
        subject=("case", case.id),
        details={"ref": case.ref, "items": [r.id for r in rows]},
    )
    session.flush()
    return case


def adopt_hoster(session: Session, case: Case) -> None:
    """A case opened on a URL learns its hoster once the hotline attributed the item."""
    if case.asn is not None or case.contact_id is not None:
        return
    row = session.scalars(
        select(UrlItem)
        .join(CaseItem, CaseItem.item_id == UrlItem.id)
        .where(CaseItem.case_id == case.id, UrlItem.attributed_at.is_not(None))
        .order_by(UrlItem.id)
        .limit(1)
    ).first()
    if row is not None:
        case.contact_id, case.asn, case.network_owner = row.contact_id, row.asn, row.network_owner


def close_case(session: Session, case_id: int, *, actor: str, note: str | None = None) -> Case:
    """Close a case whose orders are all final (met, late or withdrawn)."""
    note = free_text(note, "the note", 10_000, required=False)
    write_lock(session)
    case = _case(session, case_id, lock=True)
    if case.state != CaseState.open:
        raise Conflict(f"case {case.ref} is closed already")
    running = session.scalars(
        select(Order.ref).where(
            Order.case_id == case.id, Order.status.not_in(list(FINAL_ORDER_STATUSES))
        )
    ).first()
    if running is not None:
        raise Conflict(
            f"order {running} of case {case.ref} is still running: withdraw it or wait until "
            "it is met or late"
        )
    now = clock.now()
    case.state = CaseState.closed
    case.closed_at = case.updated_at = now
    if note:
        case.note = f"{case.note}\n\n{note}" if case.note else note
    audit.record(
        session,
        actor=actor,
        action="authority.case_closed",
        subject=("case", case.id),
        details={"ref": case.ref, "note": (note or "")[:500] or None},
    )
    session.flush()
    return case


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineLine:
    at: str
    event: str
    actor: str
    details: str | None


@dataclass(frozen=True)
class CaseItemView:
    id: int
    url: str
    host: str
    state: str
    asn: int | None
    network_owner: str | None
    contact_id: int | None
    first_notice_at: str | None
    escalated_at: str | None
    gone_at: str | None
    offline_at: str | None
    renotices: int
    added_at: str
    added_by: str
    timeline: list[TimelineLine]

    def plain(self) -> dict[str, Any]:
        found = dict(self.__dict__)
        found["timeline"] = [line.__dict__ for line in self.timeline]
        return found


@dataclass(frozen=True)
class CaseView:
    id: int
    ref: str
    state: str
    source: str
    contact_id: int | None
    contact: str | None
    asn: int | None
    network_owner: str | None
    title: str
    note: str | None
    opened_by: str
    opened_at: str
    closed_at: str | None
    items: list[CaseItemView]
    orders: list[dict[str, Any]]
    fines: list[dict[str, Any]]
    item_count: int

    def plain(self) -> dict[str, Any]:
        found = dict(self.__dict__)
        found["items"] = [i.plain() for i in self.items]
        return found


def _summary(case: Case, contact: str | None, count: int) -> dict[str, Any]:
    return {
        "id": case.id,
        "ref": case.ref,
        "state": case.state,
        "source": case.source,
        "contact_id": case.contact_id,
        "contact": contact,
        "asn": case.asn,
        "network_owner": case.network_owner,
        "title": case.title,
        "opened_by": case.opened_by,
        "opened_at": iso(case.opened_at),
        "closed_at": iso(case.closed_at),
        "items": count,
    }


def list_cases(
    session: Session,
    *,
    state: str | None = None,
    asn: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    query = select(Case).order_by(Case.opened_at.desc(), Case.id.desc())
    if state:
        query = query.where(Case.state == state)
    if asn is not None:
        query = query.where(Case.asn == asn)
    rows = list(session.scalars(query.limit(limit).offset(offset)))
    counts = dict(
        session.execute(
            select(CaseItem.case_id, func.count())
            .where(CaseItem.case_id.in_([r.id for r in rows]))
            .group_by(CaseItem.case_id)
        ).all()
    )
    names = _contact_names(session, [r.contact_id for r in rows])
    return [
        _summary(r, names.get(r.contact_id) if r.contact_id else None, counts.get(r.id, 0))
        for r in rows
    ]


def get_case(session: Session, case_id: int, *, item_limit: int = 500) -> CaseView:
    """A case with its items (each with its timeline, the evidence), orders and fines."""
    from .fines import fine_summary
    from .orders import order_summary

    case = _case(session, case_id)
    rows = list(
        session.execute(
            select(UrlItem, CaseItem)
            .join(CaseItem, and_(CaseItem.item_id == UrlItem.id, CaseItem.case_id == case.id))
            .order_by(UrlItem.id)
            .limit(item_limit)
        )
    )
    count = session.scalar(select(func.count()).where(CaseItem.case_id == case.id)) or 0
    events: dict[int, list[TimelineLine]] = {row.id: [] for row, _ in rows}
    if events:
        for event in session.scalars(
            select(ItemEvent)
            .where(ItemEvent.item_id.in_(list(events)))
            .order_by(ItemEvent.item_id, ItemEvent.id)
        ):
            lines = events[event.item_id]
            if len(lines) < MAX_EVENTS:
                lines.append(TimelineLine(event.at.isoformat(), event.event, event.actor,
                                          event.details))  # fmt: skip
    contact = session.get(AbuseContact, case.contact_id) if case.contact_id else None
    from meldpunt.store.models import Fine

    orders = [
        order_summary(o)
        for o in session.scalars(select(Order).where(Order.case_id == case.id).order_by(Order.id))
    ]
    fines = [
        fine_summary(f)
        for f in session.scalars(select(Fine).where(Fine.case_id == case.id).order_by(Fine.id))
    ]
    return CaseView(
        id=case.id,
        ref=case.ref,
        state=case.state,
        source=case.source,
        contact_id=case.contact_id,
        contact=contact.name if contact else None,
        asn=case.asn,
        network_owner=case.network_owner,
        title=case.title,
        note=case.note,
        opened_by=case.opened_by,
        opened_at=case.opened_at.isoformat(),
        closed_at=iso(case.closed_at),
        items=[
            CaseItemView(
                id=row.id,
                url=row.url,
                host=row.host,
                state=row.state,
                asn=row.asn,
                network_owner=row.network_owner,
                contact_id=row.contact_id,
                first_notice_at=iso(row.first_notice_at),
                escalated_at=iso(row.escalated_at),
                gone_at=iso(row.gone_at),
                offline_at=iso(row.offline_at),
                renotices=row.renotices,
                added_at=link.added_at.isoformat(),
                added_by=link.added_by,
                timeline=events[row.id],
            )
            for row, link in rows
        ],
        orders=orders,
        fines=fines,
        item_count=count,
    )


def case_item_ids(session: Session, case_id: int) -> list[int]:
    return list(
        session.scalars(
            select(CaseItem.item_id).where(CaseItem.case_id == case_id).order_by(CaseItem.item_id)
        )
    )


__all__ += ["adopt_hoster", "case_item_ids", "TimelineLine"]
