"""The hotline's yearly report as a trusted flagger (Art. 22(3) DSA): the notices it sent per
hoster, per type of content, and what the hosters did about them (``docs/dsa.md``).

What counts:

- a **URL notified** in year Y is an item whose first notice went out in Y
  (``url_items.first_notice_at``); it counts at the hoster it was noticed to (the network owner
  and AS number attributed when the first notice went: ``notice_asn``/``notice_owner``), or, for
  items without an AS number, at the abuse contact the notice went to;
- **notices** are the hoster notices and re-notices sent in Y (``notices.sent_at``, kind
  ``notice`` or ``renotice``, status ``sent``) that name the hoster's URLs; police notices are
  not notices to hosters and do not count;
- the **type of content** is the report's kind (``csam``, ``ncii``, ``other``) and the media
  found at the URL (``image``, ``video``, ``page``, ``other``);
- **removed**: the item is offline (three misses in a row); the time to removal runs from the
  first notice to the first miss of those (``gone_at``; ``offline_at`` where that is missing),
  bucketed as within 24 hours, 24 to 48 hours, 48 hours to 7 days, later;
- **pending**: still online, first noticed less than ``PENDING_DAYS`` days before the report was
  made, and not escalated; **not removed**: every other URL.

The figures are counted from the rows at the moment the report is made (meldpunt's clock).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.monitor.dsa import InvalidInput
from meldpunt.reports.vocabulary import ItemState
from meldpunt.store.models import AbuseContact, Notice, NoticeItem, UrlItem

__all__ = [
    "BUCKETS",
    "FIRST_YEAR",
    "PENDING_DAYS",
    "FlaggerReport",
    "FlaggerRow",
    "flagger_report",
    "report_csv",
    "report_html",
    "report_json",
    "status_of",
]

PENDING_DAYS = 7
FIRST_YEAR = 2000
#: Time-to-removal buckets: (column, upper bound).
BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("removed_24h", timedelta(hours=24)),
    ("removed_48h", timedelta(hours=48)),
    ("removed_7d", timedelta(days=7)),
    ("removed_later", None),
)
NOTICE_KINDS = ("notice", "renotice")


@dataclass
class FlaggerRow:
    """One hoster's URLs of one type of content, and what became of them."""

    hoster: str
    asn: int | None
    kind: str
    media: str
    notices: int = 0
    urls: int = 0
    removed: int = 0
    removed_24h: int = 0
    removed_48h: int = 0
    removed_7d: int = 0
    removed_later: int = 0
    not_removed: int = 0
    pending: int = 0

    def plain(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(FlaggerRow))
COUNTS: tuple[str, ...] = COLUMNS[4:]


@dataclass
class FlaggerReport:
    year: int
    flagger: str
    made_at: datetime
    rows: list[FlaggerRow] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        return {name: sum(getattr(r, name) for r in self.rows) for name in COUNTS}

    def plain(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "flagger": self.flagger,
            "made_at": self.made_at.isoformat(),
            "method": METHOD,
            "totals": self.totals(),
            "rows": [r.plain() for r in self.rows],
        }


METHOD = (
    "URLs count in the year of their first notice, at the hoster (network owner and AS number) "
    "they were first noticed to, or at the abuse contact for URLs without an AS number. Notices "
    "are the hoster notices and re-notices sent in the year; police notices do not count. "
    "Content type: the report's kind and the media found at the URL. Removed: offline after "
    "three misses in a row, timed from the first notice to the first of those misses. Pending: "
    f"still online, first noticed less than {PENDING_DAYS} days before the report was made and "
    "not escalated. Not removed: every other URL. Counted from meldpunt's records when the "
    "report was made."
)


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    if not isinstance(year, int) or isinstance(year, bool):
        raise InvalidInput("year: give a year such as 2026")
    this_year = clock.now().year
    if not FIRST_YEAR <= year <= this_year:
        raise InvalidInput(f"year {year}: give a year from {FIRST_YEAR} to {this_year}")
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)


def _hoster(asn: int | None, owner: str | None, contact: str | None) -> tuple[str, int | None]:
    if asn is not None:
        return (f"AS{asn} {owner}" if owner else f"AS{asn}"), asn
    return (f"contact: {contact}" if contact else "unattributed"), None


def status_of(
    state: str,
    first_notice_at: datetime,
    gone_at: datetime | None,
    escalated_at: datetime | None,
    now: datetime,
) -> str:
    """``removed_24h`` ... ``removed_later``, ``pending`` or ``not_removed`` for one URL."""
    if state == ItemState.offline:
        took = (gone_at or now) - first_notice_at
        for name, bound in BUCKETS:
            if bound is None or took <= bound:
                return name
    if (
        state in (ItemState.noticed, ItemState.forwarded, ItemState.ready)
        and escalated_at is None
        and now - first_notice_at < timedelta(days=PENDING_DAYS)
    ):
        return "pending"
    return "not_removed"


