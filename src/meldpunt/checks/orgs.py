"""Organisations: the platforms, hotlines, authorities and partners that hold API keys.

An organisation is never deleted (its hits and audit trail refer to it); ``disable_org`` switches
off every key it holds at once, ``enable_org`` switches them on again.

``set_show_distances`` is an admin's decision to show the organisation PDQ distances in its
check answers. Off by default: a distance for each of a near copy's 256 one-bit changes spells
out the listed hash, so without it an answer says only whether a picture matched, and in which
set and category.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.checks._db import begin_write, row_id
from meldpunt.checks.errors import InvalidInput, NotFound
from meldpunt.checks.vocabulary import ORG_KINDS
from meldpunt.clock import now
from meldpunt.store.models import Organisation
from meldpunt.text import TextError, check_name, could_be_name, text_problem

__all__ = [
    "ORG_KINDS",
    "OrgInfo",
    "OrgRef",
    "create_org",
    "disable_org",
    "enable_org",
    "get_org",
    "list_orgs",
    "load_org_row",
    "set_show_distances",
]

#: An organisation named by its id or its name.
OrgRef = int | str

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class OrgInfo:
    id: int
    name: str
    kind: str  # 'platform' | 'hotline' | 'authority' | 'partner'
    contact_email: str | None
    created_at: datetime
    disabled: bool
    #: Check answers show PDQ distances (``set_show_distances``).
    show_distances: bool = False


def _info(row: Organisation) -> OrgInfo:
    return OrgInfo(
        id=row.id,
        name=row.name,
        kind=row.kind,
        contact_email=row.contact_email,
        created_at=row.created_at,
        disabled=row.disabled_at is not None,
        show_distances=bool(row.show_distances),
    )


def load_org_row(session: Session, ref: OrgRef) -> Organisation:
    """The ORM row of an organisation named by id or name; raises NotFound.

    A string of digits that is nobody's name is taken as an id, so that command lines can
    name an organisation either way."""
    row: Organisation | None
    if isinstance(ref, int):
        row = session.get(Organisation, ref, populate_existing=True)
    elif not could_be_name(ref):
        row = None  # no organisation can have this name (and a database may not compare it)
    else:
        query = select(Organisation).where(Organisation.name == ref.strip())
        row = session.scalar(query.execution_options(populate_existing=True))
        number = row_id(ref) if row is None else None
        if number is not None:
            row = session.get(Organisation, number, populate_existing=True)
    if row is None:
        raise NotFound(f"no organisation {ref!r}")
    return row


def get_org(session: Session, ref: OrgRef) -> OrgInfo:
    """The organisation with this id or name; raises NotFound."""
    return _info(load_org_row(session, ref))


def list_orgs(session: Session) -> list[OrgInfo]:
    """Every organisation, by name."""
    query = select(Organisation).order_by(Organisation.name)
    return [_info(row) for row in session.scalars(query.execution_options(populate_existing=True))]


def create_org(
    session: Session,
    name: str,
    kind: str,
    *,
    contact_email: str | None = None,
    actor: str = "system",
) -> OrgInfo:
    """Create an organisation (flushed, not committed); raises InvalidInput for a bad kind or
    e-mail address or a name that is taken."""
    try:
        name = check_name(name, "an organisation's name")
    except TextError as exc:
        raise InvalidInput(str(exc)) from None
    if name.isdigit():
        raise InvalidInput(f"{name!r} would read as an id: an organisation's name needs a letter")
    if kind not in ORG_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(ORG_KINDS)}, not {kind!r}")
    if contact_email is not None:
        contact_email = contact_email.strip() or None
    if contact_email is not None and (
        len(contact_email) > 320
        or not _EMAIL.match(contact_email)
        or text_problem(contact_email) is not None
    ):
        raise InvalidInput(f"{contact_email!r} is not an e-mail address")
    begin_write(session)
    if session.scalar(select(Organisation.id).where(Organisation.name == name)) is not None:
        raise InvalidInput(f"an organisation named {name!r} exists already")
    row = Organisation(name=name, kind=kind, contact_email=contact_email, created_at=now())
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="checks.org.created",
        subject=("organisation", row.id),
        details={"name": name, "kind": kind, "contact_email": contact_email},
    )
    return _info(row)


def _set_disabled(session: Session, ref: OrgRef, disabled: bool, actor: str) -> OrgInfo:
    def change(row: Organisation) -> None:
        row.disabled_at = now() if disabled else None

    action = "checks.org.disabled" if disabled else "checks.org.enabled"
    return _change_org(
        session, ref, bool_of=lambda row: row.disabled_at is not None, wanted=disabled,
        change=change, action=action, actor=actor, details={},
    )  # fmt: skip


def _change_org(
    session: Session,
    ref: OrgRef,
    *,
    bool_of: Callable[[Organisation], bool],
    wanted: bool,
    change: Callable[[Organisation], None],
    action: str,
    actor: str,
    details: dict[str, Any],
) -> OrgInfo:
    """Turn one of an organisation's switches (flushed, not committed; audited when it
    changes anything)."""
    begin_write(session)
    row = load_org_row(session, ref)
    if bool_of(row) == wanted:
        return _info(row)
    change(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=action,
        subject=("organisation", row.id),
        details={"name": row.name, **details},
    )
    return _info(row)


def disable_org(session: Session, ref: OrgRef, *, actor: str = "system") -> OrgInfo:
    """Switch the organisation off: none of its keys authenticates until ``enable_org``."""
    return _set_disabled(session, ref, True, actor)


def enable_org(session: Session, ref: OrgRef, *, actor: str = "system") -> OrgInfo:
    return _set_disabled(session, ref, False, actor)


def set_show_distances(
    session: Session, ref: OrgRef, allowed: bool, *, actor: str = "system"
) -> OrgInfo:
    """Allow (or stop) PDQ distances in the organisation's check answers (flushed, not
    committed; audited). The service's key cache picks it up within its seconds."""

    def show(row: Organisation) -> None:
        row.show_distances = allowed

    action = "checks.org.distances_shown" if allowed else "checks.org.distances_hidden"
    return _change_org(
        session, ref, bool_of=lambda row: bool(row.show_distances), wanted=allowed, change=show,
        action=action, actor=actor, details={"show_distances": allowed},
    )  # fmt: skip
