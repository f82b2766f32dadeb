"""Composing notices: what one message to an abuse desk or a police contact says.

A notice to a hoster carries what Article 16 of the Digital Services Act asks of a notice: why
the content is illegal (per kind of material, the legal basis in plain words), the exact URLs,
who notifies, and the statement of good faith; then a signed link where the hoster answers per
URL. Attached are a CSV file (``url;ip;firstseen;lastseen;note``, ISO times) and, for child
sexual abuse material, one X-ARF v4 ``content``/``csam`` report per URL, built and checked with
the ``xarf`` package's own schema. A re-notice says which earlier notices it follows (date and
Message-ID, also as ``In-Reply-To``/``References``). A notice to the police lists the URLs and
their hashes and asks for their word; no notice ever carries media.

Everything here is pure: ``compose`` takes a ``Draft`` (plain values, read from the database by
``notices``) and returns an ``email.message.EmailMessage``; nothing is sent from here.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import xarf

from meldpunt.registry.categories import CODES, FILTERS
from meldpunt.reports.vocabulary import ReportKind
from meldpunt.takedown.vocabulary import NoticeKind

__all__ = [
    "GROUNDS",
    "Draft",
    "Earlier",
    "ItemFacts",
    "Sender",
    "XarfInvalid",
    "compose",
    "csv_text",
    "ground_of",
    "make_message_id",
    "xarf_report",
]

_XARF_CLASSES = ("baseline", "A1", "A2", "B1", "B2")
_XARF_MEDIA = {"image": "image", "video": "video", "page": "mixed"}
_DOMAIN = re.compile(r"^([a-z0-9]+(-[a-z0-9]+)*\.)+[a-z]{2,}$")  # X-ARF's own pattern
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class XarfInvalid(ValueError):
    """An X-ARF report that the ``xarf`` package's schema refuses: a fault of this module."""


@dataclass(frozen=True)
class Ground:
    """A legal ground: why material of this kind is illegal, in plain words."""

    code: str
    label: str
    basis: str


#: Per kind of material (``ReportKind``), why it is illegal.
GROUNDS: dict[str, Ground] = {
    ReportKind.csam: Ground(
        "csam",
        "child sexual abuse material",
        "Pictures or videos of the sexual abuse of children. Making, holding, offering and "
        "distributing them is a crime in every EU member state (Directive 2011/93/EU, "
        "Article 5) and in virtually every other country; hosting them after being told is "
        "taking part in that distribution.",
    ),
    ReportKind.ncii: Ground(
        "ncii",
        "non-consensual intimate image",
        "Intimate pictures or videos of a person shared without that person's consent. "
        "Making them accessible to the public is a crime in the EU (Directive (EU) 2024/1385, "
        "Article 5) and under national law; every copy that stays online harms the person "
        "shown again.",
    ),
    ReportKind.other: Ground(
        "other",
        "other illegal content",
        "Material that the hotline's analysts assessed as illegal under the law of the "
        "hotline's country; the note per URL says what it is.",
    ),
}


def ground_of(category: str | None, kind: str) -> Ground:
    """The ground of an item: its category when that names child sexual abuse material or an
    intimate image, else what the report said it was."""
    if category in FILTERS["csam"]:
        return GROUNDS[ReportKind.csam]
    if category in FILTERS["ncii"]:
        return GROUNDS[ReportKind.ncii]
    return GROUNDS.get(kind, GROUNDS[ReportKind.other])


@dataclass(frozen=True)
class Sender:
    """Who notifies: the hotline (settings ``hotline_name``, ``smtp_from``, ``public_url``)."""

    name: str
    email: str
    public_url: str
    country: str = "NL"

    @property
    def domain(self) -> str:
        return _domain_of(self.email)


