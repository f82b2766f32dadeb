"""Taking reports: from the public form, a trusted flagger's API key or a bulk import.

    receipt = submit_report(session, source="form", kind="csam", urls=[("example.com/a", None)],
                            note="seen on a forum", reporter_name=None, reporter_email=None,
                            good_faith=True, actor="public")
    session.commit()
    receipt.ref, receipt.token, [(u.item_id, u.outcome) for u in receipt.urls]

A report names URLs. Each URL is normalised (``items.normalise_url``) and becomes one item, or,
while an item of the same URL is open, is linked to it: the URL is not fetched or noticed twice,
and its timeline says ``linked``. A new item starts ``received``, due to be fetched now.

What the DSA (Art. 16) asks of a notice decides what the public form needs: the exact URLs, an
explanation, the good-faith statement, and the reporter's name and e-mail address, except for
child sexual abuse material (Art. 16(2)(c)), where they stay optional so that nobody is put off
reporting it. Trusted flaggers and imports are known senders; their name is their key or file.

A report of a thousand URLs costs a few statements per table, not a thousand round trips: open
items are looked up in chunks, new ones inserted in one statement (``ON CONFLICT DO NOTHING``
settles a race with another report of the same URL), and the timeline and audit log are written
by ``items.note`` in bulk. The reporter's name and e-mail address stay in the report's row and
never reach the audit log, which cannot forget.

What a reporter may later read is in ``reports.views`` (``report_status``,
``report_for_flagger``): states and timelines, never other reporters' data, never media.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, Table, any_, bindparam, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from meldpunt import audit, clock, errors
from meldpunt.config import Settings, get_settings
from meldpunt.reports import items
from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.vocabulary import Event, ItemState, ReportKind, ReportSource
from meldpunt.store.models import Report, ReportUrl, UrlItem
from meldpunt.text import TextError, check_text

__all__ = [
    "MAX_EMAIL",
    "MAX_NAME",
    "MAX_NOTE",
    "MAX_REFERENCE",
    "InvalidReport",
    "PreparedUrl",
    "ReceiptUrl",
    "ReportReceipt",
    "TooManyUrls",
    "UrlProblem",
    "check_kind",
    "hash_token",
    "prepare_url",
    "prepare_urls",
    "status_path",
    "submit_report",
]

MAX_NOTE = 5_000
MAX_REFERENCE = 200
MAX_NAME = 200
MAX_EMAIL = 320
#: What a reference's random part is made of: no 0/O or 1/I/L to misread when it is quoted.
REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CHUNK = 500  # values in one IN (...) list
# A plausible address: something@host.tld, no spaces or characters mail headers treat apart.
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\.]+(\.[^@\s<>(),;:\"\[\]\\.]+)+$")


@dataclass(frozen=True)
class UrlProblem:
    """Why the URL at ``position`` (0-based, in the order given) cannot be taken."""

    position: int
    message: str


class InvalidReport(InvalidInput):
    """A report with URLs that cannot be taken; ``problems`` says which and why. Nothing of the
    report is kept (imports report the line and take the rest instead)."""

    status = 422

    def __init__(self, problems: Sequence[UrlProblem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(f"URL {p.position + 1}: {p.message}" for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"the report was not taken: {shown}{more}")


class TooManyUrls(InvalidInput, errors.TooLarge):
    """More URLs than one report may name (``hotline_report_urls``)."""

    status, code = 413, "too_large"


@dataclass(frozen=True)
class PreparedUrl:
    position: int
    given: str
    url: str  # normalised
    referer: str | None  # normalised


@dataclass(frozen=True)
class ReceiptUrl:
    position: int
    given: str
    url: str
    item_id: int
    #: ``received`` (a new item) or ``linked`` (an item of this URL was open already)
    outcome: str
    #: the item's state now (``received`` for a new one)
    state: str


@dataclass(frozen=True)
class ReportReceipt:
    report_id: int
    ref: str
    source: str
    kind: str
    #: The secret of the reporter's private status link (the form only); shown once, kept as
    #: its SHA-256.
    token: str | None
    urls: list[ReceiptUrl] = field(default_factory=list)
    #: URLs given again within the report (collapsed into their first mention)
    duplicates: int = 0

    @property
    def received(self) -> int:
        return sum(u.outcome == Event.received for u in self.urls)

    @property
    def linked(self) -> int:
        return sum(u.outcome == Event.linked for u in self.urls)

    @property
    def status_path(self) -> str | None:
        return None if self.token is None else status_path(self.ref, self.token)


def status_path(ref: str, token: str) -> str:
    """The path of a reporter's private status page (put ``public_url`` in front)."""
    return f"/report/status/{ref}?token={token}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


