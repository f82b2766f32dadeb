"""What the operator knows of hosters by AS number (``hoster_facts``): name, size (addresses
announced, customers) and yearly turnover, the basis of a fine as a share of it.

``meldpunt hosters load FILE.csv`` takes columns ``asn,name,addresses,customers,turnover_euros,
turnover_year`` (any subset after ``asn``, in any order): each good line is loaded (an existing
ASN updated: the columns the file has replace what was known, the others stay), each bad line is
named with its number and why, and the good lines are loaded anyway.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.store import begin_write
from meldpunt.store.models import HosterFacts
from meldpunt.text import TextError, check_name

from .errors import InvalidInput, NotFound

__all__ = [
    "COLUMNS",
    "MAX_ASN",
    "MAX_LINES",
    "LoadResult",
    "check_asn",
    "euros_to_cents",
    "get_facts",
    "list_facts",
    "load_csv",
    "set_facts",
]

COLUMNS = ("asn", "name", "addresses", "customers", "turnover_euros", "turnover_year")
MAX_ASN = 2**32 - 1
#: Lines one load may hold (a national list of networks is a few thousand).
MAX_LINES = 200_000
#: The most euros meldpunt takes as an amount (a turnover, a fine): beyond any real one.
MAX_EUROS = 10**13


def check_asn(value: Any) -> int:
    """An AS number (1 .. 2^32-1), from an int or its text (``AS64500`` too)."""
    text = str(value).strip()
    if text.upper().startswith("AS"):
        text = text[2:]
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise InvalidInput(f"{str(value)[:40]!r} is not an AS number")
    asn = int(text)
    if not 0 < asn <= MAX_ASN:
        raise InvalidInput(f"AS number {asn} is out of range (1 to {MAX_ASN})")
    return asn


def euros_to_cents(value: float | int | str, what: str) -> int:
    """Euros (``1234.56``) as whole cents; refuses negative, non-finite and absurd amounts."""
    try:
        euros = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be an amount in euros, not {str(value)[:40]!r}") from None
    if not math.isfinite(euros) or euros < 0 or euros > MAX_EUROS:
        raise InvalidInput(f"{what} must be between 0 and {MAX_EUROS:,} euros")
    return round(euros * 100)


def _count(value: str, what: str) -> int:
    text = value.strip().replace("_", "")
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        raise InvalidInput(f"{what} must be a whole number, not {value[:40]!r}")
    return int(text)


def _year(value: str) -> int:
    year = _count(value, "turnover_year")
    if not 1900 <= year <= 2200:
        raise InvalidInput(f"turnover_year {year} is not a year")
    return year


def _name(value: str) -> str:
    try:
        return check_name(value.strip(), "the name", max_length=200)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None


def _values(row: dict[str, str]) -> dict[str, Any]:
    """The columns of one line that have a value, checked (``InvalidInput`` says which)."""
    found: dict[str, Any] = {}
    for column, raw in row.items():
        if column == "asn" or raw is None or not raw.strip():
            continue
        if column == "name":
            found["name"] = _name(raw)
        elif column in ("addresses", "customers"):
            found[column] = _count(raw, column)
        elif column == "turnover_euros":
            found["turnover_cents"] = euros_to_cents(raw.strip(), "turnover_euros")
        elif column == "turnover_year":
            found["turnover_year"] = _year(raw)
    return found


@dataclass(frozen=True)
class LoadResult:
    loaded: int
    problems: list[tuple[int, str]]  # (line number, why)


def _upsert(session: Session, asn: int, values: dict[str, Any]) -> HosterFacts:
    now = clock.now()
    facts = session.get(HosterFacts, asn)
    if facts is None:
        facts = HosterFacts(asn=asn, updated_at=now)
        session.add(facts)
    for key, value in values.items():
        setattr(facts, key, value)
    facts.updated_at = now
    return facts


def load_csv(session: Session, lines: Iterable[str], *, actor: str) -> LoadResult:
    """Load hoster facts from CSV text (flushed; the caller commits)."""
    reader = csv.DictReader(lines)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header or header[0] != "asn":
        raise InvalidInput(f"the first column must be asn; the columns are {', '.join(COLUMNS)}")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InvalidInput(
            f"unknown column(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; "
            f"the columns are {', '.join(COLUMNS)}"
        )
    if len(set(header)) != len(header):
        raise InvalidInput("a column appears twice")
    reader.fieldnames = header
    begin_write(session)
    loaded, problems = 0, []
    wanted: dict[int, dict[str, Any]] = {}
    for number, row in enumerate(reader, start=2):
        if number > MAX_LINES + 1:
            problems.append((number, f"more than {MAX_LINES:,} lines: the rest was not read"))
            break
        if None in row:
            problems.append((number, "more values than columns"))
            continue
        try:
            asn = check_asn(row.get("asn") or "")
            wanted.setdefault(asn, {}).update(_values(row))
            loaded += 1
        except InvalidInput as exc:
            problems.append((number, str(exc)))
    for asn, values in wanted.items():
        _upsert(session, asn, values)
    audit.record(
        session,
        actor=actor,
        action="authority.hosters_loaded",
        details={"lines": loaded, "hosters": len(wanted), "problems": len(problems)},
    )
    session.flush()
    return LoadResult(loaded, problems)


def set_facts(session: Session, asn: int, *, actor: str, **values: Any) -> HosterFacts:
    """Set some of a hoster's facts (``name``, ``addresses``, ``customers``,
    ``turnover_cents``, ``turnover_year``); None leaves a fact as it is."""
    asn = check_asn(asn)
    given = {k: v for k, v in values.items() if v is not None}
    allowed = {"name", "addresses", "customers", "turnover_cents", "turnover_year"}
    if set(given) - allowed:
        raise InvalidInput(f"unknown fact(s): {', '.join(sorted(set(given) - allowed))}")
    if "name" in given:
        given["name"] = _name(str(given["name"]))
    for key in ("addresses", "customers", "turnover_cents"):
        if key in given and (not isinstance(given[key], int) or not 0 <= given[key] < 10**17):
            raise InvalidInput(f"{key} must be a whole number of at least 0")
    if "turnover_year" in given:
        given["turnover_year"] = _year(str(given["turnover_year"]))
    if not given:
        raise InvalidInput("nothing to set: give a name, size or turnover")
    begin_write(session)
    facts = _upsert(session, asn, given)
    audit.record(
        session,
        actor=actor,
        action="authority.hoster_facts",
        subject=("hoster", asn),
        details={k: v for k, v in given.items()},
    )
    session.flush()
    return facts


def get_facts(session: Session, asn: int) -> HosterFacts:
    facts = session.get(HosterFacts, asn)
    if facts is None:
        raise NotFound(f"nothing is recorded about AS{asn}")
    return facts


def list_facts(session: Session, *, limit: int = 100, offset: int = 0) -> Sequence[HosterFacts]:
    return list(
        session.scalars(select(HosterFacts).order_by(HosterFacts.asn).limit(limit).offset(offset))
    )
