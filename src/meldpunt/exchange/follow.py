"""Following partners' sets: fetch a page, verify it, apply it in one transaction, go on.

``pull(sessions, partner, policy)`` follows each set of a partner from where it left off
(``PartnerFollow.after_seq``) until the partner has nothing newer. Each page is checked by
``feeds.parse_page`` first; a page that does not fit is refused whole and the refusal is kept
on the follow (the admin pages show it), so nothing of it is applied and the next pull asks the
same question again. A page that fits is applied with its new position in one transaction: a
pull cut off half-way resumes after the last page applied.

Every entry received keeps where it came from (``EntrySource``: partner, set, the entry's id
there, the change number that last touched it). An entry two partners both send is one item
with two sources; it stops matching only when no source sends it any more.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from meldpunt.clock import now
from meldpunt.exchange.errors import FeedUnavailable, NotFound, PageRefused
from meldpunt.exchange.feeds import DEFAULT_PAGE, FeedChange, FeedPage, parse_page
from meldpunt.registry import ItemInput, classify, disable_item, enable_item, lock_registry
from meldpunt.registry.batch import apply_items
from meldpunt.reports.fetcher import FetchError, FetchPolicy, FetchRefused, fetch
from meldpunt.store import begin_write
from meldpunt.store.models import EntrySource, Item, ItemSignal, Partner, PartnerFollow

__all__ = ["FollowResult", "apply_page", "partner_policy", "pull", "pull_due"]

#: After a failed pull, the next waits this long, doubling up to a day.
RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(days=1)


@dataclass
class FollowResult:
    partner: str
    remote_set: str
    local_set_id: int
    pages: int = 0
    changes: int = 0
    bytes: int = 0
    after: int = 0
    head: int = 0
    error: str | None = None


@dataclass
class _Entry:
    """What a page says about one of the partner's entries, in the end."""

    active: bool = True
    category: str = "uncategorised"
    signals: dict[tuple[str, str], None] = field(default_factory=dict)
    seq: int = 0


def partner_policy(base: FetchPolicy) -> FetchPolicy:
    """The fetch policy for partners' feeds: an admin named the address, so it may lie inside
    the network; no redirects; pages up to 64 MB."""
    import ipaddress

    return FetchPolicy(
        allow_networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
        timeout_seconds=base.timeout_seconds,
        total_seconds=max(base.total_seconds, 120.0),
        max_bytes=64 * 1024 * 1024,
        max_redirects=0,
        ca_file=base.ca_file,
        user_agent=base.user_agent.replace("hotline re-check", "exchange"),
        names=base.names,
    )


def _fold(changes: tuple[FeedChange, ...]) -> dict[int, _Entry]:
    """Each entry's state at the end of the page (changes state results, so the last wins)."""
    entries: dict[int, _Entry] = {}
    for change in changes:
        entry = entries.setdefault(change.entry, _Entry())
        entry.seq = change.seq
        entry.category = change.category
        if change.action == "remove":
            entry.active = False
            entry.signals.clear()
        else:
            entry.active = True
            entry.signals[(change.signal_type, change.value)] = None
    return entries