# --- checking what a report says ----------------------------------------------------------------


def optional_text(value: Any, what: str, max_length: int, *, multiline: bool = False) -> str | None:
    """``value`` stripped and checked by the text rules; None when it is missing or blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    value = value.strip()
    if not value:
        return None
    try:
        return check_text(value, what, max_length=max_length, multiline=multiline)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None


def check_kind(kind: str) -> str:
    if kind not in tuple(ReportKind):
        raise InvalidInput(f"unknown kind {kind[:40]!r}; one of {', '.join(ReportKind)}")
    return str(kind)


def check_email(value: str | None) -> str | None:
    email = optional_text(value, "the e-mail address", MAX_EMAIL)
    if email is not None and not _EMAIL.match(email):
        raise InvalidInput(f"{email[:100]!r} is not an e-mail address")
    return email


def prepare_url(given: str, referer: str | None = None) -> tuple[str, str | None]:
    """The normalised URL and referer (None when empty), or InvalidInput saying what is wrong."""
    url = items.normalise_url(given)
    if referer is None or not referer.strip():
        return url, None
    try:
        return url, items.normalise_url(referer)
    except InvalidInput as exc:
        raise InvalidInput(f"the referer: {exc}") from None


def prepare_urls(
    urls: Sequence[tuple[str, str | None]],
) -> tuple[list[PreparedUrl], list[UrlProblem], int]:
    """Every URL normalised, in order, each normalised URL once (its first mention wins);
    the problems of those that cannot be taken; and how many were given again."""
    prepared: list[PreparedUrl] = []
    problems: list[UrlProblem] = []
    seen: set[str] = set()
    duplicates = 0
    for position, (given, referer) in enumerate(urls):
        try:
            url, ref = prepare_url(given, referer)
        except InvalidInput as exc:
            problems.append(UrlProblem(position, str(exc)))
            continue
        if url in seen:
            duplicates += 1
            continue
        seen.add(url)
        prepared.append(PreparedUrl(position, items.without_credentials(given.strip()), url, ref))
    return prepared, problems, duplicates


def _check_reporter(
    source: str, kind: str, name: str | None, email: str | None, good_faith: bool
) -> tuple[str | None, str | None]:
    name = optional_text(name, "the name", MAX_NAME)
    email = check_email(email)
    if source == ReportSource.form:
        if kind != ReportKind.csam and (name is None or email is None):
            raise InvalidInput(
                "a name and an e-mail address are needed for this kind of report (the Digital "
                "Services Act asks for them; only reports of child sexual abuse may be anonymous)"
            )
        if not good_faith:
            raise InvalidInput(
                "the statement that the report is accurate and made in good faith is needed"
            )
    return name, email


# --- writing it ---------------------------------------------------------------------------------


def new_ref() -> str:
    """A reference like ``MP-7KQ2-X9RD``: random, so it says nothing about other reports."""
    part = "".join(secrets.choice(REF_ALPHABET) for _ in range(8))
    return f"MP-{part[:4]}-{part[4:]}"


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _insert_report(session: Session, values: dict[str, Any]) -> Report:
    for _ in range(10):  # 31^8 references: a collision is rare, ten in a row is impossible
        report = Report(ref=new_ref(), **values)
        try:
            with session.begin_nested():
                session.add(report)
                session.flush()
        except IntegrityError:
            continue
        return report
    raise RuntimeError("no unused report reference found")  # pragma: no cover


# On PostgreSQL a thousand rows go as arrays, a handful of parameters: psycopg spends far longer
# preparing a statement of ten thousand parameters than the server takes to run it.
_PG_INSERT_ITEMS = text(
    "INSERT INTO url_items (url, url_key, open_key, host, kind, state, created_at, updated_at,"
    " due_at, attempts, renotices, misses)"
    " SELECT t.url, t.key, t.key, t.host, :kind, :state, :now, :now, :now, 0, 0, 0"
    " FROM unnest(CAST(:urls AS text[]), CAST(:keys AS text[]), CAST(:hosts AS text[]))"
    " AS t(url, key, host) ORDER BY t.key"
    " ON CONFLICT (open_key) DO NOTHING RETURNING id, open_key"
)
_PG_INSERT_LINKS = text(
    "INSERT INTO report_urls (report_id, item_id, position, url_given, referer)"
    " SELECT :report_id, t.item, t.position, t.given, t.referer"
    " FROM unnest(CAST(:items AS bigint[]), CAST(:positions AS integer[]),"
    " CAST(:given AS text[]), CAST(:referers AS text[])) AS t(item, position, given, referer)"
)


def _is_postgres(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


def open_items(
    session: Session, urls: Sequence[str], *, kind: str
) -> dict[str, tuple[int, str, bool]]:
    """The open item of each normalised URL, made (``received``, due now) where there is none:
    ``{url: (item id, state, created)}``. ``items.open_item`` for many URLs at once: a lookup
    per chunk and one insert; a URL another transaction opened meanwhile is linked to its item."""
    keys = {items.url_key(url): url for url in urls}
    found: dict[str, tuple[int, str, bool]] = {}
    postgres = _is_postgres(session)

    def look_up(wanted: Sequence[str]) -> None:
        columns = select(UrlItem.id, UrlItem.open_key, UrlItem.state)
        if postgres:
            chosen = bindparam("keys", list(wanted), type_=postgresql.ARRAY(String))
            queries = [columns.where(UrlItem.open_key == any_(chosen))]
        else:
            queries = [columns.where(UrlItem.open_key.in_(c)) for c in _chunks(wanted)]
        for query in queries:
            for item_id, key, state in session.execute(query):
                found[keys[str(key)]] = (item_id, state, False)

    look_up(list(keys))
    # In key order: two reports inserting the same URLs wait for each other, never deadlock.
    missing = sorted(key for key, url in keys.items() if url not in found)
    if missing:
        now = clock.now()
        received = str(ItemState.received)
        if postgres:
            made = session.execute(
                _PG_INSERT_ITEMS,
                {
                    "kind": kind,
                    "state": received,
                    "now": now,
                    "keys": missing,
                    "urls": [keys[k] for k in missing],
                    "hosts": [items.host_of(keys[k]) for k in missing],
                },  # fmt: skip
            )
        else:
            table: Table = UrlItem.__table__  # type: ignore[assignment]
            statement = (
                sqlite.insert(table)
                .on_conflict_do_nothing(index_elements=["open_key"])
                .returning(table.c.id, table.c.open_key)
            )
            made = session.execute(
                statement,
                [
                    {
                        "url": keys[key],
                        "url_key": key,
                        "open_key": key,
                        "host": items.host_of(keys[key]),
                        "kind": kind,
                        "state": received,
                        "created_at": now,
                        "updated_at": now,
                        "due_at": now,
                        "attempts": 0,
                        "renotices": 0,
                        "misses": 0,
                    }  # fmt: skip
                    for key in missing
                ],
            )
        for item_id, key in made:
            found[keys[key]] = (item_id, received, True)
        lost = [key for key in missing if keys[key] not in found]
        if lost:  # opened by another report between the lookup and the insert
            look_up(lost)
    return found


def _link(
    session: Session, report_id: int, prepared: Sequence[PreparedUrl], item_ids: Sequence[int]
) -> None:
    if _is_postgres(session):
        session.execute(
            _PG_INSERT_LINKS,
            {
                "report_id": report_id,
                "items": list(item_ids),
                "positions": [p.position for p in prepared],
                "given": [p.given for p in prepared],
                "referers": [p.referer for p in prepared],
            },  # fmt: skip
        )
        return
    session.execute(
        insert(ReportUrl),
        [
            {
                "report_id": report_id,
                "item_id": item_id,
                "position": p.position,
                "url_given": p.given,
                "referer": p.referer,
            }  # fmt: skip
            for p, item_id in zip(prepared, item_ids, strict=True)
        ],
    )


def submit_report(
    session: Session,
    *,
    source: str,
    kind: str,
    urls: Sequence[tuple[str, str | None]],
    note: str | None = None,
    reporter_name: str | None = None,
    reporter_email: str | None = None,
    good_faith: bool = False,
    org_id: int | None = None,
    flagger_ref: str | None = None,
    actor: str,
    settings: Settings | None = None,
) -> ReportReceipt:
    """Take a report in the session's transaction (the caller commits) and return its receipt.

    Raises ``InvalidInput`` (the kind, the text, the reporter), ``InvalidReport`` (422: URLs
    that cannot be taken, each with its position; nothing is kept) or ``TooManyUrls`` (413)."""
    settings = settings or get_settings()
    if source not in tuple(ReportSource):
        raise InvalidInput(f"unknown source {source[:40]!r}")
    kind = check_kind(kind)
    if not urls:
        raise InvalidInput("a report names at least one URL")
    if len(urls) > settings.hotline_report_urls:
        raise TooManyUrls(
            f"a report may name at most {settings.hotline_report_urls:,} URLs; "
            f"this one names {len(urls):,}"
        )
    note = optional_text(note, "the explanation", MAX_NOTE, multiline=True)
    flagger_ref = optional_text(flagger_ref, "the reference", MAX_REFERENCE)
    name, email = _check_reporter(source, kind, reporter_name, reporter_email, good_faith)
    prepared, problems, duplicates = prepare_urls(urls)
    if problems:
        raise InvalidReport(problems)

    token = secrets.token_urlsafe(24) if source == ReportSource.form else None
    report = _insert_report(
        session,
        {
            "status_token_hash": None if token is None else hash_token(token),
            "source": str(source),
            "org_id": org_id,
            "flagger_ref": flagger_ref,
            "kind": kind,
            "note": note,
            "reporter_name": name,
            "reporter_email": email,
            "good_faith": good_faith,
            "created_at": clock.now(),
        },
    )
    opened = open_items(session, [p.url for p in prepared], kind=kind)
    _link(session, report.id, prepared, [opened[p.url][0] for p in prepared])
    receipt_urls: list[ReceiptUrl] = []
    notes: list[items.Note] = []
    details = {"report": report.ref, "report_id": report.id, "source": str(source)}
    for p in prepared:
        item_id, state, created = opened[p.url]
        event = Event.received if created else Event.linked
        receipt_urls.append(ReceiptUrl(p.position, p.given, p.url, item_id, str(event), state))
        notes.append(
            items.Note(item_id, event, actor, details if created else {**details, "kind": kind})
        )
    audit.record_many(
        session,
        [
            audit.Entry(
                actor,
                "hotline.report",
                ("report", report.id),
                {
                    "ref": report.ref,
                    "source": str(source),
                    "kind": kind,
                    "org_id": org_id,
                    "urls": len(prepared),
                    "duplicates": duplicates,
                },  # fmt: skip
            )
        ],
    )
    items.note(session, notes)
    return ReportReceipt(report.id, report.ref, str(source), kind, token, receipt_urls, duplicates)
