"""Re-checks of hits' public URLs, on SQLite and PostgreSQL, against HTTP servers on 127.0.0.2
(the only network they ever reach) with a frozen clock."""

from __future__ import annotations

import ipaddress
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from loopback_web import send, serve
from meldpunt import checks, registry
from meldpunt.checks import rechecks
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports.fetcher import FetchPolicy
from meldpunt.store import make_sessionmaker
from meldpunt.store.models import AuditEvent

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
POLICY = FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.2/32"),), timeout_seconds=2)


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


@pytest.fixture
def site():
    routes = {
        "/online": lambda h: send(h, 200, b"still here"),
        "/removed": lambda h: send(h, 410),
        "/broken": lambda h: send(h, 500),
    }
    with serve("127.0.0.2", routes) as (base, seen):
        yield base, seen


@pytest.fixture
def make_hits(engine, session, settings, clock):
    org = checks.create_org(session, "platform-a", "platform")
    police = registry.create_set(session, "police-nl", default_category="baseline")
    item = registry.add_item(session, police, [("md5", os.urandom(16).hex())]).item.id
    session.commit()

    def make(*urls: str | None) -> list[int]:
        hits = [
            checks.NewHit(
                "md5", os.urandom(16).hex(), 0, police.id, item, "csam_baseline", public_url=u
            )
            for u in urls
        ]
        ids = checks.record_hits(session, org.id, hits)
        session.commit()
        return ids

    return make


def test_hits_are_rechecked_when_due_and_end_gone_or_online(
    engine, session, make_hits, site, clock
):
    base, seen = site
    ids = make_hits(
        f"{base}/online", f"{base}/removed", f"{base}/nothing", f"{base}/broken", None,
        "http://127.0.0.1:9/inside",
    )  # fmt: skip
    sessions = make_sessionmaker(engine)
    assert rechecks.run_rechecks(sessions, POLICY) == 0  # nothing due yet
    clock.advance(timedelta(hours=23, minutes=59))
    assert rechecks.run_rechecks(sessions, POLICY) == 0
    clock.advance(timedelta(minutes=1))
    assert rechecks.run_rechecks(sessions, POLICY) == 5  # the hit without a URL has no re-check
    assert sorted(s[":path"] for s in seen) == ["/broken", "/nothing", "/online", "/removed"]

    hits = {i: checks.get_hit(session, None, i) for i in ids}
    online, removed, missing, broken, no_url, inside = (hits[i] for i in ids)
    now = T0 + timedelta(hours=24)
    assert (online.recheck_status, online.rechecked_at) == ("online", now)
    assert online.recheck_due_at == now + timedelta(hours=24)  # checked again until gone
    assert (removed.recheck_status, removed.recheck_due_at) == ("gone", None)
    assert (missing.recheck_status, missing.recheck_due_at) == ("gone", None)
    assert broken.recheck_status == "error" and broken.recheck_due_at is not None
    assert (inside.recheck_status, inside.recheck_due_at) == ("error", None)  # refused: no retry
    assert no_url.recheck_status is None

    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "checks.hit.rechecked")
    ).all()
    assert len(events) == 5
    refused = [e for e in events if e.subject_id == str(inside.row_id)][0]
    assert "an address inside the network" in refused.details

    # The next round re-checks what is still scheduled; a removed page becomes gone then.
    clock.advance(timedelta(hours=24))
    seen.clear()
    assert rechecks.run_rechecks(sessions, POLICY) == 2
    assert sorted(s[":path"] for s in seen) == ["/broken", "/online"]


def test_an_online_url_is_not_checked_for_ever(engine, session, make_hits, site, clock):
    base, _ = site
    (hit,) = make_hits(f"{base}/online")
    sessions = make_sessionmaker(engine)
    rounds = 0
    clock.advance(timedelta(hours=24))
    while rechecks.run_rechecks(sessions, POLICY):
        rounds += 1
        clock.advance(timedelta(hours=24))
    clock.advance(timedelta(hours=24))
    rounds += rechecks.run_rechecks(sessions, POLICY)
    assert 1 < rounds <= rechecks.MAX_RECHECKS
    assert checks.get_hit(session, None, hit).recheck_due_at is None


def test_a_claim_hides_hits_from_other_claimers_until_its_lease_ends(engine, make_hits, clock):
    make_hits("http://127.0.0.2:9/a", "http://127.0.0.2:9/b")
    clock.advance(timedelta(hours=24))
    sessions = make_sessionmaker(engine)
    with sessions() as s, s.begin():
        assert len(rechecks.due_rechecks(s, limit=10)) == 2
    with sessions() as s, s.begin():
        assert rechecks.due_rechecks(s, limit=10) == []  # a worker that died holds them a while
    clock.advance(rechecks.CLAIM_LEASE)
    with sessions() as s, s.begin():
        assert len(rechecks.due_rechecks(s, limit=10)) == 2


@pytest.mark.postgres
def test_concurrent_claimers_never_claim_the_same_hit(db_url, engine, make_hits, clock):
    if not db_url.startswith("postgresql"):
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    ids = make_hits(*[f"http://127.0.0.2:9/{n}" for n in range(40)])
    clock.advance(timedelta(hours=24))
    sessions = make_sessionmaker(engine)
    first, second = sessions(), sessions()
    try:
        first.begin()
        second.begin()
        a = rechecks.due_rechecks(first, limit=25)  # holds its rows, uncommitted
        b = rechecks.due_rechecks(second, limit=25)  # must skip them, not wait
        assert len(a) == 25 and len(b) == 15
        assert not {h.id for h in a} & {h.id for h in b}
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()

    # And many claimers at once, with commits: each hit claimed exactly once.
    clock.advance(rechecks.CLAIM_LEASE)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim() -> None:
        with sessions() as s, s.begin():
            got = [h.id for h in rechecks.due_rechecks(s, limit=3)]
        with lock:
            claimed.extend(got)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == len(set(claimed)) == 24
    assert set(claimed) <= set(ids)