def apply_page(
    session: Session,
    follow: PartnerFollow,
    partner: Partner,
    page: FeedPage,
) -> int:
    """Apply a verified page to the follow's set (flushed, not committed); returns how many
    entries it touched. Changes outside the categories taken in count as removals."""
    lock_registry(session)
    taken = None if follow.categories is None else frozenset(json.loads(follow.categories))
    entries = _fold(page.changes)
    actor = f"partner:{partner.name}"
    sources = (
        {
            row.remote_item: row
            for row in session.scalars(
                select(EntrySource).where(
                    EntrySource.partner_id == partner.id,
                    EntrySource.remote_set == follow.remote_set,
                    EntrySource.remote_item.in_(list(entries)),
                )
            )
        }
        if entries
        else {}
    )
    at = now()
    adds: list[tuple[int, _Entry]] = []
    removals: list[tuple[int, _Entry]] = []
    for remote, entry in entries.items():
        if entry.active and (taken is None or entry.category in taken) and entry.signals:
            adds.append((remote, entry))
        elif not entry.active or (taken is not None and entry.category not in taken):
            removals.append((remote, entry))
    inputs = []
    for remote, entry in adds:
        signals = list(entry.signals)
        source = sources.get(remote)
        if source is not None:  # signals it had already, so that the new ones join the same item
            signals += session.execute(
                select(ItemSignal.signal_type, ItemSignal.value).where(
                    ItemSignal.item_id == source.item_id
                )
            ).all()
        inputs.append(
            ItemInput(
                signals=tuple(dict.fromkeys(signals)),
                category=classify(entry.category, "meldpunt"),
                reference=f"{partner.name}:{remote}"[:200],
            )
        )
    result = (
        apply_items(
            session, follow.local_set_id, inputs, actor=actor, audit_each=False, source=partner.name
        )
        if inputs
        else None
    )
    woken: list[int] = []
    new_sources = []
    for (remote, entry), outcome in zip(adds, result.outcomes if result else [], strict=True):
        if outcome.item_id is None:
            continue  # its signals belong to two of our items: left as they are
        source = sources.get(remote)
        if source is None:
            new_sources.append(
                {
                    "item_id": outcome.item_id,
                    "partner_id": partner.id,
                    "remote_set": follow.remote_set,
                    "remote_item": remote,
                    "remote_seq": entry.seq,
                    "active": True,
                    "updated_at": at,
                }
            )
            if outcome.outcome != "added":
                woken.append(outcome.item_id)
        else:
            if not source.active:
                woken.append(outcome.item_id)
            source.item_id, source.remote_seq = outcome.item_id, entry.seq
            source.active, source.updated_at = True, at
    if new_sources:
        session.execute(EntrySource.__table__.insert(), new_sources)  # type: ignore[attr-defined]
    for item_id in woken:  # an entry sent again after a removal matches again
        status = session.scalar(select(Item.status).where(Item.id == item_id))
        if status == "disabled":
            enable_item(session, item_id, actor=actor, note=f"sent again by partner {partner.name}")
    for remote, entry in removals:
        source = sources.get(remote)
        if source is None or not source.active:
            continue
        source.active, source.remote_seq, source.updated_at = False, entry.seq, at
        session.flush()
        others = session.scalar(
            select(EntrySource.id)
            .where(EntrySource.item_id == source.item_id, EntrySource.active.is_(True))
            .limit(1)
        )
        if others is None:
            disable_item(
                session,
                source.item_id,
                actor=actor,
                note=f"removed by partner {partner.name} (change {entry.seq})",
            )
    follow.after_seq = page.last
    follow.remote_head = page.head
    follow.remote_head_at = page.head_at
    if page.last_at is not None:
        follow.applied_at = page.last_at
    elif page.last >= page.head:
        follow.applied_at = page.head_at
    follow.changes_applied += len(page.changes)
    session.flush()
    return len(entries)


def _fetch_page(partner: Partner, follow: PartnerFollow, policy: FetchPolicy, limit: int) -> bytes:
    url = (
        f"{partner.url}/v1/feeds/{quote(follow.remote_set, safe='')}"
        f"?after={follow.after_seq}&limit={limit}"
    )
    headers = {"Accept": "application/gzip"}
    if partner.remote_token:
        headers["Authorization"] = f"Bearer {partner.remote_token}"
    try:
        answer = fetch(url, policy, headers=headers)
    except FetchRefused as exc:
        raise FeedUnavailable(f"{partner.name}: {exc}") from None
    except FetchError as exc:
        raise FeedUnavailable(f"{partner.name} could not be reached: {exc}") from None
    if answer.status != 200:
        message = ""
        try:
            message = str(orjson.loads(answer.body)["error"]["message"])[:300]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = answer.body[:200].decode("utf-8", "replace")
        raise FeedUnavailable(f"{partner.name} answered {answer.status}: {message}")
    if answer.truncated or answer.error:
        raise FeedUnavailable(f"{partner.name}'s page was cut off ({answer.error or 'too large'})")
    return answer.body


def _record_failure(sessions: sessionmaker[Session], follow_id: int, message: str) -> None:
    with sessions() as session:
        begin_write(session)
        row = session.get(PartnerFollow, follow_id)
        if row is None:
            return
        row.failures += 1
        row.last_error = message[:2000]
        row.last_error_at = now()
        row.last_pull_at = now()
        wait = min(MAX_RETRY, RETRY * (2 ** min(row.failures - 1, 16)))
        row.next_pull_at = now() + wait
        session.commit()


