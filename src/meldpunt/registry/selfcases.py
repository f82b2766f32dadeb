"""People's own cases: the hashes of their own intimate pictures, made on their own device.

A person who fears that intimate pictures of them are shared without consent hashes them in the
browser (``/protect``); only the hashes arrive here. They go into one set of category ``ncii``
marked as not reviewed (``HashSetInfo.reviewed`` False), so platforms are told in every match
that nobody at the hotline assessed the entry. The person gets a case number and chooses a PIN
(kept as scrypt only), and can come back to see the case, add pictures, or withdraw it:
withdrawal withdraws the case's entries, whose numbered "remove" changes take them out of every
index and every partner's copy.

Abuse is limited here by a cap of pictures per case, by refusing pictures that match an
allow-list (the caller says which do: it holds the index), and by locking a case for an hour
after ``MAX_PIN_FAILURES`` wrong PINs; the face adds a rate limit per address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt import audit, errors
from meldpunt.clock import now
from meldpunt.registry.batch import ItemInput, apply_items, normalize_signals
from meldpunt.registry.categories import Category
from meldpunt.registry.errors import InvalidInput, NotFound, RegistryError
from meldpunt.registry.items import enable_item, withdraw_item
from meldpunt.registry.locking import lock_registry
from meldpunt.registry.sets import HashSetInfo, create_set, get_set
from meldpunt.store.db import begin_write
from meldpunt.store.models import Item, ItemSignal, SelfCase, SelfCaseItem

__all__ = [
    "MAX_PIN_FAILURES",
    "SELF_SET",
    "AllowListed",
    "CaseLocked",
    "CaseView",
    "Picture",
    "PictureView",
    "TooManyPictures",
    "WrongPin",
    "add_pictures",
    "open_case",
    "self_set",
    "view_case",
    "withdraw_case",
]

SELF_SET = "ncii-self-submitted"
MAX_PIN_FAILURES = 5
LOCK = timedelta(hours=1)
MIN_PIN, MAX_PIN = 6, 64
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
ACTOR = "person pictured"


class WrongPin(RegistryError, errors.Forbidden):
    """No case with that number, or not that PIN (the two are not told apart)."""


class CaseLocked(RegistryError, errors.RateLimited):
    """Too many wrong PINs: the case opens again later."""


class Busy(RegistryError, errors.Unavailable):
    """Too many PINs being checked at once: try again in a moment."""


class TooManyPictures(InvalidInput):
    """More pictures than one case may hold."""


class AllowListed(InvalidInput):
    """A picture matches an allow-list (a known harmless picture) and cannot be added."""


@dataclass(frozen=True)
class Picture:
    """One picture's hashes as the person's browser computed them."""

    pdq: str
    quality: int
    md5: str | None = None
    orientations: tuple[str, ...] = ()  # the other seven orientations' PDQ hashes


@dataclass(frozen=True)
class PictureView:
    pdq: str
    md5: str | None
    status: str
    added_at: datetime


@dataclass(frozen=True)
class CaseView:
    number: str
    created_at: datetime
    withdrawn_at: datetime | None
    pictures: tuple[PictureView, ...]

    @property
    def withdrawn(self) -> bool:
        return self.withdrawn_at is not None


def self_set(session: Session) -> HashSetInfo:
    """The set of people's own pictures, made on first use."""
    try:
        return get_set(session, SELF_SET)
    except NotFound:
        return create_set(
            session,
            SELF_SET,
            description="Hashes of intimate pictures, submitted by the people pictured "
            "(hashed on their own device); not reviewed by the hotline.",
            source_org="the people pictured",
            default_category="ncii",
            reviewed=False,
            actor="system",
        )


#: PINs checked at once: each scrypt takes 16 MiB and some 50 ms of a core, so a flood of wrong
#: PINs (from many addresses) waits its turn instead of taking the machine.
_PIN_SLOTS = threading.BoundedSemaphore(4)
_PIN_WAIT_SECONDS = 20


def _scrypt(pin: str, salt: bytes, n: int) -> bytes:
    if not _PIN_SLOTS.acquire(timeout=_PIN_WAIT_SECONDS):
        raise Busy("too many people are checking their case right now; try again in a minute",
                   retry_after=60)  # fmt: skip
    try:
        return hashlib.scrypt(
            pin.encode("utf-8"), salt=salt, dklen=32, n=n, r=_SCRYPT["r"], p=_SCRYPT["p"]
        )
    finally:
        _PIN_SLOTS.release()


def _hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(pin, salt, _SCRYPT["n"])
    encode = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${encode(salt).decode()}${encode(digest).decode()}"


def _pin_ok(pin: str, stored: str | None) -> bool:
    """Whether ``pin`` is the one ``stored`` keeps. With nothing stored (no such case) the same
    work is done, so that the time taken does not tell an unknown number from a wrong PIN."""
    try:
        kind, n, salt, digest = (stored or _NO_CASE).split("$")
        expected = base64.b64decode(digest)
        given = _scrypt(pin, base64.b64decode(salt), int(n))
    except (ValueError, TypeError):
        return False
    return stored is not None and kind == "scrypt" and hmac.compare_digest(given, expected)


