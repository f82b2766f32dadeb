"""Rows for the monitor's tests, written directly: notified items with their notice fields and
gone times, orders, penalties, platforms with hits and check counts; and a random history."""

from __future__ import annotations

import hashlib
import itertools
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.store.models import (
    Case,
    CheckCount,
    HashSet,
    Hit,
    Order,
    Organisation,
    Penalty,
    UrlItem,
)

_serial = itertools.count(1)

OWNERS = {100: "BigHost B.V.", 200: "MidHost", 300: "SmallHost", 400: "Other Net"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def item(
    session: Session,
    first: datetime | None,
    asn: int | None,
    *,
    hours: float | None = None,
    state: str | None = None,
    owner: str | None = None,
    created: datetime | None = None,
    grade: str | None = "illegal",
    renotices: int = 0,
    escalated: datetime | None = None,
    current_asn: int | None = -1,
    country: str | None = "NL",
    use_offline_at: bool = False,
) -> UrlItem:
    """A notified URL first noticed at ``first`` to ``asn``; gone ``hours`` later (offline)."""
    n = next(_serial)
    url = f"https://pics{n}.example/{n}.jpg"
    now = clock.now()
    owner = owner if owner is not None else OWNERS.get(asn or 0)
    gone = None if hours is None or first is None else first + timedelta(hours=hours)
    if current_asn == -1:
        current_asn = asn
    row = UrlItem(
        url=url, url_key=hashlib.sha256(url.encode()).hexdigest(), host=f"pics{n}.example",
        kind="csam", state=state or ("offline" if gone else "noticed"),
        created_at=created or (first - timedelta(hours=1) if first else now), updated_at=now,
        attempts=0, renotices=renotices, misses=0, grade=grade,
        asn=current_asn, network_owner=OWNERS.get(current_asn or 0) if current_asn != asn
        else owner,
        first_notice_at=first, notice_asn=asn if first else None,
        notice_owner=owner if first else None, notice_country=country if first else None,
        gone_at=None if use_offline_at else gone, offline_at=gone, escalated_at=escalated,
    )  # fmt: skip
    session.add(row)
    return row


def go_offline(row: UrlItem, hours: float) -> None:
    assert row.first_notice_at is not None
    row.state = "offline"
    row.gone_at = row.first_notice_at + timedelta(hours=hours)
    row.offline_at = row.gone_at + timedelta(hours=1)
    row.updated_at = clock.now()


def case(session: Session) -> Case:
    now = clock.now()
    n = next(_serial)
    row = Case(ref=f"C-{n}", state="open", source="escalation", title="t", opened_by="test",
               opened_at=now, updated_at=now)  # fmt: skip
    session.add(row)
    session.flush()
    return row


def order(session: Session, asn: int, issued: datetime, *, owner: str | None = None) -> Order:
    n = next(_serial)
    row = Order(
        ref=f"O-{n}", case_id=case(session).id, asn=asn, network_owner=owner or OWNERS[asn],
        status="issued", legal_basis="law", reasons="why", issued_by="authority",
        issued_at=issued, hours=12.0, deadline_at=issued + timedelta(hours=12),
        updated_at=clock.now(), message_id=f"<order-{n}@test>", send_attempts=0,
        penalty_total_cents=0,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def penalty(session: Session, placed: Order, forfeited: datetime, cents: int, seq: int) -> None:
    session.add(Penalty(order_id=placed.id, seq=seq, due_at=forfeited, forfeited_at=forfeited,
                        amount_cents=cents, asn=placed.asn,
                        network_owner=placed.network_owner))  # fmt: skip


def platform(session: Session, name: str, kind: str = "platform") -> Organisation:
    row = Organisation(name=name, kind=kind, created_at=clock.now())
    session.add(row)
    session.flush()
    return row


def hash_set(session: Session) -> HashSet:
    now = clock.now()
    row = HashSet(name=f"set-{next(_serial)}", created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


def hit(session: Session, org: Organisation, when: datetime, outcome: str | None,
        set_id: int) -> Hit:  # fmt: skip
    n = next(_serial)
    row = Hit(public_id=n * 7919 + 13, org_id=org.id, at=when, signal_type="md5",
              signal_value=f"{n:032x}", distance=0, set_id=set_id, item_id=n,
              category="csam", outcome=outcome,
              outcome_at=when + timedelta(hours=1) if outcome else None)  # fmt: skip
    session.add(row)
    return row


def counts(session: Session, org: Organisation, day: str, checks: int, items: int) -> None:
    session.add(CheckCount(org_id=org.id, day=day, checks=checks, items=items))


def random_history(session: Session, seed: int, *, items: int = 300) -> list[UrlItem]:
    """A random history over 2024-2026: items at five hosters (one without an AS number),
    every state, gone times around the 24 and 48 hour marks, orders, penalties, platforms."""
    rng = random.Random(seed)
    start = at("2024-01-01T00:00:00")
    span = (at("2026-12-31T00:00:00") - start).total_seconds()
    rows = []
    asns = [100, 200, 300, 400, None]
    for _ in range(items):
        first = start + timedelta(seconds=rng.uniform(0, span))
        asn = rng.choice(asns)
        owner = None if asn is None and rng.random() < 0.5 else OWNERS.get(asn or 0, "Nameless")
        roll = rng.random()
        hours: float | None = rng.choice([0.5, 23.99, 24.0, 24.01, 47.5, 48.0, 200.0,
                                          rng.uniform(0, 100), -2.0])  # fmt: skip
        state = None
        if roll < 0.2:
            hours, state = None, rng.choice(["noticed", "escalated", "ready"])
        elif roll < 0.25:
            state = "noticed"  # was gone, came back: not offline
        moved = rng.random() < 0.1
        rows.append(
            item(
                session, first if rng.random() < 0.9 else None, asn, hours=hours, state=state,
                owner=owner, grade=rng.choice(["illegal", "illegal", "not_illegal", None]),
                renotices=rng.randint(0, 3),
                escalated=first + timedelta(hours=72) if rng.random() < 0.2 else None,
                current_asn=rng.choice(asns) if moved else -1,
                country=rng.choice(["NL", "DE", None]), use_offline_at=rng.random() < 0.1,
            )
        )  # fmt: skip
    for _ in range(6):
        asn = rng.choice([100, 200, 300])
        placed = order(session, asn, start + timedelta(seconds=rng.uniform(0, span)))
        for seq in range(rng.randint(0, 3)):
            penalty(session, placed, placed.issued_at + timedelta(days=seq + 1),
                    rng.randint(0, 5) * 100_000, seq + 1)  # fmt: skip
    hashes = hash_set(session)
    orgs = [platform(session, f"platform-{seed}-{i}") for i in range(3)]
    orgs.append(platform(session, f"hotline-{seed}", kind="hotline"))
    for _ in range(200):
        org = rng.choice(orgs)
        when = start + timedelta(seconds=rng.uniform(0, span + 86400 * 30))
        outcome = rng.choice([None, None, "blocked", "removed", "reported", "false_positive",
                              "other"])  # fmt: skip
        hit(session, org, min(when, clock.now()), outcome, hashes.id)
    days = set()
    for _ in range(60):
        org = rng.choice(orgs)
        day = (start + timedelta(days=rng.randint(0, 1100))).date().isoformat()
        if (org.id, day) in days:
            continue
        days.add((org.id, day))
        counts(session, org, day, rng.randint(0, 500), rng.randint(0, 2000))
    session.flush()
    return rows
