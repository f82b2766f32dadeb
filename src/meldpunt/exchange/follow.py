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

Two ways to apply, in the same transaction. Entries that are new here (no source yet, none of
their signals in our set, none shared with another entry of the page) are written set-wise
(``registry.bulk.add_new_entries``, and their sources in one statement): a first pull is almost
all such entries. (Whether our set holds a signal already shows as the signals are written;
such an entry is left out there and merged here.) Everything else (an entry sent again or
changed, a removal, an entry another partner sent already) goes through the registry's general
write (``apply_items``), which merges. Either way each entry gets our own change numbers, so
our indexes, platforms and partners follow it like any other.

While a page is applied, the next one is fetched and checked in a thread (no transaction waits
on the network); a follower far behind asks for larger pages, up to ``feeds.MAX_PAGE``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast
from urllib.parse import quote

import orjson
from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session, sessionmaker

from meldpunt.clock import now
from meldpunt.exchange.errors import FeedUnavailable, NotFound, PageRefused
from meldpunt.exchange.feeds import DEFAULT_PAGE, MAX_PAGE, FeedChange, FeedPage, parse_page
from meldpunt.registry import (
    Category,
    ItemInput,
    classify,
    disable_item,
    disable_set,
    enable_item,
    enable_set,
    get_set,
    lock_registry,
    update_set,
)
from meldpunt.registry.batch import apply_items
from meldpunt.registry.bulk import NewEntries, add_new_entries
from meldpunt.reports.fetcher import FetchError, FetchPolicy, FetchRefused, fetch
from meldpunt.store import begin_write
from meldpunt.store.bulk import insert_rows, large_cache
from meldpunt.store.models import EntrySource, Item, ItemSignal, Partner, PartnerFollow

__all__ = ["FollowResult", "apply_page", "partner_policy", "pull", "pull_due"]

#: After a failed pull, the next waits this long, doubling up to a day.
RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(days=1)
ENTRY_SOURCES = cast(Table, EntrySource.__table__)


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


@dataclass
class _New:
    """Entries new here, as columns (``registry.bulk.NewEntries`` plus where they came from)."""

    remote: list[int] = field(default_factory=list)
    seq: list[int] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def add(self, remote: int, entry: _Entry) -> None:
        self.remote.append(remote)
        self.seq.append(entry.seq)
        self.category.append(entry.category)
        for kind, value in entry.signals:
            self.owners.append(len(self.remote) - 1)
            self.kinds.append(kind)
            self.values.append(value)


def _sources(
    session: Session, partner_id: int, remote_set: str, remote: Sequence[int]
) -> dict[int, EntrySource]:
    """The sources we hold of these remote entries: one range read when they lie close together
    (a page of a set's changes mostly does), else in chunks."""
    if not remote:
        return {}
    query = select(EntrySource).where(
        EntrySource.partner_id == partner_id, EntrySource.remote_set == remote_set
    )
    wanted = set(remote)
    low, high = min(wanted), max(wanted)
    found: dict[int, EntrySource] = {}
    if high - low <= 4 * len(wanted) + 1000:
        rows = session.scalars(query.where(EntrySource.remote_item.between(low, high)))
        found = {row.remote_item: row for row in rows if row.remote_item in wanted}
    else:
        ordered = sorted(wanted)
        for start in range(0, len(ordered), 1000):
            chunk = ordered[start : start + 1000]
            rows = session.scalars(query.where(EntrySource.remote_item.in_(chunk)))
            found.update({row.remote_item: row for row in rows})
    return found


def _split(
    page: FeedPage, taken: frozenset[str] | None, sources: dict[int, EntrySource]
) -> tuple[_New, dict[int, _Entry]]:
    """The page's entries: those new here (no source yet, active, taken in) and the rest."""
    c = page.columns
    new, rest = _New(), dict[int, _Entry]()
    if len(set(c.entry)) == len(c):  # every entry once: its change is its state
        if not sources and taken is None and "remove" not in c.action:
            count = len(c)
            new = _New(c.entry, c.seq, c.category, list(range(count)), c.type, c.value)
            return new, rest
        for i, remote in enumerate(c.entry):
            entry = _Entry(c.action[i] != "remove", c.category[i], {}, c.seq[i])
            if entry.active:
                entry.signals[(c.type[i], c.value[i])] = None
            if (
                entry.active
                and (taken is None or entry.category in taken)
                and remote not in sources
            ):
                new.add(remote, entry)
            else:
                rest[remote] = entry
        return new, rest
    for remote, entry in _fold(page.changes).items():
        wanted = entry.active and (taken is None or entry.category in taken) and entry.signals
        if wanted and remote not in sources:
            new.add(remote, entry)
        else:
            rest[remote] = entry
    return new, rest