@dataclass(frozen=True)
class ItemFacts:
    """What a notice says about one URL."""

    item_id: int
    url: str
    kind: str  # what the report said (``ReportKind``)
    category: str | None = None  # the grade's category code
    matched: bool = False  # graded by a match with the registry (known material)
    raw_class: str | None = None  # the matched entry's class in the industry scheme (A1...)
    media: str | None = None
    ip: str | None = None
    asn: int | None = None
    network_owner: str | None = None
    country: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    pdq: str | None = None

    @property
    def ground(self) -> Ground:
        return ground_of(self.category, self.kind)

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    def assessment(self) -> str:
        how = "matched known material in a hash list" if self.matched else "assessed by an analyst"
        label = CODES[self.category].label if self.category in CODES else self.ground.label
        return f"{label}; {how}"


@dataclass(frozen=True)
class Earlier:
    """An earlier notice that a re-notice follows."""

    notice_id: int
    sent_at: datetime
    message_id: str


@dataclass(frozen=True)
class Draft:
    """One notice, ready to be composed."""

    notice_id: int
    kind: str  # ``NoticeKind``
    message_id: str
    recipient: str
    contact_name: str
    items: Sequence[ItemFacts]
    #: The signed answer page (hoster notices); None for police notices.
    answer_link: str | None = None
    answer_until: datetime | None = None
    earlier: Sequence[Earlier] = field(default_factory=tuple)


def make_message_id(notice_id: int, sender_email: str) -> str:
    """A Message-ID of its own for notice ``notice_id``: ``<notice-N.random@domain>``."""
    return f"<notice-{notice_id}.{secrets.token_hex(8)}@{_domain_of(sender_email)}>"


def _domain_of(email: str) -> str:
    domain = email.rpartition("@")[2].strip().strip(">").lower()
    return domain if re.fullmatch(r"[a-z0-9.-]+", domain or "-") else "meldpunt.invalid"


def _one_line(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# --- attachments ----------------------------------------------------------------------------------


def csv_text(items: Sequence[ItemFacts]) -> str:
    """The CSV attachment: ``url;ip;firstseen;lastseen;note``, ISO times in UTC."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["url", "ip", "firstseen", "lastseen", "note"])
    for item in items:
        writer.writerow(
            [
                item.url,
                item.ip or "",
                _iso(item.first_seen),
                _iso(item.last_seen),
                item.assessment(),
            ]
        )
    return out.getvalue()


def _xarf_class(item: ItemFacts) -> str:
    """X-ARF's classification (baseline/A1/A2/B1/B2): the matched entry's industry class when
    it had one; INTERPOL baseline as baseline; material illegal under national law only (or not
    assessed against the baseline) as B2, the least grave class, so that no receiver reads more
    into it than the hotline said (the ``category:`` tag carries the hotline's own code)."""
    raw = (item.raw_class or "").strip().upper()
    if raw in _XARF_CLASSES:
        return raw
    if item.category == "csam_baseline":
        return "baseline"
    return "B2"


def xarf_report(item: ItemFacts, sender: Sender, message_id: str) -> dict[str, Any]:
    """The X-ARF v4 ``content``/``csam`` report of one URL, checked against the ``xarf``
    package's schema (``XarfInvalid`` if it does not pass: a fault here, never the data's).
    Its ``report_id`` is derived from the Message-ID and the URL, so a message sent again is
    the same message, attachments included."""
    contact = {"org": sender.name[:200], "contact": sender.email, "domain": sender.domain}
    report: dict[str, Any] = {
        "xarf_version": xarf.SPEC_VERSION,
        "report_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{message_id} {item.url}")),
        "timestamp": _iso(item.first_seen or item.last_seen),
        "reporter": contact,
        "sender": contact,
        "source_identifier": item.ip or item.host,
        "category": "content",
        "type": "csam",
        "url": item.url,
        "classification": _xarf_class(item),
        "detection_method": "hash_match" if item.matched else "manual_review",
        "content_removed": False,
        "evidence_source": "automated_scan" if item.matched else "user_report",
        "verification_method": "automated_crawler",
        "tags": [f"category:{item.category or 'csam'}".lower()],
    }
    if not report["timestamp"]:
        del report["timestamp"]  # let the schema say it is missing (it never is: seen once)
    if item.last_seen is not None:
        report["verified_at"] = _iso(item.last_seen)
    if item.media in _XARF_MEDIA:
        report["media_type"] = _XARF_MEDIA[item.media]
    hashes = {
        k: v for k, v in (("md5", item.md5), ("sha1", item.sha1), ("sha256", item.sha256)) if v
    }
    if hashes:
        report["hash_values"] = hashes
    if _DOMAIN.fullmatch(item.host):
        report["domain"] = item.host
    if item.asn:
        report["asn"] = item.asn
    if item.country and re.fullmatch(r"[A-Z]{2}", item.country):
        report["country_code"] = item.country
    if item.network_owner:
        report["hosting_provider"] = item.network_owner
    checked = xarf.parse(report)
    if checked.errors or checked.warnings or checked.report is None:
        found = [f"{e.field}: {e.message}" for e in checked.errors]
        found += [f"{w.field}: {w.message}" for w in checked.warnings]
        problems = "; ".join(found) or "no report"

        raise XarfInvalid(f"the X-ARF report of {item.url[:100]} is not valid: {problems}")
    return report


