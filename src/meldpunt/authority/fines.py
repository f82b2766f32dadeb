"""Fines: an amount with its legal basis and reasons, decided on a hoster.

- With the hoster's yearly turnover recorded (``hoster_facts.turnover_cents``), a fine may be
  given as a share of it (at most ``authority_fine_max_share``); the amount is that share,
  rounded to the cent. An amount given as such may not exceed that share of the turnover either.
- Without a recorded turnover, a fine is at most ``authority_fine_max_euros``.
- ``objection_due_at = decided_at + authority_objection_days``. An objection is recorded only
  before it; its outcome (upheld, reduced with the new amount, annulled) follows. An appeal
  follows the decision on the objection, with its outcome. ``final_cents`` is what stands.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.config import Settings
from meldpunt.store.models import AbuseContact, Case, Fine, HosterFacts

from .common import (
    MAX_LEGAL_BASIS,
    MAX_REASONS,
    check_number,
    free_text,
    iso,
    locked,
    new_ref,
    publish,
    write_lock,
)
from .errors import Conflict, InvalidInput, NotFound
from .hosters import check_asn, euros_to_cents
from .vocabulary import ReviewOutcome

__all__ = [
    "decide_appeal",
    "decide_objection",
    "fine_summary",
    "get_fine",
    "impose_fine",
    "list_fines",
    "publish_fine",
    "record_appeal",
    "record_objection",
]


def impose_fine(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    reasons: str,
    legal_basis: str,
    amount_euros: float | None = None,
    share: float | None = None,
    case_id: int | None = None,
    contact_id: int | None = None,
    asn: int | None = None,
    public: bool = False,
) -> Fine:
    """Decide a fine (flushed, audited; the caller commits). The hoster is the case's, or the
    contact and/or AS number given."""
    reasons_text = free_text(reasons, "the reasons", MAX_REASONS)
    basis = free_text(legal_basis, "the legal basis", MAX_LEGAL_BASIS)
    if (amount_euros is None) == (share is None):
        raise InvalidInput("a fine is an amount or a share of the turnover: give exactly one")
    write_lock(session)
    owner = None
    if case_id is not None:
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound(f"no case {case_id}")
        contact_id = contact_id or case.contact_id
        asn = asn if asn is not None else case.asn
        owner = case.network_owner
    if contact_id is not None:
        contact = session.get(AbuseContact, contact_id)
        if contact is None:
            raise NotFound(f"no abuse contact {contact_id}")
        asn = asn if asn is not None else contact.asn
        owner = owner or contact.org
    if asn is None and contact_id is None:
        raise InvalidInput("a fine is on a hoster: give a case, a contact or an AS number")
    if asn is not None:
        asn = check_asn(asn)
    facts = session.get(HosterFacts, asn) if asn is not None else None
    turnover = facts.turnover_cents if facts is not None else None
    max_share = settings.authority_fine_max_share
    if share is not None:
        share = check_number(share, "the share of the turnover", low=0, high=1)
        if not turnover:
            raise InvalidInput(
                f"no turnover is recorded for AS{asn}: a fine as a share needs it "
                "(meldpunt hosters set ASN --turnover ...), or give an amount"
            )
        if share <= 0 or share > max_share:
            raise InvalidInput(
                f"a fine may be at most {max_share:.2%} of the turnover "
                f"(authority_fine_max_share); {share:.2%} was given"
            )
        amount = round(turnover * share)
    else:
        amount = euros_to_cents(amount_euros if amount_euros is not None else 0, "the amount")
        if amount <= 0:
            raise InvalidInput("a fine's amount must be more than 0")
        limit = (
            int(turnover * max_share)
            if turnover
            else round(settings.authority_fine_max_euros * 100)
        )
        if amount > limit:
            basis_of_limit = (
                f"{max_share:.2%} of the recorded turnover" if turnover
                else "authority_fine_max_euros (no turnover is recorded)"
            )  # fmt: skip
            raise InvalidInput(
                f"a fine on this hoster may be at most EUR {limit / 100:,.2f} ({basis_of_limit})"
            )
    if facts is not None and facts.name and not owner:
        owner = facts.name
    now = clock.now()
    fine = Fine(
        ref=new_ref("F", now),
        case_id=case_id,
        contact_id=contact_id,
        asn=asn,
        network_owner=owner,
        amount_cents=amount,
        legal_basis=basis,
        reasons=reasons_text,
        turnover_cents=turnover,
        share=share,
        decided_at=now,
        decided_by=actor,
        objection_due_at=now + timedelta(days=settings.authority_objection_days),
        final_cents=amount,
        updated_at=now,
        public=bool(public),
        published_at=now if public else None,
    )
    session.add(fine)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="authority.fine_decided",
        subject=("fine", fine.id),
        details={"ref": fine.ref, "case_id": case_id, "contact_id": contact_id, "asn": asn,
                 "amount_cents": amount, "share": share, "turnover_cents": turnover,
                 "legal_basis": (basis or "")[:500], "public": bool(public),
                 "objection_due_at": iso(fine.objection_due_at)},
    )  # fmt: skip
    session.flush()
    return fine


def _fine(session: Session, fine_id: int) -> Fine:
    write_lock(session)
    fine = session.scalars(locked(session, select(Fine).where(Fine.id == fine_id))).first()
    if fine is None:
        raise NotFound(f"no fine {fine_id}")
    return fine


def _outcome(fine: Fine, outcome: str, amount_euros: float | None, current: int) -> tuple[str, int]:
    if outcome not in tuple(ReviewOutcome):
        raise InvalidInput(f"an outcome is one of {', '.join(ReviewOutcome)}, not {outcome[:40]!r}")
    if outcome == ReviewOutcome.reduced:
        if amount_euros is None:
            raise InvalidInput("a reduced fine needs its new amount")
        amount = euros_to_cents(amount_euros, "the new amount")
        if not 0 < amount < current:
            raise InvalidInput(
                f"the new amount must be more than 0 and less than EUR {current / 100:,.2f}"
            )
        return outcome, amount
    if amount_euros is not None:
        raise InvalidInput(f"an outcome {outcome} takes no amount")
    return outcome, (0 if outcome == ReviewOutcome.annulled else current)


def record_objection(
    session: Session, fine_id: int, *, actor: str, note: str | None = None
) -> Fine:
    """The hoster objected: recorded only before ``objection_due_at``."""
    note = free_text(note, "the note", 10_000, required=False)
    fine = _fine(session, fine_id)
    now = clock.now()
    if fine.objection_at is not None:
        raise Conflict(f"an objection to fine {fine.ref} was recorded already")
    if fine.objection_due_at is not None and now > fine.objection_due_at:
        raise Conflict(
            f"the time to object to fine {fine.ref} ended at {fine.objection_due_at.isoformat()}"
        )
    fine.objection_at = fine.updated_at = now
    audit.record(session, actor=actor, action="authority.fine_objection",
                 subject=("fine", fine.id),
                 details={"ref": fine.ref, "note": (note or "")[:1000] or None})  # fmt: skip
    session.flush()
    return fine


def decide_objection(
    session: Session, fine_id: int, outcome: str, *, actor: str, amount_euros: float | None = None
) -> Fine:
    fine = _fine(session, fine_id)
    if fine.objection_at is None:
        raise Conflict(f"no objection to fine {fine.ref} was recorded")
    if fine.objection_outcome is not None:
        raise Conflict(f"the objection to fine {fine.ref} was decided already")
    outcome, final = _outcome(fine, outcome, amount_euros, fine.final_cents)
    now = clock.now()
    fine.objection_outcome, fine.objection_decided_at = outcome, now
    fine.final_cents, fine.updated_at = final, now
    audit.record(session, actor=actor, action="authority.fine_objection_decided",
                 subject=("fine", fine.id),
                 details={"ref": fine.ref, "outcome": outcome, "final_cents": final})  # fmt: skip
    session.flush()
    return fine


def record_appeal(session: Session, fine_id: int, *, actor: str, note: str | None = None) -> Fine:
    """An appeal to the court, after the decision on the objection."""
    note = free_text(note, "the note", 10_000, required=False)
    fine = _fine(session, fine_id)
    if fine.objection_outcome is None:
        raise Conflict(f"an appeal follows the decision on an objection to fine {fine.ref}")
    if fine.appeal_at is not None:
        raise Conflict(f"an appeal against fine {fine.ref} was recorded already")
    now = clock.now()
    fine.appeal_at = fine.updated_at = now
    audit.record(session, actor=actor, action="authority.fine_appeal",
                 subject=("fine", fine.id),
                 details={"ref": fine.ref, "note": (note or "")[:1000] or None})  # fmt: skip
    session.flush()
    return fine


def decide_appeal(
    session: Session, fine_id: int, outcome: str, *, actor: str, amount_euros: float | None = None
) -> Fine:
    fine = _fine(session, fine_id)
    if fine.appeal_at is None:
        raise Conflict(f"no appeal against fine {fine.ref} was recorded")
    if fine.appeal_outcome is not None:
        raise Conflict(f"the appeal against fine {fine.ref} was decided already")
    outcome, final = _outcome(fine, outcome, amount_euros, fine.final_cents)
    now = clock.now()
    fine.appeal_outcome, fine.appeal_decided_at = outcome, now
    fine.final_cents, fine.updated_at = final, now
    audit.record(session, actor=actor, action="authority.fine_appeal_decided",
                 subject=("fine", fine.id),
                 details={"ref": fine.ref, "outcome": outcome, "final_cents": final})  # fmt: skip
    session.flush()
    return fine


def publish_fine(session: Session, fine_id: int, *, actor: str) -> Fine:
    fine = _fine(session, fine_id)
    publish(session, fine, "fine", actor=actor)
    return fine


def fine_summary(fine: Fine) -> dict[str, Any]:
    return {
        "id": fine.id,
        "ref": fine.ref,
        "case_id": fine.case_id,
        "contact_id": fine.contact_id,
        "asn": fine.asn,
        "network_owner": fine.network_owner,
        "amount_cents": fine.amount_cents,
        "share": fine.share,
        "turnover_cents": fine.turnover_cents,
        "legal_basis": fine.legal_basis,
        "reasons": fine.reasons,
        "decided_at": iso(fine.decided_at),
        "decided_by": fine.decided_by,
        "objection_due_at": iso(fine.objection_due_at),
        "objection_at": iso(fine.objection_at),
        "objection_outcome": fine.objection_outcome,
        "objection_decided_at": iso(fine.objection_decided_at),
        "appeal_at": iso(fine.appeal_at),
        "appeal_outcome": fine.appeal_outcome,
        "appeal_decided_at": iso(fine.appeal_decided_at),
        "final_cents": fine.final_cents,
        "public": fine.public,
        "published_at": iso(fine.published_at),
    }


def get_fine(session: Session, fine_id: int) -> dict[str, Any]:
    fine = session.get(Fine, fine_id)
    if fine is None:
        raise NotFound(f"no fine {fine_id}")
    return fine_summary(fine)


def list_fines(
    session: Session, *, asn: int | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    query = select(Fine).order_by(Fine.decided_at.desc(), Fine.id.desc())
    if asn is not None:
        query = query.where(Fine.asn == asn)
    return [fine_summary(f) for f in session.scalars(query.limit(limit).offset(offset))]
