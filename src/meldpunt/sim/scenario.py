"""A whole scenario in one process: the simulated internet, reports through meldpunt's intake,
meldpunt's worker and mail, a simulated analyst, on a ``FrozenClock`` that jumps from one due
moment to the next, so that days pass in seconds.

    result = run_scenario(ScenarioConfig(seed=1, hosters=10, urls=40, days=3), sessions, settings)
    print(json.dumps(result.as_json()))

Each step: the reports due arrive (``reports.intake.submit_report``), the hosters do what is due
(``Simulation.tick``), the analyst grades what waited long enough (``Analyst``), and the worker
runs every due piece of work (``worker.run_once``: fetches, grading, attribution, notices by
SMTP to the sink, re-checks). Then the clock jumps to the next moment anything is due: an
item's or a notice's due time, a re-notice or an escalation, a report, the analyst, exactly;
re-checks and the hosters' own doings on a grid of ``check_step_seconds`` (so that a thousand
items re-checked hourly do not make a thousand steps an hour). It never jumps past ``days``
and stops after ``max_steps``.

The records stay in the database the sessions write to, for the pages and later commands.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from meldpunt import clock, registry
from meldpunt.config import Settings
from meldpunt.registry.matching import picture_query
from meldpunt.reports import intake
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.items import normalise_url, url_key
from meldpunt.reports.vocabulary import ReportKind, ReportSource
from meldpunt.signals import HashOptions
from meldpunt.sim.analyst import Analyst
from meldpunt.sim.authority import SimAuthority
from meldpunt.sim.behaviour import Behaviour, BehaviourKind, draw_behaviours
from meldpunt.sim.internet import SimEvent
from meldpunt.sim.plan import Plan, PlannedReport, make_plan, run_tag
from meldpunt.sim.simulation import Simulation
from meldpunt.sim.tables import contacts
from meldpunt.store.models import ItemEvent, Notice, Order, UrlItem
from meldpunt.worker import run_once

__all__ = [
    "KNOWN_SET",
    "SCENARIO_EVENTS",
    "ScenarioConfig",
    "ScenarioProgress",
    "ScenarioResult",
    "parse_start",
    "run_scenario",
    "seed_registry",
    "submit_planned",
]

KNOWN_SET = "sim-known"
KNOWN_CATEGORY = "csam_baseline"
#: The timeline events a scenario's output shows (re-checks that found nothing new are left out).
SCENARIO_EVENTS = (
    "received", "fetched", "fetch_failed", "graded", "police", "police_cleared", "attributed",
    "contact_needed", "retried", "forwarded", "notice", "renotice", "answered", "escalation_due",
    "offline", "reopened", "moved",
)  # fmt: skip


@dataclass(frozen=True)
class ScenarioConfig:
    seed: int = 1
    hosters: int = 10
    urls: int = 40
    days: float = 3.0
    start: datetime | None = None  # None: now, to the second
    known_share: float = 0.5
    page_share: float = 0.15
    pictures: int | None = None  # distinct pictures of each kind (None: one per URL)
    report_hours: float = 2.0  # reports arrive over this long from the start
    abroad: float = 0.1  # share of hosters in another country (forwarded, not noticed)
    analyst_minutes: float = 30.0
    police_hours: float = 4.0
    contact_hours: float = 6.0  # until the analyst fixes a missing or unapproved contact
    police_share: float = 0.05  # of new material, graded "first police"
    not_illegal_share: float = 0.05  # of new material, graded not illegal
    check_step_seconds: float = 300.0
    max_steps: int = 20_000
    batch: int = 200  # the worker's batch size
    #: How often each behaviour is drawn (None: ``behaviour.WEIGHTS``).
    mix: dict[BehaviourKind, float] | None = None
    #: The hosters' behaviours one by one (overrides ``hosters`` and ``mix``).
    behaviours: tuple[Behaviour, ...] | None = None
    #: A simulated authority takes up the escalations: cases, orders, fines (``sim.authority``).
    authority: bool = False
    order_hours: float = 1.0


@dataclass(frozen=True)
class ScenarioProgress:
    now: datetime
    start: datetime
    end: datetime
    steps: int

    @property
    def fraction(self) -> float:
        total = (self.end - self.start).total_seconds()
        return 1.0 if total <= 0 else min(1.0, (self.now - self.start).total_seconds() / total)


@dataclass
class ScenarioResult:
    config: ScenarioConfig
    start: datetime
    end: datetime
    hosters: list[dict[str, Any]]
    urls: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.config.seed,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "hosters": self.hosters,
            "urls": self.urls,
            "summary": self.summary,
        }


def _iso(moment: datetime) -> str:
    return clock.as_utc(moment).isoformat().replace("+00:00", "Z")


def seed_registry(session: Session, sim: Simulation, pictures: list[int]) -> int:
    """Put the hashes (MD5, PDQ) of ``pictures`` in the set ``sim-known`` (made on first use);
    returns how many items were added or already there."""
    if KNOWN_SET not in {s.name for s in registry.list_sets(session)}:
        registry.create_set(
            session,
            KNOWN_SET,
            description="Benign pictures the simulation's registry knows (scenarios)",
            default_category=KNOWN_CATEGORY,
            actor="sim",
        )
    store = sim.internet.pictures
    for number in pictures:
        query, _problem = picture_query(store.get(number).body, HashOptions())
        signals = [(kind, value) for kind, value in (("md5", query.md5), ("pdq", query.pdq))
                   if value]  # fmt: skip
        registry.add_item(
            session, KNOWN_SET, signals, reference=f"sim picture {number}", actor="sim"
        )
    return len(pictures)


def run_scenario(
    config: ScenarioConfig,
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    folder: Path | None = None,
    progress: Callable[[ScenarioProgress], None] | None = None,
) -> ScenarioResult:
    """Run ``config``'s scenario on a FrozenClock (the process's clock for the duration) and
    return what happened to every URL, from meldpunt's own records."""
    start = config.start or clock.now().replace(microsecond=0)
    start = clock.as_utc(start)
    end = start + timedelta(days=config.days)
    frozen = clock.FrozenClock(start)
    tag = run_tag(config.seed, start)
    folder = folder or Path(settings.data_dir) / "sim" / tag
    with clock.use_clock(frozen):
        behaviours = (
            list(config.behaviours)
            if config.behaviours is not None
            else draw_behaviours(config.seed, config.hosters, mix=config.mix)
        )
        sim = Simulation(
            folder,
            seed=config.seed,
            home=settings.hotline_country,
            abroad=config.abroad,
            behaviours=behaviours,
        )
        sim.start()
        try:
            plan = make_plan(
                sim.internet,
                seed=config.seed,
                urls=config.urls,
                start=start,
                tag=tag,
                known_share=config.known_share,
                page_share=config.page_share,
                report_hours=config.report_hours,
                pictures=config.pictures,
            )
            with sessions() as session, session.begin():
                sim.load_tables(session)
                seed_registry(session, sim, plan.known_pictures)
            context = HotlineContext(
                sessions, settings=settings, policy=sim.policy(), relay=sim.relay()
            )
            analyst = Analyst(
                config.seed,
                settings,
                minutes=config.analyst_minutes,
                police_hours=config.police_hours,
                police_share=config.police_share,
                not_illegal_share=config.not_illegal_share,
                internet=sim.internet,
                contact_hours=config.contact_hours,
            )
            authority = SimAuthority(settings, order_hours=config.order_hours)
            steps = _drive(config, sim, plan, context, analyst, frozen, start, end, progress,
                           authority if config.authority else None)  # fmt: skip
            result = _result(config, sim, plan, sessions, start, frozen.now(), steps, analyst)
            if config.authority:
                result.summary["authority"] = _authority_summary(sessions, authority)
            return result
        finally:
            sim.stop()