def _shared(new: _New, rest: dict[int, _Entry]) -> set[tuple[str, str]]:
    """Signals that a new entry shares with another entry of the page: those entries are
    merged the general way (one item, two sources)."""
    if not rest and len(set(new.kinds)) == 1 and len(set(new.values)) == len(new.values):
        return set()  # the usual page: one type, every value once
    pairs = list(zip(new.kinds, new.values, strict=True))
    pairs += [signal for entry in rest.values() if entry.active for signal in entry.signals]
    if len(set(pairs)) == len(pairs):
        return set()
    return {pair for pair, times in Counter(pairs).items() if times > 1}


def _without(new: _New, moved: set[int], rest: dict[int, _Entry]) -> _New:
    """``new`` less the entries at positions ``moved``, which go to ``rest``."""
    kept = _New()
    by_owner: dict[int, list[int]] = {}
    for j, owner in enumerate(new.owners):
        by_owner.setdefault(owner, []).append(j)
    for i, remote in enumerate(new.remote):
        signals = {(new.kinds[j], new.values[j]): None for j in by_owner[i]}
        entry = _Entry(True, new.category[i], signals, new.seq[i])
        if i in moved:
            rest[remote] = entry
        else:
            kept.add(remote, entry)
    return kept


def _add_new(session: Session, follow: PartnerFollow, partner: Partner, new: _New) -> list[int]:
    """Write the new entries and their sources set-wise; returns the positions of those left
    out because our set holds one of their signals already (sent by another partner, or ours)."""
    categories: dict[str, Category] = {}
    for code in set(new.category):
        categories[code] = classify(code, "meldpunt")
    prefix = f"{partner.name}:"  # the name read once: it is an ORM attribute
    entries = NewEntries(
        references=[(prefix + str(remote))[:200] for remote in new.remote],
        categories=[categories[code] for code in new.category],
        owners=new.owners,
        signal_types=new.kinds,
        values=new.values,
    )
    written = add_new_entries(
        session, follow.local_set_id, entries, actor=f"partner:{partner.name}", source=partner.name
    )
    remote, seqs = new.remote, new.seq
    if written.refused:
        remote = [remote[i] for i in written.added]
        seqs = [seqs[i] for i in written.added]
    insert_rows(
        session.connection(),
        ENTRY_SOURCES,
        constants={
            "partner_id": partner.id,
            "remote_set": follow.remote_set,
            "active": True,
            "updated_at": now(),
        },
        columns={"item_id": written.item_ids, "remote_item": remote, "remote_seq": seqs},
    )
    return written.refused


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
    sources = _sources(session, partner.id, follow.remote_set, page.columns.entry)
    new, entries = _split(page, taken, sources)
    touched = len(new.remote) + len(entries)
    shared = _shared(new, entries) if new.remote else set()
    if shared:
        pairs = zip(new.kinds, new.values, strict=True)
        new = _without(new, {new.owners[j] for j, p in enumerate(pairs) if p in shared}, entries)
    if new.remote:
        refused = _add_new(session, follow, partner, new)
        if refused:  # our set holds their signals already: merged the general way
            _without(new, set(refused), entries)
    _apply_entries(session, follow, partner, entries, taken, sources)
    _apply_set_state(session, follow, partner, page)
    follow.after_seq = page.last
    follow.remote_head = page.head
    follow.remote_head_at = page.head_at
    if page.last_at is not None:
        follow.applied_at = page.last_at
    elif page.last >= page.head:
        follow.applied_at = page.head_at
    follow.changes_applied += len(page)
    session.flush()
    return touched


def _apply_set_state(
    session: Session, follow: PartnerFollow, partner: Partner, page: FeedPage
) -> None:
    """Take over the partner's set-wide changes: its reviewed flag and default category, and
    its state as it changes (a set the partner disables is disabled here; enabled again when
    the partner enables it, so that our own decision stands until the partner's next one)."""
    facts = page.set_state
    if facts is None or not page.set_changes:
        return
    actor = f"partner:{partner.name}"
    ours = get_set(session, follow.local_set_id)
    reasons = {reason for _, reason in page.set_changes}
    category = facts.default_category or ours.default_category
    if facts.reviewed != ours.reviewed or category != ours.default_category:
        update_set(
            session, ours.id, reviewed=facts.reviewed, default_category=category, actor=actor
        )
    if facts.state == "disabled" and ours.state == "active":
        disable_set(session, ours.id, actor=actor)
    elif facts.state == "active" and ours.state == "disabled" and "set_enabled" in reasons:
        enable_set(session, ours.id, actor=actor)


def _apply_entries(
    session: Session,
    follow: PartnerFollow,
    partner: Partner,
    entries: dict[int, _Entry],
    taken: frozenset[str] | None,
    sources: dict[int, EntrySource],
) -> None:
    """The general way: entries sent again, changed or removed, and new entries that merge with
    an entry we hold already, through ``apply_items``."""
    actor = f"partner:{partner.name}"
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


@dataclass(frozen=True)
class _Feed:
    """Where and how to read one followed set (plain values: a fetching thread reads them)."""

    partner: str
    url: str
    token: str | None
    public_key: str
    remote_set: str