# --- the message ----------------------------------------------------------------------------------


def _locations(items: Sequence[ItemFacts], *, hashes: bool) -> list[str]:
    lines: list[str] = []
    for number, item in enumerate(items, 1):
        lines.append(f"{number}. {item.url}")
        lines.append(f"   what: {item.assessment()}")
        where = item.ip or "address not resolved"
        if item.asn:
            where += f" (AS{item.asn}{', ' + item.network_owner if item.network_owner else ''})"
        seen = f"first seen {_iso(item.first_seen) or '-'}, last seen {_iso(item.last_seen) or '-'}"
        lines.append(f"   where: {where}; {seen}")
        if hashes:
            for name in ("sha256", "sha1", "md5", "pdq"):
                value = getattr(item, name)
                if value:
                    lines.append(f"   {name}: {value}")
    return lines


def _grounds(items: Sequence[ItemFacts]) -> list[str]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.ground.code] = counts.get(item.ground.code, 0) + 1
    lines: list[str] = []
    for ground in GROUNDS.values():
        if ground.code in counts:
            lines.append(f"- {ground.label.capitalize()} ({_plural(counts[ground.code], 'URL')}):")
            lines.append(f"  {ground.basis}")
    return lines


def _who(sender: Sender) -> list[str]:
    return [
        "Who notifies",
        f"{sender.name}, a hotline for reports of illegal content online ({sender.country}).",
        f"Web: {sender.public_url}",
        f"E-mail: {sender.email}",
    ]


def _hoster_body(draft: Draft, sender: Sender) -> str:
    items = draft.items
    renotice = draft.kind == NoticeKind.renotice
    lines = [f"To the abuse desk of {draft.contact_name},", ""]
    if renotice:
        lines += [
            f"This is a re-notice from {sender.name}. The {_plural(len(items), 'URL')} below "
            "still carried the content at our last check, after our earlier notice:",
        ]
        lines += [
            f"  - notice {e.notice_id} of {_day(e.sent_at)}, Message-ID {e.message_id}"
            for e in draft.earlier
        ]
        lines += ["Please remove or disable access to it now.", ""]
    else:
        lines += [
            f"{sender.name} notifies you, under Article 16 of the Digital Services Act "
            f"(Regulation (EU) 2022/2065), of {_plural(len(items), 'URL')} on your network "
            "that carry illegal content. Please remove or disable access to it without delay.",
            "",
        ]
    lines += ["Why this content is illegal", *_grounds(items), ""]
    lines += ["The exact locations", *_locations(items, hashes=True), ""]
    lines += [*_who(sender), ""]
    lines += [
        "Statement of good faith",
        f"{sender.name} states in good faith that the information in this notice is accurate "
        "and complete: the material was fetched from the URLs above and assessed by the "
        "hotline (a match with a hash list of known material, or an analyst's assessment) as "
        "described.",
        "",
    ]
    if draft.answer_link:
        until = f" (valid until {_day(draft.answer_until)})" if draft.answer_until else ""
        lines += [
            "Your answer",
            f"Tell us per URL what you did, without signing in: {draft.answer_link}{until}",
            'We take "removed" as done once our next check finds the content gone; we check '
            "again soon after your answer, and send a re-notice every day while it stays online.",
            "",
        ]
    attached = f"notice-{draft.notice_id}.csv (url;ip;firstseen;lastseen;note)"
    if any(item.ground.code == "csam" for item in items):
        attached += " and one X-ARF v4 report (content/csam) per URL of child sexual abuse material"
    lines += [
        f"Attached: {attached}. No pictures are attached or linked.",
        "",
        f"{sender.name}",
        f"Notice {draft.notice_id}, Message-ID {draft.message_id}",
    ]
    return "\n".join(lines) + "\n"


