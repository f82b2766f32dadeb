"""API keys: made once, shown once, stored as a SHA-256, revocable, optionally expiring.

A key is ``mp_`` and 40 URL-safe random characters (240 bits from ``secrets``). Only its SHA-256
is stored, with its first 12 characters (``prefix``) as the name people see in lists. A key is
random and long, so a plain SHA-256 is enough: there is nothing to guess that a slow hash would
protect, and checking a key costs one indexed lookup.

``authenticate`` is on every request's path: it reads one row and writes ``last_used_at`` at most
once a minute per key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.checks._db import begin_write, row_id
from meldpunt.checks.errors import InvalidInput, NotFound
from meldpunt.checks.integrity import key_fields
from meldpunt.checks.orgs import OrgRef, load_org_row
from meldpunt.checks.vocabulary import ROLES
from meldpunt.clock import now
from meldpunt.store.models import ApiKey, Organisation
from meldpunt.text import TextError, check_name, text_problem

__all__ = [
    "KEY_LENGTH",
    "KEY_PREFIX",
    "LAST_USED_RESOLUTION",
    "PREFIX_LENGTH",
    "ROLES",
    "KeyInfo",
    "Principal",
    "authenticate",
    "create_key",
    "generate_key",
    "hash_key",
    "list_keys",
    "looks_like_key",
    "revoke_key",
]

KEY_PREFIX = "mp_"
_RANDOM_BYTES = 30  # 40 characters of URL-safe base64
KEY_LENGTH = len(KEY_PREFIX) + 40
PREFIX_LENGTH = 12
#: ``last_used_at`` is written at most this often per key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class KeyInfo:
    id: int
    org_id: int
    org_name: str
    role: str
    label: str | None
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    #: Would authenticate now: not revoked, not expired, its organisation not disabled.
    active: bool


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key and its organisation."""

    key_id: int
    org_id: int
    org_name: str
    org_kind: str
    role: str
    #: Check answers may show PDQ distances (an admin allowed the organisation them).
    show_distances: bool = False


def generate_key() -> str:
    """A new random key: ``mp_`` + 40 URL-safe characters."""
    return KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def hash_key(plaintext: str) -> str:
    """What is stored of a key: the SHA-256 of its text, in hex."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


_KEY = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{40}")


def looks_like_key(text: str) -> bool:
    """Whether ``text`` has the shape of a meldpunt key (``mp_`` and 40 URL-safe characters):
    anything else is refused without a database read."""
    return len(text) == KEY_LENGTH and _KEY.fullmatch(text) is not None


def _is_active(row: ApiKey, org: Organisation, at: datetime) -> bool:
    return (
        row.revoked_at is None
        and (row.expires_at is None or row.expires_at > at)
        and org.disabled_at is None
    )


def _info(row: ApiKey, org: Organisation) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        org_id=row.org_id,
        org_name=org.name,
        role=row.role,
        label=row.label,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        active=_is_active(row, org, now()),
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def create_key(
    session: Session,
    org: OrgRef,
    role: str,
    *,
    label: str | None = None,
    expires_at: datetime | None = None,
    actor: str = "system",
) -> tuple[KeyInfo, str]:
    """Make a key for ``org`` (flushed, not committed). Returns its info and the key itself:
    the only time the key exists outside its holder's hands."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if label is not None and label.strip():
        try:
            label = check_name(label, "a key's label")
        except TextError as exc:
            raise InvalidInput(str(exc)) from None
    else:
        label = None
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput("expires_at must be timezone-aware")
        if expires_at <= now():
            raise InvalidInput(f"expires_at {expires_at.isoformat()} is not in the future")
    begin_write(session)
    org_row = load_org_row(session, org)
    if org_row.disabled_at is not None:
        raise InvalidInput(f"organisation {org_row.name!r} is disabled")
    plaintext = generate_key()
    row = ApiKey(
        org_id=org_row.id,
        role=role,
        label=label,
        prefix=plaintext[:PREFIX_LENGTH],
        key_hash=hash_key(plaintext),
        created_at=now(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="checks.key.created",
        subject=("api_key", row.id),
        details={
            "org_id": org_row.id,
            "org": org_row.name,
            "role": role,
            "label": label,
            "prefix": row.prefix,
            "expires_at": _iso(expires_at),
        },
        row=key_fields(role, org_row.id, expires_at, None),
    )
    return _info(row, org_row), plaintext


def _find_key(session: Session, ref: int | str) -> ApiKey:
    """A key by id, by its full text, or by its prefix (as lists show it)."""
    if isinstance(ref, str):
        text = ref.strip()
        if text_problem(text) is not None:
            raise NotFound(f"no key {text!r}")  # no key has such characters
        number = row_id(text)
        if number is not None:
            ref = number
        elif looks_like_key(text):
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(text)))
            if row is None:
                raise NotFound("no such key")
            return row
        else:
            rows = list(session.scalars(select(ApiKey).where(ApiKey.prefix == text)))
            if len(rows) > 1:
                ids = ", ".join(str(r.id) for r in rows)
                raise InvalidInput(f"prefix {text!r} names several keys ({ids}): give the id")
            if not rows:
                raise NotFound(f"no key with prefix {text!r}")
            return rows[0]
    row = session.get(ApiKey, ref, populate_existing=True)
    if row is None:
        raise NotFound(f"no key {ref!r}")
    return row


