"""What the authority's modules share: references, checked text, the hoster an item or case is
at, and the lock a writer takes first."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.store import begin_write
from meldpunt.store.models import AbuseContact, Fine, Order, UrlItem
from meldpunt.text import TextError, check_text

from .errors import InvalidInput

__all__ = [
    "MAX_IDS",
    "MAX_LEGAL_BASIS",
    "MAX_REASONS",
    "Hoster",
    "check_ids",
    "free_text",
    "is_postgres",
    "iso",
    "locked",
    "new_ref",
    "write_lock",
]

#: Items one call may name (a case's items, an order's URLs).
MAX_IDS = 1000
MAX_REASONS = 20_000
MAX_LEGAL_BASIS = 2000
MAX_TITLE = 300
T = TypeVar("T")
_REF_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_ref(prefix: str, now: datetime) -> str:
    """``C-2026-7KQ2X9``: the kind, the year, six random characters (unique by index)."""
    tail = "".join(secrets.choice(_REF_ALPHABET) for _ in range(6))
    return f"{prefix}-{now.year}-{tail}"


def free_text(value: Any, what: str, max_length: int, *, required: bool = True) -> str | None:
    """Text as a person wrote it (several lines), or ``InvalidInput`` naming ``what``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{what} must be given")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    try:
        return check_text(value.strip(), what, max_length=max_length, multiline=True)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None


def check_ids(values: Any, what: str = "items") -> list[int]:
    """Distinct row ids, at most ``MAX_IDS``, in the order given."""
    try:
        ids = [int(v) for v in values]
    except (TypeError, ValueError):
        raise InvalidInput(f"the {what} must be ids (whole numbers)") from None
    if len(ids) > MAX_IDS:
        from .errors import TooLarge

        raise TooLarge(f"at most {MAX_IDS:,} {what} at once; {len(ids):,} were given")
    if any(not 0 < i < 2**63 for i in ids):
        raise InvalidInput(f"the {what} must be ids of at least 1")
    return list(dict.fromkeys(ids))


def check_number(value: Any, what: str, *, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be a number") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidInput(f"{what} must be between {low:g} and {high:g}")
    return number


def is_postgres(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


def write_lock(session: Session) -> None:
    """SQLite's write lock before the reads a write depends on (``store.begin_write``)."""
    begin_write(session)


def locked(session: Session, query: Select[T]) -> Select[T]:
    """``query`` with FOR UPDATE on PostgreSQL (SQLite: the write lock is held already)."""
    return query.with_for_update() if is_postgres(session) else query


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True)
class Hoster:
    """Who hosts: the abuse contact the hotline noticed, its network (AS number) and owner."""

    contact_id: int | None
    asn: int | None
    network_owner: str | None

    @classmethod
    def of_item(cls, item: UrlItem) -> Hoster:
        return cls(item.contact_id, item.asn, item.network_owner)

    def same_as(self, other: Hoster) -> bool:
        """One hoster: the same contact where both have one, else the same network."""
        if self.contact_id is not None and other.contact_id is not None:
            return self.contact_id == other.contact_id
        return self.asn == other.asn

    def describe(self, contact: AbuseContact | None = None) -> str:
        parts = []
        if contact is not None:
            parts.append(contact.name)
        if self.network_owner:
            parts.append(self.network_owner)
        if self.asn is not None:
            parts.append(f"AS{self.asn}")
        return ", ".join(parts) or "an unknown hoster"


def publish(session: Session, row: Order | Fine, kind: str, *, actor: str) -> None:
    """Mark an order or fine public (it appears on ``/decisions``), audited; publishing twice
    changes nothing. The caller holds the row locked."""
    if row.public:
        return
    now = clock.now()
    row.public, row.published_at, row.updated_at = True, now, now
    audit.record(session, actor=actor, action=f"authority.{kind}_published",
                 subject=(kind, row.id), details={"ref": row.ref})  # fmt: skip
    session.flush()
