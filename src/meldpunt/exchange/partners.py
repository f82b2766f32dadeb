"""Partners: other instances we send sets to, follow sets from, or both, and their rules.

- **Out**: ``send_sets`` names the sets a partner may read through our feeds
  (``GET /v1/feeds/{set}``), ``send_categories`` (None: all) the categories it may see; an entry
  outside them reaches the partner as a removal. The partner reads with a token we issue (kept
  here as a SHA-256 only; ``issue_token`` makes a new one and the old one stops working).
- **In**: each ``PartnerFollow`` is one of the partner's sets that we follow into one of ours,
  with the categories we take in (None: all), read with the token the partner gave us
  (``remote_token``) and verified with its public key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.clock import now
from meldpunt.exchange.errors import InvalidInput, NotFound
from meldpunt.exchange.keys import fingerprint, parse_public_key
from meldpunt.registry import CODES, SetKind, create_set, get_set, lock_registry
from meldpunt.registry import NotFound as SetNotFound
from meldpunt.store import begin_write
from meldpunt.store.models import Partner, PartnerFollow
from meldpunt.text import TextError, check_name, check_text

__all__ = [
    "FollowInfo",
    "PartnerInfo",
    "add_partner",
    "follows_of",
    "get_partner",
    "issue_token",
    "list_partners",
    "load_partner_row",
    "partner_for_token",
    "set_partner_state",
    "update_partner",
]

TOKEN_PREFIX = "mpx_"


@dataclass(frozen=True)
class FollowInfo:
    id: int
    remote_set: str
    local_set: str
    categories: tuple[str, ...] | None
    after_seq: int
    remote_head: int
    applied_at: datetime | None
    remote_head_at: datetime | None
    changes_applied: int
    last_pull_at: datetime | None
    last_success_at: datetime | None
    failures: int
    last_error: str | None
    last_error_at: datetime | None

    @property
    def behind(self) -> int:
        """Change numbers of the partner's set not applied here yet (as of the last pull)."""
        return max(0, self.remote_head - self.after_seq)

    @property
    def seconds_behind(self) -> float:
        """How much older the newest change applied here is than the partner's newest change
        (as of the last pull); 0 when in step."""
        if self.behind == 0 or self.remote_head_at is None:
            return 0.0
        if self.applied_at is None:
            return 0.0
        return max(0.0, (self.remote_head_at - self.applied_at).total_seconds())


