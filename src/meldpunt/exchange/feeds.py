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
the partner may not see goes out as a removal (reason ``not_shared``). Set-wide changes stay
home. ``parse_page`` is the follower's side: it checks everything before anything is applied.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from meldpunt.store.models import RegistryChange

__all__ = [
    "FORMAT",
    "MAX_PAGE",
    "FeedChange",
    "FeedPage",
    "build_page",
    "parse_page",
]

FORMAT = "meldpunt-feed/1"
DEFAULT_PAGE = 10_000
MAX_PAGE = 50_000
#: A page larger than this, unpacked, is refused (50,000 changes take about 8 MB).
MAX_PAGE_BYTES = 64 * 1024 * 1024
ACTIONS = ("add", "update", "remove")
COLUMNS = ("seq", "entry", "action", "type", "value", "category", "reason")


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
class FeedPage:
    set: str
    after: int
    last: int
    last_at: datetime | None
    head: int
    head_at: datetime | None
    more: bool
    issued_at: datetime
    changes: tuple[FeedChange, ...]
    size: int  # bytes on the wire


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
    shown = None if partner.send_categories is None else frozenset(partner.send_categories)
    rows = session.execute(
        select(
            RegistryChange.seq,
            RegistryChange.at,
            RegistryChange.item_id,
            RegistryChange.action,
            RegistryChange.signal_type,
            RegistryChange.value,
            RegistryChange.category,
            RegistryChange.reason,
        )
        .where(RegistryChange.set_id == hash_set.id, RegistryChange.seq > after)
        .order_by(RegistryChange.seq)
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
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    previous_seq, previous_entry = after, 0
    for seq, _at, item_id, action, kind, value, category, reason in rows:
        if item_id is None:
            continue  # set-wide changes (created, disabled) are this instance's own business
        if shown is not None and category not in shown:
            action, reason = "remove", "not_shared"
        columns["seq"].append(seq - previous_seq)
        columns["entry"].append(item_id - previous_entry)
        previous_seq, previous_entry = seq, item_id
        for name, word in zip(COLUMNS[2:], (action, kind, value, category, reason), strict=True):
            columns[name].append(word)
    last, last_at = (rows[-1][0], rows[-1][1]) if rows else (after, None)
    page = {
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
        "changes": columns,
    }
    payload = orjson.dumps(page)
    signature = base64.b64encode(key.sign(payload))
    return gzip.compress(signature + b"\n" + payload, compresslevel=9, mtime=0)


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


def _columns(raw: object) -> list[tuple[object, ...]]:
    if not isinstance(raw, dict) or set(raw) != set(COLUMNS):
        raise PageRefused(f"the page's changes are not the columns {', '.join(COLUMNS)}")
    columns = [raw[name] for name in COLUMNS]
    if not all(isinstance(c, list) for c in columns) or len({len(c) for c in columns}) != 1:
        raise PageRefused("the page's columns of changes differ in length")
    if len(columns[0]) > MAX_PAGE:
        raise PageRefused(f"the page lists more than {MAX_PAGE:,} changes")
    return list(zip(*columns, strict=True))


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
    changes = []
    previous, previous_entry = after, 0
    for raw in _columns(page.get("changes")):
        change = _change(raw, previous, previous_entry)
        changes.append(change)
        previous, previous_entry = change.seq, change.entry
    last = _int(page.get("last"), "the page's 'last'")
    if last < previous or (not changes and last < after):
        raise PageRefused(f"the page says its last change is {last}, but it lists {previous}")
    head = _int(page.get("head"), "the page's 'head'")
    if head < last:
        raise PageRefused(f"the page's head {head} is before its last change {last}")
    more = page.get("more")
    if not isinstance(more, bool):
        raise PageRefused("the page does not say whether more follow")
    return FeedPage(
        set=set_name,
        after=after,
        last=last,
        last_at=_time(page.get("last_at"), "the time of the page's last change"),
        head=head,
        head_at=_time(page.get("head_at"), "the time of the set's newest change"),
        more=more,
        issued_at=issued_at,
        changes=tuple(changes),
        size=len(body),
    )
