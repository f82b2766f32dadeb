"""Writes off the request path: hits by group commit, check counts every second.

Every matching check must leave a durable hit (its id goes back to the platform, which reports
an outcome against it later), so a request waits until its hits are committed. Concurrent
requests share one transaction: a single writer thread takes whatever is queued, writes it in
one commit and hands each request its ids. On SQLite that also means one writer, never "database
is locked"; on PostgreSQL, a few large commits instead of many small ones.

Check counts are statistics: they are added up in memory and written every second (and at
shutdown); a crash loses at most that second's counts, never a hit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future

from sqlalchemy.orm import Session, sessionmaker

from meldpunt import clock
from meldpunt.checks import NewHit, record_check, record_hits

log = logging.getLogger(__name__)

#: One request's share of a group commit: its organisation, its hits, and its answer.
_Member = tuple[int, list[NewHit], Future[list[int]]]


class Writer:
    def __init__(self, sessions: sessionmaker[Session], flush_seconds: float = 1.0) -> None:
        self._sessions = sessions
        self._flush_seconds = flush_seconds
        self._hits: queue.Queue[_Member | None] = queue.Queue()
        self._counts: Counter[int] = Counter()
        self._items: Counter[int] = Counter()
        self._counts_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        # One thread does every write, so that on SQLite writers never wait on each other.
        self._thread = threading.Thread(target=self._run, name="meldpunt-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._hits.put(None)
        self._thread.join(timeout=10)
        self.flush_counts()

    def submit(self, org_id: int, hits: list[NewHit]) -> Future[list[int]]:
        """Queue hits; the future gives their ids once they are committed."""
        future: Future[list[int]] = Future()
        if not hits:
            future.set_result([])
        else:
            self._hits.put((org_id, hits, future))
        return future

    def count(self, org_id: int, items: int) -> None:
        with self._counts_lock:
            self._counts[org_id] += 1
            self._items[org_id] += items

    def _run(self) -> None:
        # Real time (clock.perf), not the test clock: this deadline is a real wait on the queue.
        next_flush = clock.perf() + self._flush_seconds
        while True:
            try:
                first = self._hits.get(timeout=max(0.0, next_flush - clock.perf()))
            except queue.Empty:
                pass
            else:
                if first is None:
                    return
                self._write_hits(first)
            if clock.perf() >= next_flush:
                next_flush = clock.perf() + self._flush_seconds
                try:
                    self.flush_counts()
                except Exception:
                    log.exception("writing check counts failed; they are kept for the next try")

    def _write_hits(self, first: _Member) -> None:
        batch = [first]
        while len(batch) < 500:
            try:
                more = self._hits.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._hits.put(None)
                break
            batch.append(more)
        try:
            written = self._commit(batch)
        except Exception as exc:
            if len(batch) == 1:
                log.exception("writing hits failed")
                batch[0][2].set_exception(exc)
                return
            # One request's hits must not fail another's: each member is written alone, so
            # only the member that cannot be written fails.
            log.warning("a group commit of %d requests failed; writing them one by one", len(batch))
            for member in batch:
                try:
                    ids = self._commit([member])
                except Exception as exc:
                    log.exception("writing a request's hits failed")
                    member[2].set_exception(exc)
                else:
                    member[2].set_result([next(ids[member[0]]) for _ in member[1]])
            return
        for org, hits, future in batch:
            future.set_result([next(written[org]) for _ in hits])

    def _commit(self, batch: list[_Member]) -> dict[int, Iterator[int]]:
        """Write the batch's hits in one transaction: one insert and one audit event per
        organisation. Returns each organisation's new ids, in the order of its members."""
        by_org: dict[int, list[NewHit]] = {}
        for org, hits, _ in batch:
            by_org.setdefault(org, []).extend(hits)
        with self._sessions() as session:
            written = {org: iter(record_hits(session, org, hits)) for org, hits in by_org.items()}
            session.commit()
        return written

    def flush_counts(self) -> None:
        """Write the counts so far. Flushes run one at a time, so a reader that flushes before
        reading (``GET /v1/stats``) sees counts that another flush took but had not committed."""
        with self._flush_lock:
            self._flush_counts()

    def _flush_counts(self) -> None:
        with self._counts_lock:
            counts, items = self._counts, self._items
            self._counts, self._items = Counter(), Counter()
        if not counts:
            return
        try:
            with self._sessions() as session:
                for org_id, checks in counts.items():
                    record_check(session, org_id, items[org_id], checks=checks)
                session.commit()
        except Exception:
            with self._counts_lock:  # put them back, so nothing is lost
                self._counts.update(counts)
                self._items.update(items)
            raise