def _fetch_page(feed: _Feed, policy: FetchPolicy, after: int, limit: int) -> bytes:
    url = f"{feed.url}/v1/feeds/{quote(feed.remote_set, safe='')}?after={after}&limit={limit}"
    headers = {"Accept": "application/gzip"}
    if feed.token:
        headers["Authorization"] = f"Bearer {feed.token}"
    try:
        answer = fetch(url, policy, headers=headers)
    except FetchRefused as exc:
        raise FeedUnavailable(f"{feed.partner}: {exc}") from None
    except FetchError as exc:
        raise FeedUnavailable(f"{feed.partner} could not be reached: {exc}") from None
    if answer.status != 200:
        message = ""
        try:
            message = str(orjson.loads(answer.body)["error"]["message"])[:300]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = answer.body[:200].decode("utf-8", "replace")
        raise FeedUnavailable(f"{feed.partner} answered {answer.status}: {message}")
    if answer.truncated or answer.error:
        raise FeedUnavailable(f"{feed.partner}'s page was cut off ({answer.error or 'too large'})")
    return answer.body


def _next_page(feed: _Feed, policy: FetchPolicy, after: int, limit: int) -> FeedPage:
    """Fetch and check the page after ``after`` (PageRefused or FeedUnavailable if it fails)."""
    body = _fetch_page(feed, policy, after, limit)
    return parse_page(
        body,
        partner=feed.partner,
        public_key=feed.public_key,
        set_name=feed.remote_set,
        after=after,
    )


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
    catch_up: int | None = None,
) -> FollowResult:
    """Follow one set of a partner until it has nothing newer (or ``max_pages`` pages).

    Pages of ``limit`` changes; with ``catch_up`` (``feeds.MAX_PAGE`` for the worker and the
    command line), while full pages keep coming (a first pull, a follower far behind) each asks
    for twice as many, up to ``catch_up``. The next page is fetched and checked while the
    current one is applied."""
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
    pages, ask = 0, max(1, limit)
    ahead: tuple[int, Future[FeedPage]] | None = None  # the next page, asked for already
    fetcher = ThreadPoolExecutor(1, thread_name_prefix="exchange-fetch")
    try:
        while max_pages is None or pages < max_pages:
            with sessions() as session:  # read, then let go: no transaction waits on the network
                follow = session.get(PartnerFollow, follow_id)
                partner = session.get(Partner, follow.partner_id) if follow else None
                assert follow is not None and partner is not None
                after = follow.after_seq
                feed = _Feed(partner.name, partner.url, partner.remote_token,
                             partner.public_key, follow.remote_set)  # fmt: skip
            if ahead is None or ahead[0] != after:
                ahead = (after, fetcher.submit(_next_page, feed, policy, after, ask))
            try:
                page = ahead[1].result()
            except (PageRefused, FeedUnavailable) as exc:
                result.error = str(exc)
                _record_failure(sessions, follow_id, str(exc))
                raise
            ahead = None
            if catch_up is not None and page.more and len(page) >= ask:
                ask = max(ask, min(catch_up, ask * 2))
            if page.more and (max_pages is None or pages + 1 < max_pages):
                ahead = (page.last, fetcher.submit(_next_page, feed, policy, page.last, ask))
            with sessions() as session:
                lock_registry(session)  # before the first read
                follow = session.get(PartnerFollow, follow_id, populate_existing=True)
                assert follow is not None
                partner = session.get(Partner, follow.partner_id, populate_existing=True)
                assert partner is not None
                if follow.after_seq != after:  # another worker applied this page meanwhile
                    continue
                if partner.public_key != feed.public_key:  # set anew while the page came
                    ahead = None
                    continue
                with large_cache(session.connection()):
                    apply_page(session, follow, partner, page)
                    follow.last_pull_at = follow.last_success_at = now()
                    follow.failures, follow.last_error = 0, None
                    follow.next_pull_at = now() + (timedelta(0) if page.more else every)
                    session.flush()
                session.commit()
            pages += 1
            result.pages += 1
            result.changes += len(page)
            result.bytes += page.size
            result.after, result.head = page.last, page.head
            if on_page is not None:
                on_page(result)
            if not page.more:
                break
    finally:
        fetcher.shutdown(wait=True, cancel_futures=True)
    return result


def pull(
    sessions: sessionmaker[Session],
    partner_name: str | None,
    policy: FetchPolicy,
    *,
    limit: int = DEFAULT_PAGE,
    on_page: Callable[[FollowResult], None] | None = None,
    catch_up: int | None = None,
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
                pull_follow(
                    sessions,
                    follow_id,
                    _policy(policy),
                    limit=limit,
                    on_page=on_page,
                    catch_up=catch_up,
                )
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
            applied += pull_follow(
                sessions, follow_id, _policy(policy), every=every, catch_up=MAX_PAGE
            ).changes
        except (PageRefused, FeedUnavailable):
            continue  # kept on the follow; retried later
    return applied