def _drive(
    config: ScenarioConfig,
    sim: Simulation,
    plan: Plan,
    context: HotlineContext,
    analyst: Analyst,
    frozen: clock.FrozenClock,
    start: datetime,
    end: datetime,
    progress: Callable[[ScenarioProgress], None] | None,
    authority: SimAuthority | None = None,
) -> int:
    pending = sorted(plan.reports, key=lambda r: r.at)
    steps = 0
    while True:
        now = frozen.now()
        while pending and pending[0].at <= now:
            submit_planned(context.sessions, pending.pop(0), context.settings)
        sim.tick()
        analyst.act(context.sessions, now)
        run_once(context, limit=config.batch)
        if authority is not None and authority.act(context.sessions):
            run_once(context, limit=config.batch)  # its orders are mailed at once
        steps += 1
        if progress is not None:
            progress(ScenarioProgress(now, start, end, steps))
        with context.sessions() as session:
            exact, gridded = _due_times(session, now)
            if (at := analyst.next_due(session)) is not None:
                exact.append(at)
        if pending:
            exact.append(pending[0].at)
        if (at := sim.internet.next_due()) is not None:
            gridded.append(at)
        step = config.check_step_seconds
        candidates = [clock.as_utc(t) for t in exact if clock.as_utc(t) > now]
        candidates += [_on_grid(clock.as_utc(t), start, step) for t in gridded]
        candidates = [t for t in candidates if t > now]
        if not candidates or steps >= config.max_steps:
            return steps
        following = max(min(candidates), now + timedelta(seconds=1))
        if following > end:
            if now < end:
                frozen.set(end)
                continue  # one last step at the end itself
            return steps
        frozen.set(following)