def revoke_key(session: Session, key_id_or_prefix: int | str, *, actor: str) -> KeyInfo:
    """Revoke a key for good (id, prefix or the key itself); revoking it again changes nothing."""
    begin_write(session)
    row = _find_key(session, key_id_or_prefix)
    org_row = load_org_row(session, row.org_id)
    if row.revoked_at is not None:
        return _info(row, org_row)
    row.revoked_at = now()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="checks.key.revoked",
        subject=("api_key", row.id),
        details={"org_id": org_row.id, "org": org_row.name, "prefix": row.prefix},
        row=key_fields(row.role, row.org_id, row.expires_at, row.revoked_at),
    )
    return _info(row, org_row)


def list_keys(session: Session, org: OrgRef | None = None) -> list[KeyInfo]:
    """Every key (of one organisation, when named), by organisation name and id."""
    query: Any = select(ApiKey, Organisation).join(Organisation, ApiKey.org_id == Organisation.id)
    if org is not None:
        query = query.where(ApiKey.org_id == load_org_row(session, org).id)
    query = query.order_by(Organisation.name, ApiKey.id).execution_options(populate_existing=True)
    return [_info(key, org_row) for key, org_row in session.execute(query)]


def authenticate(session: Session, plaintext: str) -> Principal | None:
    """The caller behind a key, or None for a key that is unknown, revoked or expired, or whose
    organisation is disabled. Records ``last_used_at`` (at most once a minute) in the caller's
    transaction: commit it for the time to stick."""
    if not isinstance(plaintext, str) or not looks_like_key(plaintext):
        return None
    columns = ApiKey.__table__.c
    orgs = Organisation.__table__.c
    query = (
        select(
            columns.id,
            columns.role,
            columns.expires_at,
            columns.revoked_at,
            columns.last_used_at,
            orgs.id.label("org_id"),
            orgs.name.label("org_name"),
            orgs.kind.label("org_kind"),
            orgs.disabled_at.label("org_disabled_at"),
            orgs.show_distances,
        )
        .join_from(ApiKey.__table__, Organisation.__table__, columns.org_id == orgs.id)
        .where(columns.key_hash == hash_key(plaintext))
    )
    row = session.execute(query).one_or_none()
    if row is None:
        return None
    at = now()
    if row.revoked_at is not None or row.org_disabled_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= at:
        return None
    if row.last_used_at is None or at - row.last_used_at >= LAST_USED_RESOLUTION:
        _touch(session, row.id, at)
    return Principal(
        key_id=row.id,
        org_id=row.org_id,
        org_name=row.org_name,
        org_kind=row.org_kind,
        role=row.role,
        show_distances=bool(row.show_distances),
    )


def _touch(session: Session, key_id: int, at: datetime) -> None:
    statement = (
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= at - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=at)
        .execution_options(synchronize_session=False)
    )
    try:
        with session.begin_nested():
            session.execute(statement)
    except OperationalError:
        # SQLite: another writer committed since this transaction began reading, so it cannot
        # write now. A usage time is not worth failing a request for: the next request sets it.
        pass
