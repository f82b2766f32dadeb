"""What reporters and the hotline's staff may read about a report.

A reporter (``report_status``, by the private link of the receipt) and a trusted flagger
(``report_for_flagger``, its own reports only) see each URL they named with its state and its
timeline as ``(at, event)``: no actors, no details, and none of the ``received``/``linked``
events other reports caused, so that nobody learns who else reported a URL. They never see
media, only how many pictures or videos were found on a page, by state. Staff
(``report_details``, ``recent_reports``) see the report as it was given.

Unknown references and wrong tokens are the same ``NotFound``, so a status link cannot be used
to find out which references exist; the token is compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt.reports.errors import NotFound
from meldpunt.reports.intake import hash_token
from meldpunt.reports.vocabulary import Event, ItemState
from meldpunt.store.models import ItemEvent, Report, ReportUrl, UrlItem

__all__ = [
    "STATE_WORDS",
    "ReportSummary",
    "ReportView",
    "UrlView",
    "recent_reports",
    "report_by_id",
    "report_details",
    "report_for_flagger",
    "report_status",
]

#: Each state in plain words, for reporters.
STATE_WORDS: dict[str, str] = {
    ItemState.received: "Received: waiting to be checked",
    ItemState.queued: "Being assessed by an analyst",
    ItemState.review: "Being assessed by an analyst",
    ItemState.police: "Being assessed",
    ItemState.contact_needed: "Assessed; the hosting provider is being identified",
    ItemState.ready: "Assessed as illegal; the hosting provider will be asked to remove it",
    ItemState.noticed: "The hosting provider has been asked to remove it",
    ItemState.escalated: "Not removed in time; handed to the authority",
    ItemState.forwarded: "Hosted abroad; passed on to the hotline of that country",
    ItemState.offline: "Removed: no longer online",
    ItemState.not_illegal: "Assessed: not illegal under the law the hotline applies",
    ItemState.ignored: "Closed: nothing to act on was found",
    ItemState.failed: "Closed: the address could not be reached",
}
_REF = re.compile(r"MP-[0-9A-Z]{4}-[0-9A-Z]{4}")
_INTAKE_EVENTS = frozenset({Event.received, Event.linked})
_CHUNK = 500


@dataclass(frozen=True)
class UrlView:
    position: int
    given: str
    url: str
    referer: str | None
    item_id: int
    state: str
    #: (when, event), oldest first
    events: list[tuple[datetime, str]] = field(default_factory=list)
    #: pictures and videos found on the page, by state
    media: dict[str, int] = field(default_factory=dict)

    @property
    def words(self) -> str:
        return STATE_WORDS.get(self.state, self.state)


@dataclass(frozen=True)
class ReportView:
    id: int
    ref: str
    source: str
    kind: str
    created_at: datetime
    flagger_ref: str | None
    note: str | None
    urls: list[UrlView]
    #: for staff only (``report_details``); None in what reporters see
    org_id: int | None = None
    reporter_name: str | None = None
    reporter_email: str | None = None
    good_faith: bool | None = None


@dataclass(frozen=True)
class ReportSummary:
    id: int
    ref: str
    source: str
    kind: str
    created_at: datetime
    flagger_ref: str | None
    org_id: int | None
    urls: int


def _chunks(values: Sequence[int]) -> list[Sequence[int]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _own(event: str, details: str | None, report_id: int) -> bool:
    """Whether a timeline event may be shown to this report's reporter."""
    if event not in _INTAKE_EVENTS:
        return True
    try:
        return bool(details) and json.loads(details or "{}").get("report_id") == report_id
    except ValueError:
        return False


