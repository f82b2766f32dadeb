"""Forward records: material hosted abroad, for the hosting country's hotline.

When attribution finds an item hosted in another country it moves the item to ``forwarded``
and keeps the record's facts in the ``forwarded`` line of its timeline (hosting country,
address, AS number, network owner, classification). An export lists the records in the shape
hotlines exchange between them (as in INHOPE's ICCAM: where it is hosted, what it is, what was
done): one per forwarding, with the item's current state and what happened to it since
(``actions``). The item stays in meldpunt's re-checks, so the record says whether and when it
went offline, and the figures count it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt.config import get_settings
from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.vocabulary import Event
from meldpunt.store.models import ItemEvent, UrlItem

__all__ = ["ACTION_EVENTS", "FIELDS", "FORMATS", "export_forwards", "list_forwards"]

FORMATS = ("json", "csv")
#: The events of an item's timeline that a record lists as actions.
ACTION_EVENTS = (Event.graded, Event.forwarded, Event.notice, Event.renotice, Event.moved,
                 Event.escalation_due, Event.offline, Event.reopened)  # fmt: skip
#: A record's fields (CSV columns; JSON keys, with ``actions`` a list there).
FIELDS = (
    "reference", "url", "hosting_country", "ip", "asn", "network_owner", "classification",
    "report_kind", "media", "content_type", "sha256", "md5", "pdq", "first_seen_at",
    "forwarded_at", "last_seen_at", "state", "offline_at", "reported_by", "actions",
)  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def list_forwards(
    session: Session, since: datetime | None = None, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """The forward records made at or after ``since`` (all without), oldest first."""
    query = (
        select(ItemEvent, UrlItem)
        .join(UrlItem, UrlItem.id == ItemEvent.item_id)
        .where(ItemEvent.event == Event.forwarded)
        .order_by(ItemEvent.at, ItemEvent.id)
    )
    if since is not None:
        query = query.where(ItemEvent.at >= since)
    if limit is not None:
        query = query.limit(limit)
    found = [(row[0], row[1]) for row in session.execute(query)]
    item_ids = sorted({item.id for _event, item in found})
    actions: dict[int, list[tuple[datetime, str, int]]] = {}
    for start in range(0, len(item_ids), 1000):
        chunk = item_ids[start : start + 1000]
        rows = session.execute(
            select(ItemEvent.item_id, ItemEvent.at, ItemEvent.event, ItemEvent.id)
            .where(ItemEvent.item_id.in_(chunk), ItemEvent.event.in_(ACTION_EVENTS))
            .order_by(ItemEvent.id)
        )
        for item_id, at, name, event_id in rows:
            actions.setdefault(item_id, []).append((at, name, event_id))
    hotline = get_settings().hotline_name
    records = []
    for forwarded, item in found:
        facts = json.loads(forwarded.details) if forwarded.details else {}
        records.append({
            "reference": f"{hotline}-{item.id}-{forwarded.id}",
            "url": item.url,
            "hosting_country": facts.get("hosting_country"),
            "ip": facts.get("ip"),
            "asn": facts.get("asn"),
            "network_owner": facts.get("network_owner"),
            "classification": facts.get("classification"),
            "report_kind": item.kind,
            "media": item.media,
            "content_type": item.content_type,
            "sha256": item.sha256,
            "md5": item.md5,
            "pdq": item.pdq,
            "first_seen_at": _iso(item.first_seen_at or item.created_at),
            "forwarded_at": _iso(forwarded.at),
            "last_seen_at": _iso(item.last_seen_at),
            "state": item.state,
            "offline_at": _iso(item.offline_at),
            "reported_by": hotline,
            "actions": [
                {"at": _iso(at), "action": name}
                for at, name, event_id in actions.get(item.id, [])
                if name != Event.forwarded or event_id == forwarded.id
            ],
        })  # fmt: skip
    return records


def export_forwards(session: Session, since: datetime | None = None, fmt: str = "json") -> str:
    """The forward records since ``since`` as JSON (``{"forwards": [...]}``) or CSV (``FIELDS``
    columns, ``actions`` as ``time action`` pairs joined by ``; ``)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"the format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    records = list_forwards(session, since)
    if fmt == "json":
        document = {"reported_by": get_settings().hotline_name,
                    "since": _iso(since), "forwards": records}  # fmt: skip
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        flat = {k: ("" if v is None else v) for k, v in record.items()}
        flat["actions"] = "; ".join(f"{a['at']} {a['action']}" for a in record["actions"])
        writer.writerow(flat)
    return out.getvalue()
