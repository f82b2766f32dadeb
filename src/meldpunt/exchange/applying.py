"""Applying a verified page of a partner's set to our copy of it, in the caller's transaction.

Two ways, in the same transaction. Entries that are new here (no source yet, none of their
signals shared with another entry of the page) are written set-wise
(``registry.bulk.add_new_entries``, and their sources in one statement): a first pull is almost
all such entries. Whether our set holds a signal already shows as the signals are written; such
an entry is left out there and merged the other way. Everything else (an entry sent again or
changed, a removal, an entry another partner sent already) goes through the registry's general
write (``apply_items``), which merges. Either way each entry gets our own change numbers, so our
indexes, platforms and partners follow it like any other.

Every entry received keeps where it came from (``EntrySource``: partner, set, the entry's id
there, the change number that last touched it). An entry two partners both send is one item
with two sources; it stops matching only when no source sends it any more. The partner's
set-wide changes (reviewed flag, default category, state) are taken over as they come.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from meldpunt.clock import now
from meldpunt.exchange.feeds import FeedChange, FeedColumns, FeedPage
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
from meldpunt.store.bulk import insert_rows
from meldpunt.store.models import EntrySource, Item, ItemSignal, Partner, PartnerFollow

__all__ = ["apply_page", "merged"]

ENTRY_SOURCES = cast(Table, EntrySource.__table__)


@dataclass
class _Entry:
    """What a page says about one of the partner's entries, in the end."""

    active: bool = True
    category: str = "uncategorised"
    signals: dict[tuple[str, str], None] = field(default_factory=dict)
    seq: int = 0


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


def merged(pages: Sequence[FeedPage]) -> FeedPage:
    """Consecutive pages (each one's ``after`` the previous one's ``last``) as one: applying it
    is applying them one after the other, in one transaction."""
    if len(pages) == 1:
        return pages[0]
    first, last = pages[0], pages[-1]
    columns = FeedColumns(*(list(chain.from_iterable(getattr(p.columns, name) for p in pages))
                            for name in ("seq", "entry", "action", "type", "value", "category",
                                         "reason")))  # fmt: skip
    return FeedPage(
        set=first.set,
        after=first.after,
        last=last.last,
        last_at=last.last_at,
        head=last.head,
        head_at=last.head_at,
        more=last.more,
        issued_at=last.issued_at,
        columns=columns,
        size=sum(p.size for p in pages),
        set_changes=tuple(chain.from_iterable(p.set_changes for p in pages)),
        set_state=next((p.set_state for p in reversed(pages) if p.set_state), None),
    )