def flagger_report(session: Session, year: int, *, flagger: str = "meldpunt") -> FlaggerReport:
    """The report for one calendar year (UTC), counted from the items and notices."""
    start, end = _year_bounds(year)
    now = clock.now()
    rows: dict[tuple[str, str, str], FlaggerRow] = {}

    def row(
        asn: int | None, owner: str | None, contact: str | None, kind: str, media: str | None
    ) -> FlaggerRow:
        name, number = _hoster(asn, owner, contact)
        key = (name, kind, media or "other")
        if key not in rows:
            rows[key] = FlaggerRow(name, number, kind, media or "other")
        return rows[key]

    items = (
        select(
            UrlItem.notice_asn,
            UrlItem.notice_owner,
            AbuseContact.name,
            UrlItem.kind,
            UrlItem.media,
            UrlItem.state,
            UrlItem.first_notice_at,
            func.coalesce(UrlItem.gone_at, UrlItem.offline_at),
            UrlItem.escalated_at,
        )
        .outerjoin(AbuseContact, AbuseContact.id == UrlItem.contact_id)
        .where(UrlItem.first_notice_at >= start, UrlItem.first_notice_at < end)
        .execution_options(yield_per=2000)
    )
    for asn, owner, contact, kind, media, state, first, gone, escalated in session.execute(items):
        if first is None:  # the query's range leaves none out; for the type checker
            continue
        target = row(asn, owner, contact, kind, media)
        target.urls += 1
        status = status_of(state, first, gone, escalated, now)
        setattr(target, status, getattr(target, status) + 1)
        if status.startswith("removed_"):
            target.removed += 1

    # one group per report row: the contact names the hoster only where no AS number does, and
    # media without a value is "other", so that a notice naming several URLs of one row (a
    # notice groups a contact's URLs) counts once for it
    contact_key = case((UrlItem.notice_asn.is_(None), AbuseContact.name), else_=None)
    media_key = func.coalesce(UrlItem.media, "other")
    notices = (
        select(
            UrlItem.notice_asn,
            UrlItem.notice_owner,
            contact_key,
            UrlItem.kind,
            media_key,
            func.count(func.distinct(Notice.id)),
        )
        .select_from(Notice)
        .join(NoticeItem, NoticeItem.notice_id == Notice.id)
        .join(UrlItem, UrlItem.id == NoticeItem.item_id)
        .outerjoin(AbuseContact, AbuseContact.id == UrlItem.contact_id)
        .where(
            and_(
                Notice.status == "sent",
                Notice.kind.in_(NOTICE_KINDS),
                Notice.sent_at >= start,
                Notice.sent_at < end,
            )
        )
        .group_by(UrlItem.notice_asn, UrlItem.notice_owner, contact_key, UrlItem.kind, media_key)
    )
    for asn, owner, contact, kind, media, number in session.execute(notices):
        row(asn, owner, contact, kind, media).notices += number

    ordered = sorted(rows.values(), key=lambda r: (-r.urls, -r.notices, r.hoster, r.kind, r.media))
    return FlaggerReport(year, flagger, now, ordered)


# --- formats ------------------------------------------------------------------------------------


def report_json(report: FlaggerReport) -> dict[str, Any]:
    return report.plain()


def report_csv(report: FlaggerReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in report.rows:
        writer.writerow([_csv_cell(v) for v in r.plain().values()])
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    # a spreadsheet must not take a hoster's name for a formula
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


_HEADINGS = {
    "hoster": "Hoster",
    "kind": "Kind",
    "media": "Media",
    "notices": "Notices",
    "urls": "URLs notified",
    "removed": "Removed",
    "removed_24h": "within 24 h",
    "removed_48h": "24-48 h",
    "removed_7d": "48 h-7 days",
    "removed_later": "later",
    "not_removed": "Not removed",
    "pending": "Pending",
}


def _cells(values: Iterator[Any] | list[Any], tag: str = "td") -> str:
    return "".join(f"<{tag}>{escape(str(v))}</{tag}>" for v in values)


def report_html(report: FlaggerReport) -> str:
    """A printable page: the table, the totals and the method."""
    shown = [c for c in COLUMNS if c != "asn"]
    head = _cells([_HEADINGS[c] for c in shown], "th")
    body = (
        "\n".join(f"<tr>{_cells([getattr(r, c) for c in shown])}</tr>" for r in report.rows)
        or f'<tr><td colspan="{len(shown)}">No notices in {report.year}.</td></tr>'
    )
    totals = report.totals()
    foot = _cells(["Total", "", ""] + [totals[c] for c in shown[3:]], "th")
    title = f"{report.flagger}: report as trusted flagger, {report.year}"
    made = report.made_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #999; padding: 0.2em 0.5em; text-align: right; }}
td:nth-child(-n+3), th:nth-child(-n+3) {{ text-align: left; }}
@media print {{ body {{ margin: 0; }} }}
</style></head>
<body>
<h1>{escape(title)}</h1>
<p>Notices sent to hosting services under Article 22(3) of the Digital Services Act, per hoster,
type of content and the action taken. Made {escape(made)}.</p>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
<tfoot><tr>{foot}</tr></tfoot>
</table>
<h2>Method</h2>
<p>{escape(METHOD)}</p>
</body></html>
"""