@dataclass(frozen=True)
class PartnerInfo:
    id: int
    name: str
    url: str
    public_key: str
    key_fingerprint: str
    can_read: bool  # a token was issued: the partner may read our feeds
    can_send: bool  # we hold a token for the partner's feeds
    send_sets: tuple[str, ...]
    send_categories: tuple[str, ...] | None
    created_at: datetime
    disabled_at: datetime | None
    follows: tuple[FollowInfo, ...]

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _checked_name(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None


def _checked_url(url: str) -> str:
    url = url.strip().rstrip("/")
    try:
        check_text(url, "a partner's URL", max_length=2000)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"a partner's URL is http(s)://host[:port], not {url[:100]!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidInput("a partner's URL has no user, password, query or fragment")
    return url


def _categories(values: Iterable[str] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    codes = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    unknown = [c for c in codes if c not in CODES]
    if unknown:
        raise InvalidInput(f"unknown category {unknown[0]!r}; known: {', '.join(CODES)}")
    return codes


def _json(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def _json_list(text: str | None) -> list[str] | None:
    return None if text is None else list(json.loads(text))


def _loads(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


def load_partner_row(session: Session, name: str) -> Partner:
    row = session.scalar(
        select(Partner).where(Partner.name == name).execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound(f"no partner {name!r} (meldpunt partners list)")
    return row


def _follow_info(session: Session, row: PartnerFollow) -> FollowInfo:
    return FollowInfo(
        id=row.id,
        remote_set=row.remote_set,
        local_set=get_set(session, row.local_set_id).name,
        categories=_loads(row.categories),
        after_seq=row.after_seq,
        remote_head=row.remote_head,
        applied_at=row.applied_at,
        remote_head_at=row.remote_head_at,
        changes_applied=row.changes_applied,
        last_pull_at=row.last_pull_at,
        last_success_at=row.last_success_at,
        failures=row.failures,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
    )


def follows_of(session: Session, partner_id: int) -> list[FollowInfo]:
    rows = session.scalars(
        select(PartnerFollow)
        .where(PartnerFollow.partner_id == partner_id)
        .order_by(PartnerFollow.remote_set)
        .execution_options(populate_existing=True)
    )
    return [_follow_info(session, row) for row in rows]


def _info(session: Session, row: Partner) -> PartnerInfo:
    return PartnerInfo(
        id=row.id,
        name=row.name,
        url=row.url,
        public_key=row.public_key,
        key_fingerprint=fingerprint(row.public_key),
        can_read=row.token_hash is not None,
        can_send=row.remote_token is not None,
        send_sets=_loads(row.send_sets) or (),
        send_categories=_loads(row.send_categories),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        follows=tuple(follows_of(session, row.id)),
    )


def get_partner(session: Session, name: str) -> PartnerInfo:
    return _info(session, load_partner_row(session, name))


def list_partners(session: Session) -> list[PartnerInfo]:
    rows = session.scalars(
        select(Partner).order_by(Partner.name).execution_options(populate_existing=True)
    )
    return [_info(session, row) for row in rows]


def partner_for_token(session: Session, token: str) -> PartnerInfo | None:
    """The active partner that reads our feeds with ``token``, if any."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(Partner).where(Partner.token_hash == _token_hash(token)))
    if row is None or row.disabled_at is not None:
        return None
    return _info(session, row)


def _check_send_sets(session: Session, names: Iterable[str]) -> tuple[str, ...]:
    found = []
    for name in names:
        try:
            found.append(get_set(session, name.strip()).name)
        except SetNotFound:
            raise InvalidInput(f"no hash set {name!r} to send (meldpunt sets list)") from None
    return tuple(dict.fromkeys(found))


def _follow(
    session: Session,
    partner: Partner,
    remote_set: str,
    local_set: str | None,
    categories: tuple[str, ...] | None,
    actor: str,
) -> None:
    remote_set = _checked_name(remote_set, "the partner's set")
    local_name = _checked_name(local_set or remote_set, "our set")
    try:
        local = get_set(session, local_name)
    except SetNotFound:
        local = create_set(
            session,
            local_name,
            kind=SetKind.blocklist,
            description=f"received from partner {partner.name}",
            source_org=partner.name,
            actor=actor,
        )
    if local.is_allowlist:
        raise InvalidInput(f"set {local_name!r} is an allow-list; follow into a blocklist")
    existing = session.scalar(
        select(PartnerFollow).where(
            PartnerFollow.partner_id == partner.id, PartnerFollow.remote_set == remote_set
        )
    )
    if existing is not None:
        if existing.local_set_id != local.id:
            raise InvalidInput(
                f"{partner.name}'s set {remote_set!r} is followed into another set already"
            )
        existing.categories = _json(categories)
        return
    session.add(
        PartnerFollow(
            partner_id=partner.id,
            remote_set=remote_set,
            local_set_id=local.id,
            categories=_json(categories),
            after_seq=0,
            remote_head=0,
            changes_applied=0,
            failures=0,
            next_pull_at=now(),
        )
    )


def parse_receive(rule: str) -> tuple[str, str | None]:
    """``THEIRS`` or ``THEIRS:OURS`` (the partner's set, followed into our set)."""
    theirs, _, ours = rule.partition(":")
    return theirs.strip(), (ours.strip() or None)


def add_partner(
    session: Session,
    name: str,
    *,
    url: str,
    public_key: str,
    send_sets: Iterable[str] = (),
    send_categories: Iterable[str] | None = None,
    receive: Iterable[tuple[str, str | None]] = (),
    receive_categories: Iterable[str] | None = None,
    remote_token: str | None = None,
    actor: str = "system",
) -> tuple[PartnerInfo, str | None]:
    """Add a partner (flushed, not committed). Returns it and, when it may read sets of ours
    (``send_sets``), the token it reads them with: shown once, kept only as a hash."""
    name = _checked_name(name, "a partner's name")
    lock_registry(session)  # before the first read: it may create sets
    if session.scalar(select(Partner.id).where(Partner.name == name)) is not None:
        raise InvalidInput(f"a partner named {name!r} exists already")
    key = parse_public_key(public_key)
    sending = _check_send_sets(session, send_sets)
    token = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}" if sending else None
    if remote_token is not None:
        remote_token = _checked_remote_token(remote_token)
    at = now()
    row = Partner(
        name=name,
        url=_checked_url(url),
        public_key=key,
        token_hash=_token_hash(token) if token else None,
        remote_token=remote_token,
        send_sets=json.dumps(list(sending)),
        send_categories=_json(_categories(send_categories)),
        created_at=at,
        updated_at=at,
    )
    session.add(row)
    session.flush()
    taken = _categories(receive_categories)
    rules = list(receive)
    for theirs, ours in rules:
        _follow(session, row, theirs, ours, taken, actor)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="exchange.partner.added",
        subject=("partner", row.id),
        details={
            "name": name,
            "url": row.url,
            "key": fingerprint(key),
            "send_sets": list(sending),
            "send_categories": None
            if row.send_categories is None
            else json.loads(row.send_categories),
            "receive": [[t, o] for t, o in rules],
            "receive_categories": None if taken is None else list(taken),
        },
    )
    return _info(session, row), token


def _checked_remote_token(token: str) -> str:
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX) or not 10 <= len(token) <= 200:
        raise InvalidInput(f"a partner's token starts with {TOKEN_PREFIX} (as the partner gave it)")
    try:
        return check_text(token, "a partner's token", max_length=200)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None


def update_partner(
    session: Session,
    name: str,
    *,
    url: str | None = None,
    public_key: str | None = None,
    remote_token: str | None = None,
    send_sets: Iterable[str] | None = None,
    send_categories: Iterable[str] | None = None,
    all_categories: bool = False,
    receive: Iterable[tuple[str, str | None]] = (),
    receive_categories: Iterable[str] | None = None,
    actor: str = "system",
) -> PartnerInfo:
    """Change what is given; a new public key is how a partner that changed its key is
    trusted again (the audit log keeps both fingerprints)."""
    lock_registry(session)  # before the first read: it may create sets
    row = load_partner_row(session, name)
    details: dict[str, object] = {"name": row.name}
    if url is not None:
        row.url = _checked_url(url)
        details["url"] = row.url
    if public_key is not None:
        key = parse_public_key(public_key)
        details["key"] = {"from": fingerprint(row.public_key), "to": fingerprint(key)}
        row.public_key = key
    if remote_token is not None:
        row.remote_token = _checked_remote_token(remote_token)
        details["remote_token"] = "replaced"
    if send_sets is not None:
        sending = _check_send_sets(session, send_sets)
        row.send_sets = json.dumps(list(sending))
        details["send_sets"] = list(sending)
    if send_categories is not None or all_categories:
        codes = None if all_categories else _categories(send_categories)
        row.send_categories = _json(codes)
        details["send_categories"] = None if codes is None else list(codes)
    rules = list(receive)
    taken = _categories(receive_categories)
    for theirs, ours in rules:
        _follow(session, row, theirs, ours, taken, actor)
    if rules:
        details["receive"] = [[t, o] for t, o in rules]
    row.updated_at = now()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="exchange.partner.changed",
        subject=("partner", row.id),
        details=details,
    )
    return _info(session, row)


def issue_token(session: Session, name: str, *, actor: str = "system") -> str:
    """A new token for the partner to read our feeds with; the old one stops working."""
    begin_write(session)
    row = load_partner_row(session, name)
    token = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    row.token_hash = _token_hash(token)
    row.updated_at = now()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="exchange.partner.token",
        subject=("partner", row.id),
        details={"name": row.name},
    )
    return token


def set_partner_state(
    session: Session, name: str, *, enabled: bool, actor: str = "system"
) -> PartnerInfo:
    """Disable (no feeds served to it, none pulled from it) or enable a partner again."""
    begin_write(session)
    row = load_partner_row(session, name)
    row.disabled_at = None if enabled else (row.disabled_at or now())
    row.updated_at = now()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="exchange.partner.enabled" if enabled else "exchange.partner.disabled",
        subject=("partner", row.id),
        details={"name": row.name},
    )
    return _info(session, row)