_NO_CASE = "$".join(
    [
        "scrypt",
        str(_SCRYPT["n"]),
        base64.b64encode(bytes(16)).decode(),
        base64.b64encode(bytes(32)).decode(),
    ]
)


def _check_pin(pin: str) -> str:
    if not MIN_PIN <= len(pin) <= MAX_PIN:
        raise InvalidInput(f"choose a PIN of {MIN_PIN} to {MAX_PIN} characters")
    if not pin.isprintable():
        raise InvalidInput("a PIN has letters, digits and punctuation only")
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise InvalidInput("choose a PIN that is harder to guess (not one digit repeated)")
    return pin


def _inputs(pictures: Sequence[Picture]) -> list[ItemInput]:
    ncii = Category("ncii", "ncii", "meldpunt")
    inputs = []
    for n, picture in enumerate(pictures, 1):
        pairs = [("pdq", picture.pdq), *(("pdq", h) for h in picture.orientations[:7])]
        if picture.md5:
            pairs.append(("md5", picture.md5))
        try:
            signals = normalize_signals(pairs)
        except InvalidInput as exc:
            raise InvalidInput(f"picture {n}: {exc}") from None
        if not 0 <= picture.quality <= 100:
            raise InvalidInput(f"picture {n}: quality is 0 to 100")
        inputs.append(ItemInput(signals=signals, category=ncii))
    return inputs


def _number(number: str) -> str:
    """The case number as meldpunt writes it (a person may type it in lower case, with spaces
    around); InvalidInput when it cannot be one. Only plain white space is taken off: a control
    character that str.strip() would also take (NEL) is refused like any other."""
    number = number.strip(" \t\r\n").upper()
    if not _NUMBER.fullmatch(number):
        raise InvalidInput("a case number looks like NC-XXXXXX-XXXXXX (letters A-F and digits)")
    return number


_NUMBER = re.compile(r"NC-[0-9A-F]{6}-[0-9A-F]{6}")


def _load(session: Session, number: str, pin: str, *, writes: bool) -> SelfCase:
    """The case, once the PIN fits; counts wrong PINs and locks the case after too many.

    The PIN is checked (scrypt, slow on purpose) outside any transaction, so that a flood of
    wrong PINs never holds up the registry's writers nor a connection: the session's transaction
    is ended first, so call this at its start. ``writes``: the caller will change the case's
    entries, so the registry's lock is taken (before the case is read again)."""
    number = _number(number)
    found = session.execute(
        select(SelfCase.id, SelfCase.pin_hash, SelfCase.locked_until, SelfCase.pin_failures).where(
            SelfCase.number == number
        )
    ).first()
    session.rollback()  # nothing read is acted on below without reading it again, locked
    at = now()
    if found is not None and found.locked_until is not None and found.locked_until > at:
        raise _locked(found.locked_until, at)
    fits = _pin_ok(pin, found.pin_hash if found is not None else None)
    if found is None or not fits:
        if found is not None:
            begin_write(session)
            row = session.get(SelfCase, found.id, with_for_update=True, populate_existing=True)
            if row is not None:
                row.pin_failures += 1
                if row.pin_failures >= MAX_PIN_FAILURES:
                    row.pin_failures, row.locked_until = 0, at + LOCK
                session.commit()  # the count must hold even though the caller gets an error
        raise WrongPin("that case number and PIN do not fit together")
    if writes:
        lock_registry(session)  # before the case is read again: its entries may change
    elif found.pin_failures:
        begin_write(session)  # the count of wrong PINs starts again
    locking = writes or bool(found.pin_failures)
    row = session.get(SelfCase, found.id, with_for_update=locking, populate_existing=True)
    if row is None:  # deleted since: as if it never was
        raise WrongPin("that case number and PIN do not fit together")
    if row.locked_until is not None and row.locked_until > at:
        raise _locked(row.locked_until, at)
    if row.pin_failures:
        row.pin_failures = 0
    return row


def _locked(until: datetime, at: datetime) -> CaseLocked:
    wait = int((until - at).total_seconds()) + 1
    return CaseLocked(
        f"too many wrong PINs: try again in {wait // 60 + 1} minutes", retry_after=wait
    )


def _view(session: Session, row: SelfCase) -> CaseView:
    found = session.execute(
        select(SelfCaseItem.item_id, SelfCaseItem.added_at, Item.status)
        .join(Item, Item.id == SelfCaseItem.item_id)
        .where(SelfCaseItem.case_id == row.id)
        .order_by(SelfCaseItem.added_at, SelfCaseItem.item_id)
    ).all()
    pictures = []
    for item_id, added_at, status in found:
        signals = session.execute(
            select(ItemSignal.signal_type, ItemSignal.value)
            .where(ItemSignal.item_id == item_id)
            .order_by(ItemSignal.id)
        ).all()
        pdq = next((v for k, v in signals if k == "pdq"), "")
        md5 = next((v for k, v in signals if k == "md5"), None)
        pictures.append(PictureView(pdq, md5, status, added_at))
    return CaseView(row.number, row.created_at, row.withdrawn_at, tuple(pictures))


