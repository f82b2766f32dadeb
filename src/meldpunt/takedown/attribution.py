"""Attribution: where an item is hosted and whom to tell.

Host name -> addresses (``fetcher.resolve_host``, the one resolver: the simulation and tests
override it with a name table) -> AS number, network owner and country (the operator's
IP-to-ASN table, ``takedown.asn``) -> abuse contact (the curated directory,
``takedown.directory``). Then one of three outcomes:

- an approved contact in the hotline's country (``hotline_country``; an item's country is its
  contact's, else its network's): ``attributed``, due at once, so that ``takedown.notices``
  puts it in its contact's notice;
- hosted abroad (by either country): ``forwarded``, with a forward record for the hosting
  country's hotline (``takedown.forwards``); it is still re-checked (``next_check_at``) and
  counted;
- no approved contact, a name that does not resolve, an address no network of the table holds:
  ``contact_needed``, with why; an analyst fixes the directory and asks again
  (``retry_attribution``).

``run_attributions`` is a worker step. It claims due items with a lease (after a plain read that
finds nothing to do without taking a lock), resolves outside any transaction, several names at
once, and writes the batch's outcomes in one short transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.reports import items
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.errors import Conflict
from meldpunt.reports.fetcher import FetchError, FetchPolicy, resolve_host
from meldpunt.reports.vocabulary import Event, ItemState
from meldpunt.store.models import AbuseContact, UrlItem
from meldpunt.takedown.asn import AsnTable, table_for
from meldpunt.takedown.directory import Directory

__all__ = [
    "LEASE",
    "Attribution",
    "Location",
    "attribute",
    "forward_details",
    "locate",
    "locate_many",
    "retry_attribution",
    "run_attributions",
]

#: How long a claimed item is left to its worker before another may take it.
LEASE = timedelta(minutes=5)
#: Names resolved at once (DNS answers can be slow; the name table's are not).
RESOLVE_THREADS = 8
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Location:
    """Where a host name points now: its addresses and the network of the first one the table
    knows (``problem`` says why there is none)."""

    addresses: tuple[str, ...] = ()
    ip: str | None = None
    asn: int | None = None
    org: str | None = None
    country: str | None = None
    problem: str | None = None


def _port(url: str) -> int:
    try:
        parts = urlsplit(url)
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return 80


def locate(url: str, host: str, policy: FetchPolicy, table: AsnTable) -> Location:
    """The location of ``host`` (of ``url``) by the one resolver and the IP-to-ASN table."""
    try:
        addresses = tuple(resolve_host(host.strip("[]"), _port(url), policy))
    except FetchError as exc:
        return Location(problem=f"the host name does not resolve: {exc}")
    if not addresses:
        return Location(problem=f"{host} has no addresses")
    for address in addresses:
        network = table.lookup(address)
        if network is not None:
            return Location(addresses, address, network.asn, network.org, network.country)
    return Location(
        addresses, addresses[0],
        problem=f"no network of the IP-to-ASN table holds {', '.join(addresses[:4])}",
    )  # fmt: skip


def parallel(work: Callable[[T], R], inputs: Sequence[T], threads: int) -> list[R]:
    """``work`` over ``inputs`` on up to ``threads`` threads, results in order."""
    if len(inputs) <= 1 or threads <= 1:
        return [work(i) for i in inputs]
    with ThreadPoolExecutor(max_workers=min(threads, len(inputs))) as pool:
        return list(pool.map(work, inputs))


def locate_many(
    targets: Sequence[tuple[str, str]], policy: FetchPolicy, table: AsnTable
) -> list[Location]:
    """``locate`` for (url, host) pairs, a host looked up once, several at once."""
    hosts = list(dict.fromkeys(host for _url, host in targets))
    first_url = {host: url for url, host in reversed(targets)}
    found = parallel(lambda h: locate(first_url[h], h, policy, table), hosts, RESOLVE_THREADS)
    by_host = dict(zip(hosts, found, strict=True))
    return [by_host[host] for _url, host in targets]


@dataclass(frozen=True)
class Attribution:
    """What the directory says of a location: the outcome (an ``ItemState``: ready, forwarded
    or contact_needed), the contact, the hosting country and why (for contact_needed)."""

    state: str
    contact: AbuseContact | None
    country: str | None
    why: str | None = None

    @property
    def contact_id(self) -> int | None:
        return None if self.contact is None else self.contact.id


def attribute(
    host: str, location: Location, directory: Directory, home_country: str
) -> Attribution:
    """The outcome of attributing ``host`` at ``location`` (see the module's docstring)."""
    if location.ip is None:  # no address: nothing to notify about
        return Attribution(ItemState.contact_needed, None, None, location.problem)
    # An address the table does not know: a domain rule may still name the hoster.
    contact = directory.find(host, location.asn, location.org)
    country = (contact.country if contact is not None else None) or location.country
    if country is not None and country != home_country:
        return Attribution(ItemState.forwarded, contact, country)
    if contact is None:
        network = f"AS{location.asn}" if location.asn is not None else location.ip
        owner = f" ({location.org})" if location.org else ""
        why = (
            location.problem or f"no abuse contact in the directory for {host} on {network}{owner}"
        )
        return Attribution(ItemState.contact_needed, None, country, why)
    if not contact.approved:
        why = f"the abuse contact {contact.name!r} is not approved"
        return Attribution(ItemState.contact_needed, contact, country, why)
    if not contact.email:
        why = f"the abuse contact {contact.name!r} has no e-mail address"
        return Attribution(ItemState.contact_needed, contact, country, why)
    return Attribution(ItemState.ready, contact, country)


def forward_details(row: UrlItem) -> dict[str, Any]:
    """What a forward record says of ``row`` when it is forwarded (kept in its timeline)."""
    return {
        "hosting_country": row.country,
        "ip": row.ip,
        "asn": row.asn,
        "network_owner": row.network_owner,
        "classification": row.category,
        "contact_id": row.contact_id,
    }


def _where() -> list[Any]:
    return [UrlItem.state == ItemState.ready, UrlItem.attributed_at.is_(None)]


def apply_attribution(
    session: Session,
    row: UrlItem,
    location: Location,
    outcome: Attribution,
    *,
    actor: str,
    check_minutes: float,
) -> items.Note | None:
    """Write ``outcome`` on ``row`` (location, contact, state, due times); returns the note."""
    now = clock.now()
    row.ip = location.ip
    row.asn = location.asn
    row.network_owner = location.org
    row.country = outcome.country
    row.contact_id = outcome.contact_id
    details: dict[str, Any] = {"ip": location.ip, "asn": location.asn,
                               "network_owner": location.org, "country": outcome.country,
                               "contact_id": outcome.contact_id}  # fmt: skip
    if outcome.state == ItemState.ready:
        row.attributed_at = now
        if outcome.contact is not None:
            details["contact"] = outcome.contact.name
        return items.move(session, row, ItemState.ready, actor=actor, event=Event.attributed,
                          details=details, due_at=now)  # fmt: skip
    if outcome.state == ItemState.forwarded:
        row.attributed_at = now
        note = items.move(session, row, ItemState.forwarded, actor=actor, event=Event.forwarded,
                          details=forward_details(row))  # fmt: skip
        row.next_check_at = now + timedelta(minutes=check_minutes)
        return note
    row.attributed_at = None
    details["why"] = outcome.why
    return items.move(session, row, ItemState.contact_needed, actor=actor,
                      event=Event.contact_needed, details=details)  # fmt: skip


def run_attributions(context: HotlineContext, limit: int) -> int:
    """Attribute up to ``limit`` due items (state ready, not attributed); returns how many."""
    where = _where()
    with context.sessions() as session:
        if not items.any_due(session, UrlItem.due_at, where):
            return 0
    with context.sessions() as session:
        table = table_for(session)  # its own transaction: a claim must begin with its write
    with context.sessions() as session:
        claimed = items.claim(session, UrlItem.due_at, where, limit=limit, lease=LEASE)
        targets = {row.id: (row.url, row.host) for row in claimed}
        session.commit()
    if not targets:
        return 0
    ids = list(targets)
    locations = dict(zip(ids, locate_many(list(targets.values()), context.fetch_policy, table),
                         strict=True))  # fmt: skip
    settings = context.settings
    with context.sessions() as session:
        items.begin_write(session)
        query = select(UrlItem).where(UrlItem.id.in_(ids), *where).order_by(UrlItem.id)
        if session.connection().dialect.name == "postgresql":
            query = query.with_for_update()
        rows = list(session.scalars(query.execution_options(populate_existing=True)))
        directory = Directory.load(
            session,
            (r.host for r in rows),
            (locations[r.id].asn for r in rows),
            (locations[r.id].org for r in rows),
        )
        notes = []
        for row in rows:
            location = locations[row.id]
            outcome = attribute(row.host, location, directory, settings.hotline_country)
            note = apply_attribution(session, row, location, outcome, actor="worker",
                                     check_minutes=settings.takedown_check_minutes)  # fmt: skip
            if note is not None:
                notes.append(note)
        items.note(session, notes)
        session.commit()
    return len(targets)


def retry_attribution(session: Session, item_id: int, *, actor: str) -> UrlItem:
    """An analyst's "try again" after fixing the directory: a ``contact_needed`` item becomes
    ready to be attributed now (flushed and noted; the caller commits). Raises NotFound,
    Conflict (not waiting for a contact)."""
    items.begin_write(session)
    row = items.get_item(session, item_id, lock=True)
    if row.state != ItemState.contact_needed:
        raise Conflict(f"item {item_id} is {row.state}, not waiting for a contact")
    row.attributed_at = None
    row.contact_id = None
    note = items.move(session, row, ItemState.ready, actor=actor, event=Event.retried,
                      due_at=clock.now())  # fmt: skip
    items.note(session, [n for n in (note,) if n is not None])
    return row
