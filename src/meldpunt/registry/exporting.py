"""Exporting a set in one of the exchange formats, streamed from the database.

Which items: meldpunt's own JSON Lines carries every item with its status (it is lossless);
the other formats are lists for matching and carry the active items only, unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any, TextIO

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from meldpunt.registry.errors import FormatError
from meldpunt.registry.formats import icse, jsonl, plain, te_csv, vics
from meldpunt.registry.records import ExportItem
from meldpunt.registry.sets import SetRef, get_set
from meldpunt.registry.vocabulary import ITEM_STATUSES
from meldpunt.store.models import Item, ItemFeatures, ItemSignal

__all__ = ["EXPORT_FORMATS", "export_set", "iter_items"]

EXPORT_FORMATS = ("vics", "jsonl", "te-csv", "plain", "icse")


def iter_items(
    session: Session,
    hash_set: SetRef,
    statuses: Collection[str] = ITEM_STATUSES,
    *,
    batch_size: int = 5000,
) -> Iterator[ExportItem]:
    """The set's items with the given statuses, with their signals, in id order (streamed)."""
    info = get_set(session, hash_set)
    query = (
        select(
            Item.id,
            Item.reference,
            Item.category,
            Item.category_raw,
            Item.category_scheme,
            Item.status,
            Item.note,
            ItemSignal.signal_type,
            ItemSignal.value,
            ItemFeatures.data,
        )
        .join(ItemSignal, ItemSignal.item_id == Item.id)
        .outerjoin(
            ItemFeatures,
            (ItemSignal.signal_type == "features") & (ItemFeatures.digest == ItemSignal.value),
        )
        .where(Item.set_id == info.id, Item.status.in_(list(statuses)))
        .order_by(Item.id, ItemSignal.id)
    )
    result = session.execute(query, execution_options={"yield_per": batch_size})
    current: list[Row[Any]] = []
    try:
        for row in result:
            if current and current[0].id != row.id:
                yield _item(current)
                current = []
            current.append(row)  # type: ignore[arg-type]
        if current:
            yield _item(current)
    finally:
        result.close()


def _item(rows: list[Row[Any]]) -> ExportItem:
    first = rows[0]
    return ExportItem(
        id=first.id,
        reference=first.reference,
        category=first.category,
        category_raw=first.category_raw,
        category_scheme=first.category_scheme,
        status=first.status,
        note=first.note,
        signals=tuple((row.signal_type, row.value) for row in rows),
        features=next((bytes(row.data) for row in rows if row.data is not None), None),
    )


def export_set(
    session: Session,
    hash_set: SetRef,
    out: TextIO,
    format: str,
    *,
    statuses: Collection[str] | None = None,
    vic_profile: str = "vics",
) -> int:
    """Write the set to ``out`` in ``format``; returns the number of items written."""
    info = get_set(session, hash_set)
    if format not in EXPORT_FORMATS:
        raise FormatError(f"cannot export as {format!r} (formats: {', '.join(EXPORT_FORMATS)})")
    if statuses is None:
        statuses = ITEM_STATUSES if format == "jsonl" else ("active",)
    items = iter_items(session, info.id, statuses)
    if format == "vics":
        return vics.write(items, out, vic_profile=vic_profile)
    if format == "jsonl":
        return jsonl.write(items, out)
    if format == "te-csv":
        return te_csv.write(items, out, collab=info.name)
    if format == "icse":
        return icse.write(items, out)
    return plain.write(items, out, title=f"meldpunt hash set {info.name}")