def _urls(session: Session, report: Report, *, everything: bool) -> list[UrlView]:
    rows = session.execute(
        select(ReportUrl, UrlItem.url, UrlItem.state)
        .join(UrlItem, UrlItem.id == ReportUrl.item_id)
        .where(ReportUrl.report_id == report.id)
        .order_by(ReportUrl.position)
    ).all()
    item_ids = [link.item_id for link, _, _ in rows]
    events: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    media: dict[int, dict[str, int]] = defaultdict(dict)
    for chunk in _chunks(item_ids):
        found = session.execute(
            select(ItemEvent.item_id, ItemEvent.at, ItemEvent.event, ItemEvent.details)
            .where(ItemEvent.item_id.in_(chunk))
            .order_by(ItemEvent.item_id, ItemEvent.id)
        )
        for item_id, at, event, details in found:
            if everything or _own(event, details, report.id):
                events[item_id].append((at, event))
        counted = session.execute(
            select(UrlItem.parent_id, UrlItem.state, func.count())
            .where(UrlItem.parent_id.in_(chunk))
            .group_by(UrlItem.parent_id, UrlItem.state)
        )
        for parent_id, state, count in counted:
            if parent_id is not None:
                media[parent_id][state] = count
    return [
        UrlView(
            link.position,
            link.url_given,
            url,
            link.referer,
            link.item_id,
            state,
            events[link.item_id],
            media[link.item_id],
        )  # fmt: skip
        for link, url, state in rows
    ]


def _view(session: Session, report: Report, *, staff: bool) -> ReportView:
    view = ReportView(
        report.id, report.ref, report.source, report.kind, report.created_at, report.flagger_ref,
        report.note, _urls(session, report, everything=staff),
    )  # fmt: skip
    if not staff:
        return view
    return replace(view, org_id=report.org_id, reporter_name=report.reporter_name,
                   reporter_email=report.reporter_email, good_faith=report.good_faith)  # fmt: skip


def _by_ref(session: Session, ref: str) -> Report | None:
    ref = ref.strip().upper()
    if not _REF.fullmatch(ref):  # not looked up: no report could have it
        return None
    return session.scalars(select(Report).where(Report.ref == ref)).first()


def report_status(session: Session, ref: str, token: str) -> ReportView:
    """What the reporter's private status link shows, or NotFound (for an unknown reference and
    a wrong token alike)."""
    report = _by_ref(session, ref)
    expected = report.status_token_hash if report is not None else None
    # Compared even when there is no report, so that the time taken says nothing either.
    matches = hmac.compare_digest(hash_token(token), expected or "0" * 64)
    if report is None or expected is None or not matches:
        raise NotFound("no report with that reference and status link")
    return replace(_view(session, report, staff=False), flagger_ref=None, note=None)


def report_for_flagger(session: Session, org_id: int, report_id: int) -> ReportView:
    """A trusted flagger's own report; NotFound for another organisation's."""
    report = session.get(Report, report_id)
    if report is None or report.org_id != org_id:
        raise NotFound(f"no report {report_id} of yours")
    return _view(session, report, staff=False)


def report_by_id(session: Session, report_id: int) -> ReportView:
    """Any report as a flagger would see it (for admins of the API)."""
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(f"no report {report_id}")
    return _view(session, report, staff=False)


def report_details(session: Session, ref: str) -> ReportView:
    """A report with everything it says and every event of its items (for the hotline's
    staff: the command line and the analysts' pages)."""
    report = _by_ref(session, ref)
    if report is None:
        raise NotFound(f"no report {ref[:40]!r}")
    return _view(session, report, staff=True)


def recent_reports(
    session: Session, *, limit: int = 50, before: int | None = None, source: str | None = None
) -> list[ReportSummary]:
    """The newest reports first (``before``: ids below it, for the next page)."""
    query = select(Report).order_by(Report.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Report.id < before)
    if source is not None:
        query = query.where(Report.source == source)
    reports = list(session.scalars(query))
    counts: dict[int, int] = {}
    if reports:
        counts = dict(
            session.execute(
                select(ReportUrl.report_id, func.count())
                .where(ReportUrl.report_id.in_([r.id for r in reports]))
                .group_by(ReportUrl.report_id)
            ).all()
        )
    return [
        ReportSummary(
            r.id,
            r.ref,
            r.source,
            r.kind,
            r.created_at,
            r.flagger_ref,
            r.org_id,
            counts.get(r.id, 0),
        )  # fmt: skip
        for r in reports
    ]