def _add(
    session: Session,
    row: SelfCase,
    pictures: Sequence[Picture],
    max_pictures: int,
    allowlisted: Callable[[Picture], bool],
    action: str,
) -> CaseView:
    """Add the pictures to the case, audited as ``action``; the case as it is then."""
    if not pictures:
        raise InvalidInput("choose at least one picture")
    held = session.scalar(
        select(func.count()).select_from(SelfCaseItem).where(SelfCaseItem.case_id == row.id)
    )
    if (held or 0) + len(pictures) > max_pictures:
        raise TooManyPictures(
            f"a case holds at most {max_pictures} pictures; this one has {held or 0}"
        )
    inputs = _inputs(pictures)
    for n, picture in enumerate(pictures, 1):
        if allowlisted(picture):
            raise AllowListed(
                f"picture {n} is on a list of pictures known to be harmless (for example a "
                "widely shared photo), so it cannot be added. Nothing was added; remove it and "
                "try again."
            )
    set_info = self_set(session)
    result = apply_items(
        session,
        set_info.id,
        inputs,
        actor=ACTOR,
        audit_each=False,
        source=f"self-case {row.number}",
    )
    at = now()
    for outcome in result.outcomes:
        if outcome.item_id is None:
            raise InvalidInput(f"a picture could not be added: {outcome.problem}")
        status = session.scalar(select(Item.status).where(Item.id == outcome.item_id))
        if status == "withdrawn":  # a picture withdrawn before, chosen again
            enable_item(session, outcome.item_id, actor=ACTOR, note=f"case {row.number}")
        # A disabled one stays so: the hotline found it a false positive (checks' reviews).
        exists = session.get(SelfCaseItem, (row.id, outcome.item_id))
        if exists is None:
            session.add(SelfCaseItem(case_id=row.id, item_id=outcome.item_id, added_at=at))
    row.updated_at = at
    session.flush()
    audit.record(
        session,
        actor=ACTOR,
        action=action,
        subject=("self_case", row.id),
        details={"pictures": len(pictures)},
    )
    return _view(session, row)


def open_case(
    session: Session,
    pin: str,
    pictures: Sequence[Picture],
    *,
    max_pictures: int = 50,
    allowlisted: Callable[[Picture], bool] = lambda picture: False,
) -> CaseView:
    """A new case with these pictures (flushed, not committed)."""
    _check_pin(pin)
    lock_registry(session)
    at = now()
    number = f"NC-{secrets.token_hex(3).upper()}-{secrets.token_hex(3).upper()}"
    row = SelfCase(
        number=number, pin_hash=_hash_pin(pin), created_at=at, updated_at=at, pin_failures=0
    )
    session.add(row)
    session.flush()
    return _add(session, row, pictures, max_pictures, allowlisted, "selfhash.case.opened")


def view_case(session: Session, number: str, pin: str) -> CaseView:
    row = _load(session, number, pin, writes=False)
    return _view(session, row)


def add_pictures(
    session: Session,
    number: str,
    pin: str,
    pictures: Sequence[Picture],
    *,
    max_pictures: int = 50,
    allowlisted: Callable[[Picture], bool] = lambda picture: False,
) -> CaseView:
    row = _load(session, number, pin, writes=True)
    if row.withdrawn_at is not None:
        raise InvalidInput("this case was withdrawn; open a new one to add pictures")
    return _add(session, row, pictures, max_pictures, allowlisted, "selfhash.case.added")


def withdraw_case(session: Session, number: str, pin: str) -> CaseView:
    """Withdraw the case: its entries stop matching everywhere (unless another open case holds
    the same picture). Withdrawing again changes nothing."""
    row = _load(session, number, pin, writes=True)
    if row.withdrawn_at is None:
        row.withdrawn_at = row.updated_at = now()
        item_ids = session.scalars(
            select(SelfCaseItem.item_id).where(SelfCaseItem.case_id == row.id)
        ).all()
        active = session.scalars(
            select(Item.id).where(Item.id.in_(item_ids), Item.status == "active")
        ).all()
        for item_id in active:  # a disabled one stays disabled: the hotline's decision
            others = session.scalar(
                select(func.count())
                .select_from(SelfCaseItem)
                .join(SelfCase, SelfCase.id == SelfCaseItem.case_id)
                .where(
                    SelfCaseItem.item_id == item_id,
                    SelfCase.id != row.id,
                    SelfCase.withdrawn_at.is_(None),
                )
            )
            if not others:
                withdraw_item(
                    session, item_id, reason="withdrawn by the person pictured", actor=ACTOR
                )
        audit.record(
            session,
            actor=ACTOR,
            action="selfhash.case.withdrawn",
            subject=("self_case", row.id),
            details={"pictures": len(item_ids)},
        )
    session.flush()
    return _view(session, row)
