"""What a scenario reports: URLs on the simulated hosters, which of them the registry knows, and
when reports of them arrive, all drawn from the seed.

A reported URL is a picture, or (``page_share``) a page showing one to three pictures, which
meldpunt finds and follows as items of their own. A picture is *known* (``known_share``; a
page's pictures all or none) when the scenario put its hashes in the registry before the
reports came: the bundled sample photos first, then generated pictures. A page is never known
(the registry holds pictures). Every URL has a picture of its own unless ``pictures`` bounds
them; known and new never mix.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from meldpunt.sim.internet import Internet

__all__ = ["NEW_PICTURES", "Plan", "PlannedReport", "PlannedUrl", "make_plan"]

#: Generated pictures of new material are numbered from here (known ones below it).
NEW_PICTURES = 1_000_000


@dataclass(frozen=True)
class PlannedUrl:
    url: str
    hoster: int
    known: bool
    picture: int | None = None  # None: a page
    parent: str | None = None  # a picture shown on a reported page


@dataclass(frozen=True)
class PlannedReport:
    at: datetime
    urls: tuple[str, ...]
    source: str  # form or import


@dataclass
class Plan:
    urls: dict[str, PlannedUrl] = field(default_factory=dict)
    reports: list[PlannedReport] = field(default_factory=list)

    @property
    def known_pictures(self) -> list[int]:
        return sorted({u.picture for u in self.urls.values() if u.known and u.picture is not None})

    def reported(self) -> list[PlannedUrl]:
        """The URLs the reports name (pages and pictures), in the order they were planned."""
        return [u for u in self.urls.values() if u.parent is None]


def make_plan(
    internet: Internet,
    *,
    seed: int,
    urls: int,
    start: datetime,
    tag: str,
    known_share: float = 0.5,
    page_share: float = 0.15,
    report_hours: float = 2.0,
    per_report: int = 4,
    pictures: int | None = None,
) -> Plan:
    """Put ``urls`` reported URLs on ``internet``'s hosters and plan reports naming them, which
    arrive over the first ``report_hours`` from ``start``. ``pictures`` bounds the distinct
    pictures of each kind (known, new), which then recur at several URLs (for large runs: the
    registry is seeded with fewer pictures, the hosters make fewer); None: one per URL."""
    rng = random.Random(f"plan:{seed}")
    plan = Plan()
    numbers = sorted(internet.hosters)
    rng.shuffle(numbers)  # URLs go round the hosters in this order: every hoster gets its share
    known_next, new_next = 0, NEW_PICTURES

    def picture(known: bool) -> int:
        nonlocal known_next, new_next
        if known:
            known_next += 1
            drawn = known_next - 1
            return drawn if pictures is None else drawn % pictures
        new_next += 1
        drawn = new_next - 1 - NEW_PICTURES
        return NEW_PICTURES + (drawn if pictures is None else drawn % pictures)

    order: list[str] = []
    for index in range(urls):
        hoster = numbers[index % len(numbers)]
        known = rng.random() < known_share
        if rng.random() < page_share:
            shown = [picture(known) for _ in range(rng.randint(1, 3))]
            page, children = internet.add_page(hoster, shown, tag=tag)
            plan.urls[page] = PlannedUrl(page, hoster, False)  # a page itself is never known
            for child, number in zip(children, shown, strict=True):
                plan.urls[child] = PlannedUrl(child, hoster, known, number, parent=page)
            order.append(page)
        else:
            number = picture(known)
            url = internet.add_picture(hoster, number, tag=tag)
            plan.urls[url] = PlannedUrl(url, hoster, known, number)
            order.append(url)
    moments = sorted(rng.uniform(0, report_hours * 3600) for _ in range(len(order)))
    i = 0
    while i < len(order):
        size = rng.randint(1, per_report)
        batch = tuple(order[i : i + size])
        at = start + timedelta(seconds=round(moments[i]))
        plan.reports.append(PlannedReport(at, batch, "import" if len(batch) > 1 else "form"))
        i += size
    return plan


def run_tag(seed: int, start: datetime) -> str:
    """A short path prefix for one scenario run, so two runs into one database never share
    URLs."""
    return "s" + hashlib.sha256(f"{seed}:{start.isoformat()}".encode()).hexdigest()[:6]
