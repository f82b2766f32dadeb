"""A set's feed: its numbered changes, page by page, each page signed with the instance's key.

On the wire a page is gzip of one line with the Ed25519 signature (base64) followed by the
page itself, the JSON bytes that were signed::

    {"format": "meldpunt-feed/1", "key": "<fingerprint>", "set": "police", "after": 0,
     "issued_at": "2026-12-01T23:00:00+00:00", "head": 812, "head_at": "...",
     "last": 500, "last_at": "...", "more": true,
     "changes": {"seq": [3, 1, 1, ...], "entry": [1, 1, 0, ...], "action": ["add", ...],
                 "type": ["pdq", ...], "value": ["f8f8...", ...],
                 "category": ["csam_baseline", ...], "reason": ["imported", ...]}}

The changes go column by column, change numbers and entry ids as differences from the one
before (the first from ``after``, and from 0): repeated words and small numbers compress to
almost nothing, so a page costs little more than its hashes (about 33 bytes a PDQ entry).

Each change states a result (see ``registry.changes``): ``add``/``update`` the entry is active
with this category and this signal, ``remove`` it is not (any more). A change whose category
the partner may not see goes out as a removal (reason ``not_shared``).

Set-wide changes (the set created, disabled, enabled, its reviewed flag or default category
changed) travel beside the columns: a page that holds any lists them (``"set_changes"``: their
numbers and reasons) with the set's shared facts as they are when the page is built
(``"set_state"``: state, reviewed, default category). Followers of an older version ignore
both.

``parse_page`` is the follower's side: it checks everything before anything is applied. A page
is checked column by column (``registry.bulk.normalize_column``); only when something does not
fit is it gone through change by change, to say which change and why.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import operator
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from itertools import accumulate
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt.clock import now
from meldpunt.exchange.errors import Forbidden, InvalidInput, PageRefused
from meldpunt.exchange.keys import InstanceKey, fingerprint, verify
from meldpunt.exchange.partners import PartnerInfo
from meldpunt.registry import CODES, get_set, normalize_signals
from meldpunt.registry import InvalidInput as SignalProblem
from meldpunt.registry import NotFound as SetNotFound
from meldpunt.registry.bulk import normalize_column
from meldpunt.store.models import RegistryChange

__all__ = [
    "FORMAT",
    "MAX_PAGE",
    "FeedChange",
    "FeedColumns",
    "FeedPage",
    "SetState",
    "build_page",
    "parse_page",
]

FORMAT = "meldpunt-feed/1"
DEFAULT_PAGE = 10_000
#: The most changes a page holds: a follower far behind asks for this many at a time.
MAX_PAGE = 250_000
#: A page larger than this, unpacked, is refused (250,000 PDQ changes take about 27 MB).
MAX_PAGE_BYTES = 64 * 1024 * 1024
#: gzip's level for pages. The hashes are random hex, so Huffman coding does almost all the
#: work (about 33 bytes a PDQ hash): on a page of 250,000 PDQ entries level 1 gives 39.2 bytes
#: an entry, level 6 38.1 and level 9 38.1, for 0.2, 0.4 and 0.9 s of the source's time.
COMPRESS_LEVEL = 6
ACTIONS = ("add", "update", "remove")
COLUMNS = ("seq", "entry", "action", "type", "value", "category", "reason")
#: Set-wide changes whose facts followers take over (``SetState``); ``set_ways`` stays home.
SET_REASONS = ("set_created", "set_disabled", "set_enabled", "set_updated")


@dataclass(frozen=True)
class FeedChange:
    seq: int
    entry: int  # the entry's id at the source
    action: str
    signal_type: str
    value: str
    category: str
    reason: str


@dataclass(frozen=True)
class FeedColumns:
    """A page's changes as columns, numbers and entries as they are (no longer differences)."""

    seq: list[int]
    entry: list[int]
    action: list[str]
    type: list[str]
    value: list[str]
    category: list[str]
    reason: list[str]

    def __len__(self) -> int:
        return len(self.seq)


@dataclass(frozen=True)
class SetState:
    """The facts of a set that its followers take over when it changes as a whole."""

    state: str  # 'active' | 'disabled'
    reviewed: bool
    default_category: str | None