def _on_grid(moment: datetime, start: datetime, step: float) -> datetime:
    if step <= 0:
        return moment
    offset = (moment - start).total_seconds()
    return start + timedelta(seconds=math.ceil(offset / step) * step)


def _due_times(session: Session, now: datetime) -> tuple[list[datetime], list[datetime]]:
    """The next due times after ``now``: (exact ones, ones that may wait for the grid)."""
    exact: list[datetime] = []
    gridded: list[datetime] = []
    for column, into in (
        (UrlItem.due_at, exact),
        (UrlItem.renotice_at, exact),
        (UrlItem.escalation_at, exact),
        (UrlItem.next_check_at, gridded),
    ):
        found = session.scalar(select(func.min(column)).where(column > now))
        if found is not None:
            into.append(found)
    notice = session.scalar(
        select(func.min(Notice.due_at)).where(Notice.status == "open", Notice.due_at > now)
    )
    if notice is not None:
        exact.append(notice)
    for column in (Order.send_due_at, Order.check_at):  # the authority's orders
        found = session.scalar(select(func.min(column)).where(column > now))
        if found is not None:
            exact.append(found)
    return exact, gridded


def submit_planned(
    sessions: sessionmaker[Session], report: PlannedReport, settings: Settings
) -> None:
    """File a planned report through meldpunt's intake (form reports anonymous, as child sexual
    abuse reports may be; several URLs as an import)."""
    form = report.source == "form"
    with sessions() as session, session.begin():
        intake.submit_report(
            session,
            source=ReportSource.form if form else ReportSource.import_,
            kind=ReportKind.csam,
            urls=[(url, None) for url in report.urls],
            note="simulated report",
            good_faith=True,
            actor="public" if form else "sim",
            settings=settings,
        )