def pull_follow(
    sessions: sessionmaker[Session],
    follow_id: int,
    policy: FetchPolicy,
    *,
    limit: int = DEFAULT_PAGE,
    max_pages: int | None = None,
    every: timedelta = timedelta(minutes=1),
    on_page: Callable[[FollowResult], None] | None = None,
) -> FollowResult:
    """Follow one set of a partner until it has nothing newer (or ``max_pages`` pages)."""
    with sessions() as session:
        follow = session.get(PartnerFollow, follow_id)
        if follow is None:
            raise NotFound(f"no follow {follow_id}")
        partner = session.get(Partner, follow.partner_id)
        assert partner is not None
        result = FollowResult(
            partner.name,
            follow.remote_set,
            follow.local_set_id,
            after=follow.after_seq,
            head=follow.remote_head,
        )
    pages = 0
    while max_pages is None or pages < max_pages:
        with sessions() as session:  # read, then let go: no transaction waits on the network
            follow = session.get(PartnerFollow, follow_id)
            partner = session.get(Partner, follow.partner_id) if follow else None
            assert follow is not None and partner is not None
            after = follow.after_seq
            session.expunge_all()
        try:
            body = _fetch_page(partner, follow, policy, limit)
            page = parse_page(
                body,
                partner=partner.name,
                public_key=partner.public_key,
                set_name=follow.remote_set,
                after=after,
            )
        except (PageRefused, FeedUnavailable) as exc:
            result.error = str(exc)
            _record_failure(sessions, follow_id, str(exc))
            raise
        with sessions() as session:
            lock_registry(session)  # before the first read
            follow = session.get(PartnerFollow, follow_id, populate_existing=True)
            partner = session.get(Partner, partner.id, populate_existing=True)
            assert follow is not None and partner is not None
            if follow.after_seq != after:  # another worker applied this page meanwhile
                continue
            apply_page(session, follow, partner, page)
            follow.last_pull_at = follow.last_success_at = now()
            follow.failures, follow.last_error = 0, None
            follow.next_pull_at = now() + (timedelta(0) if page.more else every)
            session.commit()
        pages += 1
        result.pages += 1
        result.changes += len(page.changes)
        result.bytes += page.size
        result.after, result.head = page.last, page.head
        if on_page is not None:
            on_page(result)
        if not page.more:
            break
    return result


def pull(
    sessions: sessionmaker[Session],
    partner_name: str | None,
    policy: FetchPolicy,
    *,
    limit: int = DEFAULT_PAGE,
    on_page: Callable[[FollowResult], None] | None = None,
) -> list[FollowResult]:
    """Follow every set of one partner (None: of every active partner). A refused page or an
    unreachable partner ends that set's pull (its error is in the result), not the others'."""
    with sessions() as session:
        query = select(PartnerFollow.id).join(Partner, Partner.id == PartnerFollow.partner_id)
        query = query.where(Partner.disabled_at.is_(None))
        if partner_name is not None:
            if session.scalar(select(Partner.id).where(Partner.name == partner_name)) is None:
                raise NotFound(f"no partner {partner_name!r} (meldpunt partners list)")
            query = query.where(Partner.name == partner_name)
        ids = list(session.scalars(query.order_by(PartnerFollow.id)))
    results = []
    for follow_id in ids:
        try:
            results.append(
                pull_follow(sessions, follow_id, _policy(policy), limit=limit, on_page=on_page)
            )
        except (PageRefused, FeedUnavailable) as exc:
            with sessions() as session:
                follow = session.get(PartnerFollow, follow_id)
                partner = session.get(Partner, follow.partner_id) if follow else None
                assert follow is not None and partner is not None
                results.append(
                    FollowResult(
                        partner.name,
                        follow.remote_set,
                        follow.local_set_id,
                        after=follow.after_seq,
                        head=follow.remote_head,
                        error=str(exc),
                    )
                )
    return results


def _policy(policy: FetchPolicy) -> FetchPolicy:
    return policy if policy.max_redirects == 0 else partner_policy(policy)


def pull_due(
    sessions: sessionmaker[Session],
    policy: FetchPolicy,
    *,
    limit: int = 10,
    every: timedelta = timedelta(minutes=1),
) -> int:
    """The worker's step: pull the follows that are due (at most ``limit``); returns how many
    changes were applied."""
    with sessions() as session:
        begin_write(session)  # the claim below writes what this reads
        ids = list(
            session.scalars(
                select(PartnerFollow.id)
                .join(Partner, Partner.id == PartnerFollow.partner_id)
                .where(Partner.disabled_at.is_(None))
                .where(
                    (PartnerFollow.next_pull_at.is_(None)) | (PartnerFollow.next_pull_at <= now())
                )
                .order_by(PartnerFollow.next_pull_at)
                .limit(limit)
            )
        )
        # claim them: another worker skips them until the next interval
        if ids:
            session.execute(
                update(PartnerFollow)
                .where(PartnerFollow.id.in_(ids))
                .values(next_pull_at=now() + every)
            )
            session.commit()
    applied = 0
    for follow_id in ids:
        try:
            applied += pull_follow(sessions, follow_id, _policy(policy), every=every).changes
        except (PageRefused, FeedUnavailable):
            continue  # kept on the follow; retried later
    return applied
