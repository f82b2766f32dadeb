"""Re-checks: is noticed material still online, gone, moved, or back?

Every item the hotline watches has a ``next_check_at``: noticed, escalated and forwarded items,
and offline items for a while after they went (``WATCH_DAYS``, every ``WATCH_HOURS``), in case
the content returns. ``run_lifecycle`` (a worker step) claims a batch of due items with a lease,
fetches them at once on a bounded thread pool outside any transaction, and writes the batch's
results in one short transaction. What a fetch means:

=====================================================  =========================================
answer                                                 verdict
=====================================================  =========================================
2xx, and for a picture or video the same content:      online: misses back to 0, ``last_seen_at``,
the SHA-256 fetched at grading, or a PDQ hash within   next check ``takedown_check_minutes`` later
``PDQ_SAME`` bits (a re-encoded copy)
404, 410, 451; connection refused; the name no         a miss: next check after
longer resolves; a picture or video with other         ``takedown_miss_spacing_minutes``
content
5xx, other statuses, timeouts, broken answers          neither: tried again ``error_minutes`` later
=====================================================  =========================================

- ``takedown_offline_misses`` consecutive misses, each at least ``takedown_miss_spacing_minutes``
  after the one before (a closer miss does not count), make the item ``offline`` (final; the URL
  is free for new reports). ``gone_at`` is the first miss of that run: when the item was first
  seen gone, the moment the monitor and an order's compliance count.
- Online at an address whose attribution gives another AS number or another contact: the
  hoster changed. Event ``moved``; the item is ready to be attributed again (and noticed to the
  new hoster). A new address of the same network and contact is only recorded.
- A noticed item still online at its ``escalation_at`` becomes ``escalated`` (event
  ``escalation_due``): the authority's case. Its check is scheduled at ``escalation_at`` at the
  latest, so escalation is on time. Escalated and forwarded items are re-checked as before.
- An offline item whose content is back: event ``reopened``. It is open again (unless another
  open item has the URL meanwhile: then it is linked to that one and no longer watched) and
  noticed, with a re-notice due now; one that had never been noticed (forwarded), or that is
  back at another hoster, is attributed again.

Only results that change something leave a line in the timeline (a miss, a state change); an
online check just moves the item's times.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from meldpunt import clock
from meldpunt.config import Settings
from meldpunt.reports import items
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.fetcher import (
    FetchConnectionRefused,
    FetchError,
    FetchPolicy,
    FetchRefused,
    FetchResult,
    FetchUnresolvable,
    fetch,
)
from meldpunt.reports.vocabulary import Event, ItemState, Media
from meldpunt.signals import HashOptions, ImageLimits, SignalError, hamming, pdq_signal
from meldpunt.signals.errors import FileTooLarge, ImageTooLarge
from meldpunt.store.models import UrlItem
from meldpunt.takedown.asn import AsnTable, table_for
from meldpunt.takedown.attribution import Location, attribute, locate_many
from meldpunt.takedown.directory import Directory

__all__ = [
    "CHECK_THREADS",
    "MISS_STATUSES",
    "PDQ_SAME",
    "RECHECKED_STATES",
    "WATCH_DAYS",
    "WATCH_HOURS",
    "Verdict",
    "check_all",
    "judge",
    "run_lifecycle",
]

log = logging.getLogger(__name__)

#: States whose items are re-checked while open.
RECHECKED_STATES = (ItemState.noticed, ItemState.escalated, ItemState.forwarded)
#: Offline items are re-checked this often for returned content ...
WATCH_HOURS = 6.0
#: ... for this long after they went offline.
WATCH_DAYS = 7.0
#: Statuses that say the content is gone (451: removed for legal reasons).
MISS_STATUSES = frozenset({404, 410, 451})
#: A picture whose PDQ hash is this close to the graded one is the same picture re-encoded.
PDQ_SAME = 31
#: Fetches at once (a bounded pool shared by the process's lifecycle steps).
CHECK_THREADS = 16
#: The least a claim is left to its worker (more when fetches may take longer).
LEASE = timedelta(minutes=5)
_MEDIA = (Media.image, Media.video, Media.other)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="meldpunt-recheck")
        return _pool


@dataclass(frozen=True)
class Target:
    """What a re-check needs of a claimed item, copied out of its session."""

    id: int
    url: str
    host: str
    media: str | None
    sha256: str | None
    pdq: str | None


@dataclass(frozen=True)
class Verdict:
    """What one re-check found: ``online``, ``miss`` or ``error``, why, and (when online)
    where the host points now."""

    verdict: str
    detail: str
    location: Location | None = None


def compare_options(settings: Settings) -> HashOptions:
    """How a re-check hashes what it fetched: under the image limits, each of the
    ``CHECK_THREADS`` decodes with its share of ``decode_budget_bytes`` (unbounded, a hoster
    that swapped in a 14,000 x 14,000 PNG of 600 kB made every re-check of it decode 1 GB)."""
    return HashOptions(
        exif_transpose=settings.exif_transpose,
        limits=ImageLimits(
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            max_decode_bytes=settings.decode_budget_bytes // CHECK_THREADS,
        ),
    )


_COMPARE = compare_options(Settings.model_construct())


def _same_content(
    target: Target, result: FetchResult, options: HashOptions
) -> tuple[bool | None, str]:
    """Whether the content is the graded one: True, False, or None when it cannot be told
    (too large to decode within the limits: neither online nor a miss)."""
    if target.media not in _MEDIA or not target.sha256:
        return True, "online"
    if result.sha256 == target.sha256:
        return True, "online, same content"
    if target.pdq and target.media == Media.image and result.body:
        try:
            distance = hamming(pdq_signal(result.body, options).hash, target.pdq)
        except (ImageTooLarge, FileTooLarge) as exc:
            return None, f"other bytes, too large to compare: {exc}"
        except (SignalError, ValueError):
            distance = None
        if distance is not None and distance <= PDQ_SAME:
            return True, f"online, the same picture re-encoded (PDQ distance {distance})"
    return False, f"other content (sha256 {result.sha256[:16]}…)"


def judge(target: Target, policy: FetchPolicy, options: HashOptions = _COMPARE) -> Verdict:
    """Fetch ``target`` and say what the answer means (see the module's table). A surprise is
    this target's error (tried again later), never the batch's."""
    try:
        return _judge(target, policy, options)
    except Exception as exc:
        log.exception("re-checking item %s failed", target.id)
        return Verdict("error", f"the re-check failed: {type(exc).__name__}")


def _judge(target: Target, policy: FetchPolicy, options: HashOptions) -> Verdict:
    try:
        result = fetch(target.url, policy)
    except FetchUnresolvable as exc:
        return Verdict("miss", f"the name is gone: {exc}")
    except FetchConnectionRefused as exc:
        return Verdict("miss", f"connection refused: {exc}")
    except FetchRefused as exc:
        return Verdict("error", f"not fetched: {exc}")
    except FetchError as exc:
        return Verdict("error", str(exc))
    status = f"HTTP {result.status}"
    if result.status in MISS_STATUSES:
        return Verdict("miss", status)
    if not 200 <= result.status < 300:
        return Verdict("error", status)
    if result.error:
        return Verdict("error", f"{status}, {result.error}")
    same, detail = _same_content(target, result, options)
    if same is None:
        return Verdict("error", f"{status}, {detail}")
    if not same:
        if result.truncated:
            return Verdict("error", f"{status}, longer than the fetch limit: cannot compare")
        return Verdict("miss", f"{status}, {detail}")
    return Verdict("online", f"{status}, {detail}")


def check_all(
    targets: Sequence[Target],
    policy: FetchPolicy,
    table: AsnTable,
    options: HashOptions = _COMPARE,
) -> list[Verdict]:
    """``judge`` each target, several at once on the process's bounded pool; where a target is
    online, add where its host points now (each host looked up once)."""
    if len(targets) == 1:
        verdicts = [judge(targets[0], policy, options)]
    else:
        verdicts = list(_executor().map(lambda t: judge(t, policy, options), targets))
    online = [
        (t.url, t.host) for t, v in zip(targets, verdicts, strict=True) if v.verdict == "online"
    ]
    where = iter(locate_many(online, policy, table))
    return [
        Verdict(v.verdict, v.detail, next(where)) if v.verdict == "online" else v for v in verdicts
    ]


@dataclass(frozen=True)
class _Times:
    now: datetime
    check: timedelta
    first_check: timedelta
    spacing: timedelta
    error: timedelta
    escalation: timedelta
    misses: int
    watch: timedelta
    watch_for: timedelta

    @classmethod
    def of(cls, settings: Settings) -> _Times:
        check = timedelta(minutes=settings.takedown_check_minutes)
        spacing = timedelta(minutes=settings.takedown_miss_spacing_minutes)
        return cls(
            now=clock.now(),
            check=check,
            first_check=timedelta(minutes=settings.takedown_first_check_minutes),
            spacing=spacing,
            error=min(check, max(spacing, timedelta(minutes=5))),
            escalation=timedelta(hours=settings.takedown_escalation_hours),
            misses=settings.takedown_offline_misses,
            watch=timedelta(hours=WATCH_HOURS),
            watch_for=timedelta(days=WATCH_DAYS),
        )


class _Batch:
    """The results of one batch, applied to its rows in one transaction."""

    def __init__(self, session: Session, context: HotlineContext, times: _Times) -> None:
        self.session, self.times = session, times
        self.home = context.settings.hotline_country
        self.notes: list[items.Note] = []
        self.directory = Directory()

    def note(self, note: items.Note | None) -> None:
        if note is not None:
            self.notes.append(note)

    # -- where is it hosted now?

    def load_directory(self, rows: Sequence[UrlItem], found: dict[int, Verdict]) -> None:
        moving = [(r, found[r.id].location) for r in rows if self._relocated(r, found[r.id])]
        if moving:
            self.directory = Directory.load(
                self.session,
                (r.host for r, _loc in moving),
                (loc.asn for _r, loc in moving if loc is not None),
                (loc.org for _r, loc in moving if loc is not None),
            )

    @staticmethod
    def _relocated(row: UrlItem, found: Verdict) -> bool:
        location = found.location
        return (
            location is not None
            and location.ip is not None
            and row.ip is not None
            and row.ip not in location.addresses
        )

    def moved(self, row: UrlItem, found: Verdict) -> dict[str, Any] | None:
        """The details of a change of hoster, or None (a new address of the same hoster is
        recorded on the row)."""
        if not self._relocated(row, found):
            return None
        location = found.location
        assert location is not None
        outcome = attribute(row.host, location, self.directory, self.home)
        if location.asn == row.asn and outcome.contact_id == row.contact_id:
            row.ip = location.ip
            return None
        return {
            "from": {"ip": row.ip, "asn": row.asn, "network_owner": row.network_owner,
                     "contact_id": row.contact_id},
            "to": {"ip": location.ip, "asn": location.asn, "network_owner": location.org,
                   "contact_id": outcome.contact_id},
        }  # fmt: skip

    def attribute_again(self, row: UrlItem, event: Event, details: dict[str, Any]) -> None:
        now = self.times.now
        row.attributed_at = None
        row.misses = 0
        row.last_miss_at = row.gone_at = None
        self.note(items.move(self.session, row, ItemState.ready, actor="worker", event=event,
                             details=details, due_at=now))  # fmt: skip
        row.next_check_at = row.renotice_at = row.escalation_at = None

    # -- the verdicts

    def online(self, row: UrlItem, found: Verdict) -> None:
        t = self.times
        row.last_seen_at = t.now
        change = self.moved(row, found)
        if change is not None:
            self.attribute_again(row, Event.moved, {**change, "check": found.detail})
            return
        row.misses = 0
        row.last_miss_at = row.gone_at = None
        row.last_error = None
        if row.state == ItemState.noticed and row.escalation_at and row.escalation_at <= t.now:
            row.escalated_at = t.now
            details = {"check": found.detail, "first_notice_at": _iso(row.first_notice_at)}
            self.note(items.move(self.session, row, ItemState.escalated, actor="worker",
                                 event=Event.escalation_due, details=details))  # fmt: skip
        self.schedule(row, t.now + t.check)

    def schedule(self, row: UrlItem, moment: datetime) -> None:
        """The next check at ``moment``, or at the item's escalation time if that is sooner."""
        escalation = row.escalation_at
        if (
            row.state == ItemState.noticed
            and escalation is not None
            and escalation > self.times.now
        ):
            moment = min(moment, escalation)
        row.next_check_at = moment

    def miss(self, row: UrlItem, found: Verdict) -> None:
        t = self.times
        counts = (
            row.misses == 0 or row.last_miss_at is None or t.now - row.last_miss_at >= t.spacing
        )
        if not counts:  # too soon after the last miss: check again when it would count
            assert row.last_miss_at is not None
            row.next_check_at = max(row.last_miss_at + t.spacing, t.now)
            return
        row.misses = (row.misses or 0) + 1
        row.last_miss_at = t.now
        if row.misses == 1:
            row.gone_at = t.now  # first seen gone; kept if the misses go on to make it offline
        self.note(items.Note(row.id, Event.checked, "worker",
                             {"miss": row.misses, "why": found.detail}, audited=False))  # fmt: skip
        if row.misses < t.misses:
            row.next_check_at = t.now + t.spacing
            return
        row.offline_at = t.now
        self.note(items.move(self.session, row, ItemState.offline, actor="worker",
                             event=Event.offline,
                             details={"misses": row.misses, "why": found.detail}))  # fmt: skip
        row.next_check_at = t.now + t.watch  # watched for returned content

    def error(self, row: UrlItem, found: Verdict) -> None:
        row.last_error = found.detail[:2000]
        self.schedule(row, self.times.now + self.times.error)

    def watched(self, row: UrlItem, found: Verdict) -> None:
        """An offline item being watched for returned content."""
        t = self.times
        if found.verdict != "online":
            following = t.now + t.watch
            ends = (row.offline_at or t.now) + t.watch_for
            row.next_check_at = following if following <= ends else None
            return
        row.last_seen_at = t.now
        holder = self.session.scalar(
            select(UrlItem.id).where(UrlItem.open_key == row.url_key, UrlItem.id != row.id)
        )
        if holder is None:
            try:
                with self.session.begin_nested():
                    self.session.execute(
                        update(UrlItem).where(UrlItem.id == row.id).values(open_key=row.url_key)
                    )
                set_committed_value(row, "open_key", row.url_key)
            except IntegrityError:  # a report opened the URL again a moment ago
                holder = self.session.scalar(
                    select(UrlItem.id).where(UrlItem.open_key == row.url_key)
                )
        if holder is not None:
            row.next_check_at = None  # the open item watches the URL now
            self.note(items.Note(row.id, Event.linked, "worker",
                                 {"item": holder, "why": "content returned; the URL is open "
                                  f"as item {holder}", "check": found.detail}))  # fmt: skip
            return
        details = {"check": found.detail, "offline_at": _iso(row.offline_at)}
        row.offline_at = row.gone_at = None
        change = self.moved(row, found)
        if change is not None or row.last_notice_at is None:
            self.attribute_again(row, Event.reopened, {**details, **(change or {})})
            return
        row.misses = 0
        row.last_miss_at = None
        self.note(items.move(self.session, row, ItemState.noticed, actor="worker",
                             event=Event.reopened, details=details))  # fmt: skip
        row.renotice_at = t.now
        row.escalation_at = t.now + t.escalation
        row.next_check_at = t.now + t.first_check

    def apply(self, row: UrlItem, found: Verdict) -> None:
        if row.state == ItemState.offline:
            self.watched(row, found)
        elif found.verdict == "online":
            self.online(row, found)
        elif found.verdict == "miss":
            self.miss(row, found)
        else:
            self.error(row, found)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _where() -> list[Any]:
    return [UrlItem.state.in_((*RECHECKED_STATES, ItemState.offline))]


def run_lifecycle(context: HotlineContext, limit: int) -> int:
    """Re-check up to ``limit`` items whose ``next_check_at`` has come; returns how many."""
    where = _where()
    with context.sessions() as session:
        if not items.any_due(session, UrlItem.next_check_at, where):
            return 0
    policy = context.fetch_policy
    # long enough for a batch of fetches that all take the longest a fetch may take
    rounds = -(-limit // CHECK_THREADS) + 1
    lease = max(LEASE, timedelta(seconds=rounds * policy.total_seconds))
    with context.sessions() as session:
        table = table_for(session)  # its own transaction: a claim must begin with its write
    with context.sessions() as session:
        claimed = items.claim(session, UrlItem.next_check_at, where, limit=limit, lease=lease)
        targets = [
            Target(r.id, r.url, r.host, r.media, r.sha256, r.pdq) for r in claimed
        ]  # fmt: skip
        states = {r.id: r.state for r in claimed}
        session.commit()
    if not targets:
        return 0
    verdicts = check_all(targets, policy, table, compare_options(context.settings))
    found = {t.id: v for t, v in zip(targets, verdicts, strict=True)}
    with context.sessions() as session:
        items.begin_write(session)
        query = select(UrlItem).where(UrlItem.id.in_(list(found))).order_by(UrlItem.id)
        if session.connection().dialect.name == "postgresql":
            query = query.with_for_update()
        rows = [
            r
            for r in session.scalars(query.execution_options(populate_existing=True))
            if r.state == states[r.id]  # not changed by anyone else meanwhile
        ]
        batch = _Batch(session, context, _Times.of(context.settings))
        batch.load_directory(rows, found)
        for row in rows:
            batch.apply(row, found[row.id])
        items.note(session, batch.notes)
        session.commit()
    return len(targets)