def _result(
    config: ScenarioConfig,
    sim: Simulation,
    plan: Plan,
    sessions: sessionmaker[Session],
    start: datetime,
    end: datetime,
    steps: int,
    analyst: Analyst,
) -> ScenarioResult:
    internet = sim.internet
    listed = {c.email: c.approved for c in contacts(internet) if c.kind == "hoster"}
    hosters = []
    for hoster in internet.hosters.values():
        described = hoster.behaviour.describe()
        contact = listed.get(hoster.abuse_email)
        hosters.append(
            {
                "name": hoster.name,
                "behaviour": described.pop("kind"),
                **described,
                "address": hoster.address,
                "asn": hoster.asn,
                "country": hoster.country,
                "contact": "missing"
                if contact is None
                else "approved"
                if contact
                else "unapproved",
            }
        )
    keys = {url_key(normalise_url(u)): u for u in plan.urls}
    urls: list[dict[str, Any]] = []
    states: dict[str, int] = {}
    with sessions() as session:
        found: dict[str, list[UrlItem]] = {}
        for row in session.scalars(
            select(UrlItem).where(UrlItem.url_key.in_(list(keys))).order_by(UrlItem.id)
        ):
            found.setdefault(keys[row.url_key], []).append(row)
        ids = [row.id for rows in found.values() for row in rows]
        events: dict[int, list[ItemEvent]] = {}
        for event in session.scalars(
            select(ItemEvent)
            .where(ItemEvent.item_id.in_(ids), ItemEvent.event.in_(SCENARIO_EVENTS))
            .order_by(ItemEvent.at, ItemEvent.id)
        ):
            events.setdefault(event.item_id, []).append(event)
        for url, planned in plan.urls.items():
            rows = found.get(url, [])
            latest = rows[-1] if rows else None
            state = latest.state if latest is not None else "not_reported"
            states[state] = states.get(state, 0) + 1
            timeline = sorted(
                (e for row in rows for e in events.get(row.id, [])), key=lambda e: (e.at, e.id)
            )
            urls.append(
                {
                    "url": url,
                    "hoster": f"h{planned.hoster}",
                    "hoster_now": _name(internet.owner(url)),
                    "known": planned.known,
                    "page": planned.picture is None,
                    "parent": planned.parent,
                    "state": state,
                    "graded_by": None if latest is None else latest.graded_by,
                    "events": [{"at": _iso(e.at), "event": e.event} for e in timeline],
                    "hoster_events": _hoster_events(internet.events, url, planned.hoster),
                }
            )
    mail = sim.sink.by_kind()
    summary = {
        "steps": steps,
        "simulated_until": _iso(end),
        "reports": len(plan.reports),
        "states": dict(sorted(states.items())),
        "mail": dict(sorted(mail.items())),
        "duplicate_mails": sim.sink.duplicates,
        "analyst": {
            "graded": analyst.graded,
            "police_cleared": analyst.cleared,
            "contacts_fixed": analyst.contacts_fixed,
        },
        "requests": {str(k): v for k, v in sorted(internet.requests.items())},
    }
    return ScenarioResult(config, start, end, hosters, urls, summary)


def _authority_summary(sessions: sessionmaker[Session], authority: SimAuthority) -> dict[str, Any]:
    with sessions() as session:
        statuses = dict(
            session.execute(select(Order.status, func.count()).group_by(Order.status)).all()
        )
        penalties = session.scalar(select(func.sum(Order.penalty_total_cents))) or 0
    return {
        "cases": authority.cases_opened,
        "orders": dict(sorted(statuses.items())),
        "penalty_cents": int(penalties),
        "fines": authority.fines_decided,
    }


def _name(number: int | None) -> str | None:
    return None if not number else f"h{number}"


def _hoster_events(events: list[SimEvent], url: str, first: int) -> list[dict[str, str]]:
    """What the hosters did about ``url``: removed, restored, moved, and down or up while it
    was theirs."""
    host = (urlsplit(url).hostname or "").lower()
    found: list[dict[str, str]] = []
    holder = f"h{first}"
    for event in events:
        moved = event.event == "moved" and (event.details or {}).get("host") == host
        if event.url == url or moved or (event.event in ("down", "up") and event.hoster == holder):
            found.append({"at": _iso(event.at), "event": event.event, "hoster": event.hoster})
        if moved:
            holder = str((event.details or {}).get("to"))
    return found


def parse_start(text: str) -> datetime:
    """An ISO moment (``2025-03-03T09:00Z``); without a zone, UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
