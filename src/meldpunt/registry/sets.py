"""Hash sets: create, look up, list, disable and enable.

A set is a named list from one source: a blocklist of known material, or an allow-list of known
false positives that suppresses matches in the blocklists. Sets are never deleted (their change
log and audit trail refer to them); a set that should no longer count is disabled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.clock import now
from meldpunt.registry import trail
from meldpunt.registry.categories import CODES, classify
from meldpunt.registry.changes import ChangeRow, append_changes
from meldpunt.registry.errors import InvalidInput, NotFound
from meldpunt.registry.locking import lock_registry
from meldpunt.registry.vocabulary import SET_KINDS, MatchWay
from meldpunt.store.models import HashSet
from meldpunt.text import TextError, check_name, check_text, could_be_name

__all__ = [
    "DEFAULT_PDQ_THRESHOLD",
    "HashSetInfo",
    "SetRef",
    "create_set",
    "disable_set",
    "enable_set",
    "get_set",
    "list_sets",
    "load_set_row",
    "update_set",
]

DEFAULT_PDQ_THRESHOLD = 31


@dataclass(frozen=True)
class HashSetInfo:
    id: int
    name: str
    description: str
    source_org: str | None
    kind: str  # 'blocklist' | 'allowlist'
    default_category: str | None
    pdq_threshold: int
    state: str  # 'active' | 'disabled'
    created_at: datetime
    updated_at: datetime
    ways_off: frozenset[str] = frozenset()  # ``MatchWay`` names this set does not match by
    #: False: entries nobody at the hotline assessed (submitted by the person pictured).
    reviewed: bool = True

    @property
    def active(self) -> bool:
        return self.state == "active"

    @property
    def is_allowlist(self) -> bool:
        return self.kind == "allowlist"


#: A set named by its info, id or name.
SetRef = HashSetInfo | int | str


def _info(row: HashSet) -> HashSetInfo:
    return HashSetInfo(
        id=row.id,
        name=row.name,
        description=row.description,
        source_org=row.source_org,
        kind=row.kind,
        default_category=row.default_category,
        pdq_threshold=row.pdq_threshold,
        state=row.state,
        created_at=row.created_at,
        updated_at=row.updated_at,
        ways_off=frozenset(w for w in (row.ways_off or "").split(",") if w),
        reviewed=bool(row.reviewed) if row.reviewed is not None else True,
    )


def load_set_row(session: Session, ref: SetRef) -> HashSet:
    """The ORM row of a set; raises NotFound."""
    if isinstance(ref, HashSetInfo):
        ref = ref.id
    # populate_existing: a long-lived session (a follower's) must see other sessions' changes.
    if isinstance(ref, int):
        row = session.get(HashSet, ref, populate_existing=True)
    elif not could_be_name(ref):
        row = None  # no set can have this name (and a database may not compare it)
    else:
        query = select(HashSet).where(HashSet.name == ref)
        row = session.scalar(query.execution_options(populate_existing=True))
    if row is None:
        raise NotFound(f"no hash set {ref!r}")
    return row


def get_set(session: Session, ref: SetRef) -> HashSetInfo:
    """The set with this id or name; raises NotFound."""
    return _info(load_set_row(session, ref))


def list_sets(session: Session) -> list[HashSetInfo]:
    """Every set, by name."""
    query = select(HashSet).order_by(HashSet.name).execution_options(populate_existing=True)
    return [_info(row) for row in session.scalars(query)]


def _check_default_category(category: str | None) -> str | None:
    """A default category given as a code or as a raw value of any scheme ("A1", "baseline")."""
    if category is None or not category.strip():
        return None
    code = classify(category).code
    if code == "unknown" or code not in CODES:
        raise InvalidInput(f"unknown category {category!r} for a set's default")
    return code


def create_set(
    session: Session,
    name: str,
    *,
    kind: str = "blocklist",
    description: str = "",
    source_org: str | None = None,
    default_category: str | None = None,
    pdq_threshold: int = DEFAULT_PDQ_THRESHOLD,
    actor: str = "system",
    reviewed: bool = True,
) -> HashSetInfo:
    """Create a set (flushed, not committed); raises InvalidInput for bad values or a taken name."""
    try:
        name = check_name(name, "a set's name")
        check_text(description, "a set's description", max_length=2000, multiline=True)
        if source_org is not None:
            check_text(source_org, "a set's source", max_length=200)
        if default_category is not None:
            check_text(default_category, "a set's default category", max_length=100)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None
    if kind not in SET_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(SET_KINDS)}, not {kind!r}")
    if not 0 <= pdq_threshold <= 64:
        raise InvalidInput(f"pdq_threshold must be 0..64, not {pdq_threshold}")
    code = _check_default_category(default_category)
    lock_registry(session)
    if session.scalar(select(HashSet.id).where(HashSet.name == name)) is not None:
        raise InvalidInput(f"a hash set named {name!r} exists already")
    at = now()
    row = HashSet(
        name=name,
        description=description,
        source_org=source_org,
        kind=kind,
        default_category=code,
        pdq_threshold=pdq_threshold,
        state="active",
        created_at=at,
        updated_at=at,
        reviewed=reviewed,
    )
    session.add(row)
    session.flush()
    changes = [ChangeRow(row.id, None, "add", None, None, None, "set_created")]
    seqs = append_changes(session, changes)
    audit.record(
        session,
        actor=actor,
        action="registry.set.created",
        subject=("hash_set", row.id),
        details={
            "name": name,
            "kind": kind,
            "source_org": source_org,
            "default_category": code,
            "pdq_threshold": pdq_threshold,
            **({} if reviewed else {"reviewed": False}),
            **trail.vouch(changes, seqs),
        },
    )
    return _info(row)


def _set_state(session: Session, ref: SetRef, state: str, actor: str) -> HashSetInfo:
    lock_registry(session)
    row = load_set_row(session, ref)
    if row.state == state:
        return _info(row)
    row.state = state
    row.updated_at = now()
    reason = "set_disabled" if state == "disabled" else "set_enabled"
    session.flush()
    changes = [ChangeRow(row.id, None, "update", None, None, None, reason)]
    seqs = append_changes(session, changes)
    audit.record(
        session,
        actor=actor,
        action=f"registry.set.{state}",
        subject=("hash_set", row.id),
        details={"name": row.name, **trail.vouch(changes, seqs)},
    )
    return _info(row)


def set_ways(
    session: Session,
    ref: SetRef,
    *,
    off: Iterable[str] = (),
    on: Iterable[str] = (),
    actor: str = "system",
) -> HashSetInfo:
    """Turn ways of matching (``MatchWay``) off or on for a set. ``plain`` is how a set matches
    at all and cannot be turned off (disable the set instead)."""
    known = {way.value for way in MatchWay}
    asked_off, asked_on = {str(w).strip() for w in off}, {str(w).strip() for w in on}
    unknown = sorted((asked_off | asked_on) - known)
    if unknown:
        raise InvalidInput(f"unknown way of matching {unknown[0]!r} (known: {', '.join(known)})")
    if MatchWay.plain in asked_off:
        raise InvalidInput("a set always matches the plain way; disable the set to stop it")
    if asked_off & asked_on:
        raise InvalidInput(f"turned both off and on: {', '.join(sorted(asked_off & asked_on))}")
    lock_registry(session)
    row = load_set_row(session, ref)
    before = frozenset(w for w in (row.ways_off or "").split(",") if w)
    after = (before | asked_off) - asked_on
    if after == before:
        return _info(row)
    row.ways_off = ",".join(sorted(after))
    row.updated_at = now()
    session.flush()
    changes = [ChangeRow(row.id, None, "update", None, None, None, "set_ways")]
    seqs = append_changes(session, changes)
    audit.record(
        session,
        actor=actor,
        action="registry.set.ways",
        subject=("hash_set", row.id),
        details={"name": row.name, "ways_off": sorted(after), **trail.vouch(changes, seqs)},
    )
    return _info(row)


def update_set(
    session: Session,
    ref: SetRef,
    *,
    reviewed: bool | None = None,
    default_category: str | None = None,
    actor: str = "system",
) -> HashSetInfo:
    """Change a set's reviewed flag (False: its entries were not assessed by the hotline, and
    every match says so) or its default category. One set-wide change row (``set_updated``)
    tells the set's followers to read it again: our matchers, and partners following it, who
    take both over."""
    code = _check_default_category(default_category) if default_category is not None else None
    lock_registry(session)
    row = load_set_row(session, ref)
    changed: dict[str, object] = {}
    if reviewed is not None and bool(row.reviewed) != reviewed:
        row.reviewed = reviewed
        changed["reviewed"] = reviewed
    if code is not None and row.default_category != code:
        row.default_category = code
        changed["default_category"] = code
    if not changed:
        return _info(row)
    row.updated_at = now()
    session.flush()
    changes = [ChangeRow(row.id, None, "update", None, None, None, "set_updated")]
    seqs = append_changes(session, changes)
    audit.record(
        session,
        actor=actor,
        action="registry.set.updated",
        subject=("hash_set", row.id),
        details={"name": row.name, **changed, **trail.vouch(changes, seqs)},
    )
    return _info(row)


def disable_set(session: Session, ref: SetRef, *, actor: str = "system") -> HashSetInfo:
    """Stop the set counting for matches; its items and their states are kept as they are."""
    return _set_state(session, ref, "disabled", actor)


def enable_set(session: Session, ref: SetRef, *, actor: str = "system") -> HashSetInfo:
    return _set_state(session, ref, "active", actor)
