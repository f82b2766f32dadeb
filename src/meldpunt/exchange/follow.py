"""Following partners' sets: fetch pages, verify them, apply them in one transaction, go on.

``pull(sessions, partner, policy)`` follows each set of a partner from where it left off
(``PartnerFollow.after_seq``) until the partner has nothing newer. Each page is checked by
``feeds.parse_page`` first; a page that does not fit is refused whole and the refusal is kept
on the follow (the admin pages show it), so nothing of it is applied and the next pull asks the
same question again. Pages that fit are applied with the new position in one transaction
(``applying.apply_page``): a pull cut off half-way resumes after the last page applied.

Pages are fetched and checked in a thread, one after another, while the ones before are applied
(no transaction waits on the network). A follower far behind asks for larger pages (up to
``feeds.MAX_PAGE``) and applies the pages that wait in one transaction (up to ``MAX_RUN``
changes), so that a first pull of millions commits a few dozen times, not hundreds: each commit
writes out the parts of the indexes it touched, most of them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from meldpunt.clock import now
from meldpunt.exchange.applying import apply_page, merged
from meldpunt.exchange.errors import FeedUnavailable, NotFound, PageRefused
from meldpunt.exchange.feeds import DEFAULT_PAGE, MAX_PAGE, FeedPage, parse_page
from meldpunt.registry import lock_registry
from meldpunt.reports.fetcher import FetchError, FetchPolicy, FetchRefused, fetch
from meldpunt.store import begin_write
from meldpunt.store.bulk import large_cache
from meldpunt.store.models import Partner, PartnerFollow

__all__ = ["MAX_RUN", "FollowResult", "apply_page", "partner_policy", "pull", "pull_due"]

#: After a failed pull, the next waits this long, doubling up to a day.
RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(days=1)
#: The most changes applied in one transaction (pages that wait, taken together).
MAX_RUN = 1_000_000
#: Pages fetched ahead of the applying, at most.
AHEAD = 4


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


class _Reader:
    """Fetches and checks a set's pages one after another in a thread, ahead of the applying:
    each page, or the refusal that ends the reading, goes into ``pages`` in order."""

    def __init__(
        self,
        feed: _Feed,
        policy: FetchPolicy,
        after: int,
        *,
        limit: int,
        catch_up: int | None,
        max_pages: int | None,
    ) -> None:
        self.feed, self.policy, self.after = feed, policy, after
        self.limit, self.catch_up, self.max_pages = limit, catch_up, max_pages
        self.pages: queue.Queue[FeedPage | PageRefused | FeedUnavailable] = queue.Queue(AHEAD)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read, name="exchange-read", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        after, ask, read = self.after, self.limit, 0
        while not self.stopping.is_set() and (self.max_pages is None or read < self.max_pages):
            try:
                page: FeedPage | PageRefused | FeedUnavailable = _next_page(
                    self.feed, self.policy, after, ask
                )
            except (PageRefused, FeedUnavailable) as exc:
                page = exc
            while not self.stopping.is_set():
                try:
                    self.pages.put(page, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if not isinstance(page, FeedPage) or not page.more:
                return
            read += 1
            if self.catch_up is not None and len(page) >= ask:
                ask = max(ask, min(self.catch_up, ask * 2))
            after = page.last

    def take(self, most: int) -> tuple[list[FeedPage], PageRefused | FeedUnavailable | None]:
        """The pages waiting (at least one; at most ``most`` changes unless the first alone is
        more), and the refusal after them, if any."""
        pages: list[FeedPage] = []
        item = self.pages.get()
        while True:
            if not isinstance(item, FeedPage):
                return pages, item
            if pages and sum(len(p) for p in pages) + len(item) > most:
                self._keep(item)
                return pages, None
            pages.append(item)
            if not item.more:
                return pages, None
            try:
                item = self.pages.get_nowait()
            except queue.Empty:
                return pages, None

    def _keep(self, item: FeedPage) -> None:
        # put back at the front: the reader only ever adds at the end
        with self.pages.mutex:
            self.pages.queue.appendleft(item)
            self.pages.not_empty.notify()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=self.policy.total_seconds + 5)


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
    for twice as many, up to ``catch_up``, and the pages that wait are applied together, up to
    ``MAX_RUN`` changes a transaction. ``on_page`` is called after each commit."""
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
    most = MAX_RUN if catch_up is not None else 1  # without catch_up: a page a transaction
    reader: _Reader | None = None
    try:
        while max_pages is None or result.pages < max_pages:
            with sessions() as session:  # read, then let go: no transaction waits on the network
                follow = session.get(PartnerFollow, follow_id)
                partner = session.get(Partner, follow.partner_id) if follow else None
                assert follow is not None and partner is not None
                after = follow.after_seq
                feed = _Feed(partner.name, partner.url, partner.remote_token,
                             partner.public_key, follow.remote_set)  # fmt: skip
            if reader is None:
                left = None if max_pages is None else max_pages - result.pages
                reader = _Reader(feed, policy, after, limit=limit, catch_up=catch_up,
                                 max_pages=left)  # fmt: skip
            pages, refusal = reader.take(most)
            if pages and not _apply(sessions, follow_id, feed, after, merged(pages), every):
                reader.stop()  # our position or the partner's key changed meanwhile: read anew
                reader = None
                continue
            result.pages += len(pages)
            for page in pages:
                result.changes += len(page)
                result.bytes += page.size
                result.after, result.head = page.last, page.head
            if pages and on_page is not None:
                on_page(result)
            if refusal is not None:
                result.error = str(refusal)
                _record_failure(sessions, follow_id, str(refusal))
                raise refusal
            if not pages[-1].more:
                break
    finally:
        if reader is not None:
            reader.stop()
    return result


def _apply(
    sessions: sessionmaker[Session],
    follow_id: int,
    feed: _Feed,
    after: int,
    page: FeedPage,
    every: timedelta,
) -> bool:
    """Apply ``page`` (pages taken together) with the new position in one transaction; False
    when the follow is no longer where the page starts, or the partner's key was set anew while
    it came (nothing applied)."""
    with sessions() as session:
        lock_registry(session)  # before the first read
        follow = session.get(PartnerFollow, follow_id, populate_existing=True)
        assert follow is not None
        partner = session.get(Partner, follow.partner_id, populate_existing=True)
        assert partner is not None
        if follow.after_seq != after or page.after != after:  # another worker applied it
            return False
        if partner.public_key != feed.public_key:
            return False
        with large_cache(session.connection()):
            apply_page(session, follow, partner, page)
            follow.last_pull_at = follow.last_success_at = now()
            follow.failures, follow.last_error = 0, None
            follow.next_pull_at = now() + (timedelta(0) if page.more else every)
            session.flush()
        session.commit()
    return True


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