@dataclass(frozen=True)
class FeedPage:
    set: str
    after: int
    last: int
    last_at: datetime | None
    head: int
    head_at: datetime | None
    more: bool
    issued_at: datetime
    columns: FeedColumns
    size: int  # bytes on the wire
    #: The set-wide changes in the page's range (number, reason), and the set's facts.
    set_changes: tuple[tuple[int, str], ...] = ()
    set_state: SetState | None = None

    @cached_property
    def changes(self) -> tuple[FeedChange, ...]:
        """The changes one by one (the columns are cheaper for many)."""
        c = self.columns
        rows = zip(c.seq, c.entry, c.action, c.type, c.value, c.category, c.reason, strict=True)
        return tuple(FeedChange(*row) for row in rows)

    def __len__(self) -> int:
        return len(self.columns)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def build_page(
    session: Session,
    key: InstanceKey,
    partner: PartnerInfo,
    set_name: str,
    *,
    after: int,
    limit: int = DEFAULT_PAGE,
) -> bytes:
    """The signed, gzipped page of ``set_name``'s changes after ``after`` for ``partner``.

    Raises Forbidden when the partner may not read the set (also when no such set exists: a
    partner learns nothing about sets it was not given).
    """
    if set_name not in partner.send_sets:
        raise Forbidden(f"set {set_name!r} is not shared with partner {partner.name!r}")
    if after < 0:
        raise InvalidInput("after is a change number, 0 or more")
    limit = max(1, min(limit, MAX_PAGE))
    try:
        hash_set = get_set(session, set_name)
    except SetNotFound:
        raise Forbidden(f"set {set_name!r} is not shared with partner {partner.name!r}") from None
    table = RegistryChange.__table__.c
    # Plain columns, read as they are: at hundreds of thousands of rows a page, converting
    # each row's time (only the last one's is sent) costs more than the query.
    rows = session.execute(
        select(
            table.seq,
            table.item_id,
            table.action,
            table.signal_type,
            table.value,
            table.category,
            table.reason,
        )
        .where(table.set_id == hash_set.id, table.seq > after)
        .order_by(table.seq)
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    head, head_at = session.execute(
        select(RegistryChange.seq, RegistryChange.at)
        .where(RegistryChange.set_id == hash_set.id)
        .order_by(RegistryChange.seq.desc())
        .limit(1)
    ).one_or_none() or (0, None)
    last, last_at = after, None
    if rows:
        last = rows[-1][0]
        last_at = session.scalar(select(RegistryChange.at).where(RegistryChange.seq == last))
    entries = [row for row in rows if row[1] is not None]
    set_changes = [(row[0], row[6]) for row in rows if row[1] is None and row[6] in SET_REASONS]
    page: dict[str, Any] = {
        "format": FORMAT,
        "key": key.fingerprint,
        "set": hash_set.name,
        "after": after,
        "issued_at": now().isoformat(),
        "head": max(int(head), last),
        "head_at": _iso(head_at),
        "last": last,
        "last_at": _iso(last_at),
        "more": more,
        "changes": _columns_of(entries, after, partner.send_categories),
    }
    if set_changes:
        page["set_changes"] = {
            "seq": [seq for seq, _ in set_changes],
            "reason": [reason for _, reason in set_changes],
        }
        page["set_state"] = {
            "state": hash_set.state,
            "reviewed": hash_set.reviewed,
            "default_category": hash_set.default_category,
        }
    payload = orjson.dumps(page)
    signature = base64.b64encode(key.sign(payload))
    return gzip.compress(signature + b"\n" + payload, compresslevel=COMPRESS_LEVEL, mtime=0)


def _columns_of(
    rows: list[Any], after: int, send_categories: tuple[str, ...] | None
) -> dict[str, list[Any]]:
    """The page's columns: change numbers and entries as differences from the one before."""
    if not rows:
        return {name: [] for name in COLUMNS}
    seqs, items, actions, kinds, values, categories, reasons = (
        list(c) for c in zip(*rows, strict=True)
    )
    if send_categories is not None:
        shown = frozenset(send_categories)
        for i, category in enumerate(categories):
            if category not in shown:
                actions[i], reasons[i] = "remove", "not_shared"
    return {
        "seq": list(map(operator.sub, seqs, [after, *seqs[:-1]])),
        "entry": list(map(operator.sub, items, [0, *items[:-1]])),
        "action": actions,
        "type": kinds,
        "value": values,
        "category": categories,
        "reason": reasons,
    }


def _unpack(body: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=31)  # gzip
    try:
        data = inflater.decompress(body, MAX_PAGE_BYTES + 1)
    except zlib.error as exc:
        raise PageRefused(f"the page is not gzip ({exc})") from None
    if len(data) > MAX_PAGE_BYTES or inflater.unconsumed_tail:
        raise PageRefused(f"the page unpacks to more than {MAX_PAGE_BYTES:,} bytes")
    if not inflater.eof:
        raise PageRefused("the page ends before its gzip stream does (cut off)")
    return data


def _time(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PageRefused(f"{what} is not a time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise PageRefused(f"{what} is not a time: {value[:40]!r}") from None
    if at.tzinfo is None:
        raise PageRefused(f"{what} has no time zone")
    return at


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise PageRefused(f"{what} is not a change number")
    return value


def _change(raw: tuple[object, ...], previous: int, previous_entry: int) -> FeedChange:
    seq_step, entry_step, action, kind, value, category, reason = raw
    if not isinstance(seq_step, int) or isinstance(seq_step, bool) or seq_step > 2**62:
        raise PageRefused(f"the change after {previous} has no change number")
    seq = previous + seq_step
    if seq_step <= 0:
        raise PageRefused(f"change {seq} comes after {previous}: the changes are out of order")
    if not isinstance(entry_step, int) or isinstance(entry_step, bool):
        raise PageRefused(f"change {seq} has no entry")
    entry = _int(previous_entry + entry_step, f"change {seq}'s entry")
    if action not in ACTIONS:
        raise PageRefused(f"change {seq} has an unknown action {str(action)[:20]!r}")
    if not all(isinstance(v, str) for v in (kind, value, category, reason)):
        raise PageRefused(f"change {seq}: type, value, category and reason are text")
    assert isinstance(kind, str) and isinstance(value, str)
    assert isinstance(category, str) and isinstance(reason, str)
    if category not in CODES:
        raise PageRefused(f"change {seq} has an unknown category {category[:40]!r}")
    if len(reason) > 40 or not reason.isprintable():
        raise PageRefused(f"change {seq} has a bad reason")
    try:
        ((kind, value),) = normalize_signals([(kind, value)])
    except SignalProblem as exc:
        raise PageRefused(f"change {seq}: {exc}") from None
    return FeedChange(seq, entry, action, kind, value, category, reason)


def _column_lists(raw: object) -> list[list[Any]]:
    if not isinstance(raw, dict) or set(raw) != set(COLUMNS):
        raise PageRefused(f"the page's changes are not the columns {', '.join(COLUMNS)}")
    columns = [raw[name] for name in COLUMNS]
    if not all(isinstance(c, list) for c in columns) or len({len(c) for c in columns}) != 1:
        raise PageRefused("the page's columns of changes differ in length")
    if len(columns[0]) > MAX_PAGE:
        raise PageRefused(f"the page lists more than {MAX_PAGE:,} changes")
    return columns


def _all_ints(values: list[Any]) -> bool:
    return all(type(v) is int for v in values)  # not bool, which is an int too


def _all_texts(values: list[Any]) -> bool:
    return all(type(v) is str for v in values)


def _fast_columns(columns: list[list[Any]], after: int) -> FeedColumns | None:
    """The columns, checked all at once; None when anything does not fit (the change-by-change
    check then says which change and why)."""
    seq_steps, entry_steps, actions, kinds, values, categories, reasons = columns
    if not seq_steps:
        return FeedColumns([], [], [], [], [], [], [])
    if not (_all_ints(seq_steps) and _all_ints(entry_steps)):
        return None
    if min(seq_steps) <= 0 or max(seq_steps) > 2**62:
        return None
    seqs = list(accumulate(seq_steps, initial=after))[1:]
    entries = list(accumulate(entry_steps))
    if min(entries) < 0 or max(entries) >= 2**63:
        return None
    if not all(_all_texts(c) for c in (actions, kinds, values, categories, reasons)):
        return None
    if not set(actions) <= set(ACTIONS) or not set(categories) <= set(CODES):
        return None
    if not all(len(r) <= 40 and r.isprintable() for r in set(reasons)):
        return None
    by_kind: dict[str, list[str]] = {}
    if len(set(kinds)) == 1:
        by_kind[kinds[0]] = values
    else:
        for kind, value in zip(kinds, values, strict=True):
            by_kind.setdefault(kind, []).append(value)
    if not all(normalize_column(kind, found) for kind, found in by_kind.items()):
        return None
    return FeedColumns(seqs, entries, actions, kinds, values, categories, reasons)


def _slow_columns(columns: list[list[Any]], after: int) -> FeedColumns:
    """Change by change: refuses the page naming the first change that does not fit."""
    out = FeedColumns([], [], [], [], [], [], [])
    previous, previous_entry = after, 0
    for raw in zip(*columns, strict=True):
        change = _change(raw, previous, previous_entry)
        for name, value in zip(
            ("seq", "entry", "action", "type", "value", "category", "reason"),
            (change.seq, change.entry, change.action, change.signal_type, change.value,
             change.category, change.reason),
            strict=True,
        ):  # fmt: skip
            getattr(out, name).append(value)
        previous, previous_entry = change.seq, change.entry
    return out


def _set_part(
    page: dict[str, Any], after: int, last: int
) -> tuple[tuple[tuple[int, str], ...], SetState | None]:
    """The page's set-wide changes and the set's facts (both optional)."""
    raw, facts = page.get("set_changes"), page.get("set_state")
    if raw is None and facts is None:
        return (), None
    if not isinstance(raw, dict) or set(raw) != {"seq", "reason"}:
        raise PageRefused("the page's set-wide changes are not the columns seq, reason")
    seqs, reasons = raw["seq"], raw["reason"]
    if not (isinstance(seqs, list) and isinstance(reasons, list) and len(seqs) == len(reasons)):
        raise PageRefused("the page's set-wide changes differ in length")
    if not seqs or not _all_ints(seqs) or seqs != sorted(set(seqs)):
        raise PageRefused("the page's set-wide changes are not in order")
    if seqs[0] <= after or seqs[-1] > last:
        raise PageRefused(f"a set-wide change lies outside the page ({after}, {last}]")
    if not all(r in SET_REASONS for r in reasons):
        raise PageRefused("the page names an unknown set-wide change")
    if not isinstance(facts, dict):
        raise PageRefused("the page has set-wide changes but not the set's state")
    state, reviewed = facts.get("state"), facts.get("reviewed")
    category = facts.get("default_category")
    if state not in ("active", "disabled") or not isinstance(reviewed, bool):
        raise PageRefused("the set's state in the page is not active or disabled, reviewed or not")
    if category is not None and category not in CODES:
        raise PageRefused(f"the set's default category {str(category)[:40]!r} is unknown")
    return tuple(zip(seqs, reasons, strict=True)), SetState(state, reviewed, category)


def parse_page(
    body: bytes,
    *,
    partner: str,
    public_key: str,
    set_name: str,
    after: int,
    max_age: timedelta = timedelta(minutes=15),
) -> FeedPage:
    """The page, once its signature, order and content all fit; else PageRefused saying why.

    A page must be signed by the key we hold for ``partner``, answer the question asked (this
    set, after this change number: an old page sent again answers another), be fresh (issued
    within ``max_age`` of now), and list changes in increasing order, each one well formed.
    """
    data = _unpack(body)
    line, newline, payload = data.partition(b"\n")
    if not newline:
        raise PageRefused("the page has no signature line")
    try:
        signature = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise PageRefused("the page's signature is not base64") from None
    if len(signature) != 64 or not verify(public_key, signature, payload):
        claimed = "unknown"
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            claimed = str(orjson.loads(payload).get("key"))[:20]
        raise PageRefused(
            f"the page's signature does not verify with {partner}'s key "
            f"{fingerprint(public_key)} (the page names key {claimed}); if {partner} changed "
            f"its key, confirm the new one with them and set it: meldpunt partners set "
            f"{partner} --public-key KEY"
        )
    try:
        page = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PageRefused(f"the signed page is not JSON ({exc})") from None
    if not isinstance(page, dict) or page.get("format") != FORMAT:
        raise PageRefused(f"the page is not in the format {FORMAT}")
    if page.get("set") != set_name:
        raise PageRefused(f"the page is of set {str(page.get('set'))[:200]!r}, not {set_name!r}")
    page_after = _int(page.get("after"), "the page's 'after'")
    if page_after != after:
        raise PageRefused(
            f"the page answers 'after {page_after}', but changes after {after} were asked for "
            "(a page sent again, or sent to the wrong question)"
        )
    issued_at = _time(page.get("issued_at"), "the page's issue time")
    if issued_at is None:
        raise PageRefused("the page has no issue time")
    age = now() - issued_at
    if age > max_age:
        raise PageRefused(
            f"the page was issued {age} ago (at most {max_age}): an old page sent again"
        )
    if age < -timedelta(minutes=5):
        raise PageRefused("the page was issued in the future: check both clocks")
    raw_columns = _column_lists(page.get("changes"))
    columns = _fast_columns(raw_columns, after) or _slow_columns(raw_columns, after)
    previous = columns.seq[-1] if columns.seq else after
    last = _int(page.get("last"), "the page's 'last'")
    if last < previous or (not columns.seq and last < after):
        raise PageRefused(f"the page says its last change is {last}, but it lists {previous}")
    head = _int(page.get("head"), "the page's 'head'")
    if head < last:
        raise PageRefused(f"the page's head {head} is before its last change {last}")
    more = page.get("more")
    if not isinstance(more, bool):
        raise PageRefused("the page does not say whether more follow")
    set_changes, set_state = _set_part(page, after, last)
    return FeedPage(
        set=set_name,
        after=after,
        last=last,
        last_at=_time(page.get("last_at"), "the time of the page's last change"),
        head=head,
        head_at=_time(page.get("head_at"), "the time of the set's newest change"),
        more=more,
        issued_at=issued_at,
        columns=columns,
        size=len(body),
        set_changes=set_changes,
        set_state=set_state,
    )
