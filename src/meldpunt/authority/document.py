"""The order as a document: a full, printable HTML page (who orders whom, which URLs, the
deadline in UTC and local time, the legal basis, the reasons, the penalty terms and how to
acknowledge). The same text goes as the attachment of the mail and is shown behind the signed
link. Everything from outside is escaped; the page loads nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["LOCAL_ZONE", "OrderDocument", "local_time", "render_html", "render_text"]

#: The zone an order states its deadline in besides UTC.
LOCAL_ZONE = "Europe/Amsterdam"


def local_time(moment: datetime, zone: str = LOCAL_ZONE) -> str:
    try:
        local = moment.astimezone(ZoneInfo(zone))
    except ZoneInfoNotFoundError:
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"{local.strftime('%Y-%m-%d %H:%M %Z')} ({zone})"


def utc_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def euros(cents: int | None) -> str:
    value = (cents or 0) / 100
    return f"EUR {value:,.2f}"


@dataclass(frozen=True)
class OrderDocument:
    ref: str
    authority: str
    hoster: str
    recipient: str
    issued_at: datetime
    deadline_at: datetime
    hours: float
    urls: list[str]
    legal_basis: str
    reasons: str
    penalty_cents: int
    penalty_period_hours: float
    penalty_cap_cents: int
    link: str | None
    case_ref: str


def _penalty_terms(doc: OrderDocument) -> str:
    if doc.penalty_cents <= 0 or doc.penalty_cap_cents <= 0:
        return "No penalty payment is attached to this order."
    return (
        f"If any listed URL is still reachable at the deadline, a penalty payment of "
        f"{euros(doc.penalty_cents)} is forfeited, and again every {doc.penalty_period_hours:g} "
        f"hours after the deadline for as long as any listed URL is reachable, up to a total of "
        f"{euros(doc.penalty_cap_cents)}."
    )


def render_text(doc: OrderDocument) -> str:
    lines = [
        f"REMOVAL ORDER {doc.ref}",
        "",
        f"From: {doc.authority}",
        f"To: {doc.hoster} <{doc.recipient}>",
        f"Case: {doc.case_ref}",
        f"Issued: {utc_time(doc.issued_at)}",
        f"Deadline: {utc_time(doc.deadline_at)} = {local_time(doc.deadline_at)} "
        f"({doc.hours:g} hours)",
        "",
        f"You are ordered to remove or disable access to the following {len(doc.urls)} URL(s) "
        "before the deadline:",
        "",
        *[f"  {n}. {url}" for n, url in enumerate(doc.urls, 1)],
        "",
        "Legal basis:",
        doc.legal_basis,
        "",
        "Reasons:",
        doc.reasons,
        "",
        "Penalty payment:",
        _penalty_terms(doc),
        "",
        "Compliance is established by re-checking every listed URL at the deadline and after.",
    ]
    if doc.link:
        lines += ["", "Acknowledge receipt of this order:", doc.link]
    return "\n".join(lines) + "\n"


_STYLE = (
    "body{font-family:serif;max-width:48em;margin:2em auto;line-height:1.4}"
    "h1{font-size:1.4em}table{border-collapse:collapse}td,th{text-align:left;padding:.2em .6em;"
    "vertical-align:top}ol{word-break:break-all}.terms{border:1px solid #000;padding:.6em}"
    "@media print{a{color:#000}}"
)


def render_html(doc: OrderDocument) -> str:
    e = escape
    rows = [
        ("Order", doc.ref),
        ("Issued by", doc.authority),
        ("Addressed to", f"{doc.hoster} <{doc.recipient}>"),
        ("Case", doc.case_ref),
        ("Issued", utc_time(doc.issued_at)),
        ("Deadline (UTC)", utc_time(doc.deadline_at)),
        ("Deadline (local)", local_time(doc.deadline_at)),
        ("Time given", f"{doc.hours:g} hours"),
    ]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    urls = "".join(f"<li><code>{e(u)}</code></li>" for u in doc.urls)
    ack = (
        f'<h2>Acknowledgement</h2><p>Acknowledge receipt at <a href="{e(doc.link)}">'
        f"{e(doc.link)}</a> (no sign-in needed), or through the API.</p>"
        if doc.link
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Removal order {e(doc.ref)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Removal order {e(doc.ref)}</h1><table>{table}</table>"
        f"<h2>Order</h2><p>You are ordered to remove or disable access to the following "
        f"{len(doc.urls)} URL(s) before the deadline.</p><ol>{urls}</ol>"
        f"<h2>Legal basis</h2><p>{e(doc.legal_basis)}</p>"
        f'<h2>Reasons</h2><p style="white-space:pre-wrap">{e(doc.reasons)}</p>'
        f'<h2>Penalty payment</h2><p class="terms">{e(_penalty_terms(doc))}</p>'
        "<p>Compliance is established by re-checking every listed URL at the deadline and "
        f"after.</p>{ack}</body></html>"
    )