def _police_body(draft: Draft, sender: Sender) -> str:
    items = draft.items
    lines = [
        f"To {draft.contact_name},",
        "",
        f"{sender.name} assessed the material at the {_plural(len(items), 'URL')} below as "
        "illegal and asks for your word before it notifies the hoster: may the notice go out "
        "now, or must it wait (for example, for an investigation)? Until an analyst records "
        "your answer, the hoster is not told.",
        "",
        "Why this content is illegal",
        *_grounds(items),
        "",
        "The URLs and the hashes of what they served (no media is attached)",
        *_locations(items, hashes=True),
        "",
        *_who(sender),
        "",
        "Please answer by replying to this message.",
        "",
        f"{sender.name}",
        f"Police notice {draft.notice_id}, Message-ID {draft.message_id}",
    ]
    return "\n".join(lines) + "\n"


def subject_of(draft: Draft, sender: Sender) -> str:
    count = _plural(len(draft.items), "URL")
    name = _one_line(sender.name)[:100]
    if draft.kind == NoticeKind.police:
        text = f"{name}: asking your word before a notice ({count}) [notice {draft.notice_id}]"
    elif draft.kind == NoticeKind.renotice:
        text = f"{name}: re-notice, still online ({count}) [notice {draft.notice_id}]"
    else:
        text = f"{name}: notice of illegal content ({count}) [notice {draft.notice_id}]"
    return text[:300]


def compose(draft: Draft, sender: Sender, *, date: datetime) -> EmailMessage:
    """The message of ``draft`` from ``sender``, dated ``date``."""
    if not draft.items:
        raise ValueError("a notice needs at least one URL")
    message = EmailMessage()
    # Address objects, not text: a name like 'EOKM: Meldpunt' or 'Meld, punt <x@y.z>' stays a
    # display name (as text it made a group or a second sender), and an address that is not
    # one plain address raises ValueError here instead of naming other recipients.
    message["From"] = Address(display_name=_one_line(sender.name)[:100], addr_spec=sender.email)
    message["To"] = Address(addr_spec=draft.recipient)
    message["Subject"] = subject_of(draft, sender)
    message["Message-ID"] = draft.message_id
    message["Date"] = format_datetime(date)
    message["Auto-Submitted"] = "auto-generated"
    if draft.earlier:
        ids = " ".join(e.message_id for e in draft.earlier)
        message["In-Reply-To"] = draft.earlier[-1].message_id
        message["References"] = ids
    if draft.kind == NoticeKind.police:
        message.set_content(_police_body(draft, sender))
        message.add_attachment(
            csv_text(draft.items).encode("utf-8"),
            maintype="text",
            subtype="csv",
            filename=f"notice-{draft.notice_id}.csv",
        )
        return message
    message.set_content(_hoster_body(draft, sender))
    message.add_attachment(
        csv_text(draft.items).encode("utf-8"),
        maintype="text",
        subtype="csv",
        filename=f"notice-{draft.notice_id}.csv",
    )
    number = 0
    for item in draft.items:
        if item.ground.code != "csam":
            continue
        number += 1
        report = xarf_report(item, sender, draft.message_id)
        message.add_attachment(
            json.dumps(report, indent=2).encode("utf-8"),
            maintype="application",
            subtype="json",
            filename=f"xarf-{draft.notice_id}-{number}.json",
        )
    return message
