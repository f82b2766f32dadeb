"""Statements of reasons for the EU DSA Transparency Database (Art. 17 and 24(5) DSA), made from
what platforms did with their hits (``docs/dsa.md``).

The database's schema is kept here as data: every field it accepts (``FIELDS``), the allowed
values of each enumerated field, the limits of each text field and the rules between fields
(an illegal-content ground needs its legal ground and explanation, ``..._OTHER`` needs its
text, at least one kind of decision). ``validate_statement`` checks a statement against it and
names the first field that does not fit; every statement is validated before it leaves
meldpunt. The values come from the Transparency Database's own source (its ``Statement``
model and the rules of its multiple-statements endpoint, which takes 1 to 100 statements);
``docs/dsa.md`` names the sources.

A hit becomes a statement when the platform recorded ``removed`` (the content was removed) or
``blocked`` (access to it was disabled) and its category says what illegal content it is
(child sexual abuse material, or a non-consensual intimate image). Other outcomes and
categories get no statement; ``statement_counts`` says how many and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from meldpunt import errors
from meldpunt.checks.orgs import OrgRef, load_org_row
from meldpunt.checks.vocabulary import Outcome
from meldpunt.registry.categories import CODES
from meldpunt.store.models import Hit, Organisation

__all__ = [
    "ACCOUNT_TYPES",
    "AUTOMATED_DECISIONS",
    "AutomatedDecision",
    "BATCH_LIMIT",
    "CATEGORIES",
    "CONTENT_TYPES",
    "DECISION_ACCOUNTS",
    "DECISION_GROUNDS",
    "DECISION_MONETARIES",
    "DECISION_PROVISIONS",
    "DECISION_VISIBILITIES",
    "FIELDS",
    "KEYWORDS",
    "MAX_RANGE_DAYS",
    "SOURCE_TYPES",
    "TERRITORIAL_SCOPE",
    "YES_NO",
    "Batch",
    "DsaError",
    "InvalidInput",
    "InvalidStatement",
    "StatementOptions",
    "batches",
    "date_range",
    "statement_counts",
    "statement_for",
    "statement_page",
    "validate_statement",
]

# --- the Transparency Database's schema, as data ----------------------------------------------

#: The most statements one call of ``POST /api/v1/statements`` takes (``between:1,100``).
BATCH_LIMIT = 100

DECISION_VISIBILITIES: tuple[str, ...] = (
    "DECISION_VISIBILITY_CONTENT_REMOVED",
    "DECISION_VISIBILITY_CONTENT_DISABLED",
    "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
    "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED",
    "DECISION_VISIBILITY_CONTENT_LABELLED",
    "DECISION_VISIBILITY_OTHER",
)
DECISION_MONETARIES: tuple[str, ...] = (
    "DECISION_MONETARY_SUSPENSION",
    "DECISION_MONETARY_TERMINATION",
    "DECISION_MONETARY_OTHER",
)
DECISION_PROVISIONS: tuple[str, ...] = (
    "DECISION_PROVISION_PARTIAL_SUSPENSION",
    "DECISION_PROVISION_TOTAL_SUSPENSION",
    "DECISION_PROVISION_PARTIAL_TERMINATION",
    "DECISION_PROVISION_TOTAL_TERMINATION",
)
DECISION_ACCOUNTS: tuple[str, ...] = ("DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED")
ACCOUNT_TYPES: tuple[str, ...] = ("ACCOUNT_TYPE_BUSINESS", "ACCOUNT_TYPE_PRIVATE")
DECISION_GROUNDS: tuple[str, ...] = (
    "DECISION_GROUND_ILLEGAL_CONTENT",
    "DECISION_GROUND_INCOMPATIBLE_CONTENT",
)
YES_NO: tuple[str, ...] = ("Yes", "No")
CONTENT_TYPES: tuple[str, ...] = (
    "CONTENT_TYPE_APP",
    "CONTENT_TYPE_AUDIO",
    "CONTENT_TYPE_IMAGE",
    "CONTENT_TYPE_PRODUCT",
    "CONTENT_TYPE_SYNTHETIC_MEDIA",
    "CONTENT_TYPE_TEXT",
    "CONTENT_TYPE_VIDEO",
    "CONTENT_TYPE_OTHER",
)
CATEGORIES: tuple[str, ...] = (
    "STATEMENT_CATEGORY_ANIMAL_WELFARE",
    "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
    "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
    "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
    "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
    "STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR",
    "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT",
    "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
    "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
    "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
    "STATEMENT_CATEGORY_SELF_HARM",
    "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE",
    "STATEMENT_CATEGORY_UNSAFE_AND_ILLEGAL_PRODUCTS",
    "STATEMENT_CATEGORY_VIOLENCE",
)
KEYWORDS: tuple[str, ...] = (
    "KEYWORD_ANIMAL_HARM",
    "KEYWORD_ADULT_SEXUAL_MATERIAL",
    "KEYWORD_AGE_SPECIFIC_RESTRICTIONS_MINORS",
    "KEYWORD_AGE_SPECIFIC_RESTRICTIONS",
    "KEYWORD_BIOMETRIC_DATA_BREACH",
    "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
    "KEYWORD_CONTENT_PROMOTING_EATING_DISORDERS",
    "KEYWORD_COORDINATED_HARM",
    "KEYWORD_COPYRIGHT_INFRINGEMENT",
    "KEYWORD_DANGEROUS_TOYS",
    "KEYWORD_DATA_FALSIFICATION",
    "KEYWORD_DEFAMATION",
    "KEYWORD_DESIGN_INFRINGEMENT",
    "KEYWORD_DISCRIMINATION",
    "KEYWORD_DISINFORMATION",
    "KEYWORD_FOREIGN_INFORMATION_MANIPULATION",
    "KEYWORD_GENDER_BASED_VIOLENCE",
    "KEYWORD_GEOGRAPHIC_INDICATIONS_INFRINGEMENT",
    "KEYWORD_GEOGRAPHICAL_REQUIREMENTS",
    "KEYWORD_GOODS_SERVICES_NOT_PERMITTED",
    "KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS",
    "KEYWORD_HATE_SPEECH",
    "KEYWORD_HUMAN_EXPLOITATION",
    "KEYWORD_HUMAN_TRAFFICKING",
    "KEYWORD_ILLEGAL_ORGANIZATIONS",
    "KEYWORD_IMAGE_BASED_SEXUAL_ABUSE",
    "KEYWORD_IMPERSONATION_ACCOUNT_HIJACKING",
    "KEYWORD_INAUTHENTIC_ACCOUNTS",
    "KEYWORD_INAUTHENTIC_LISTINGS",
    "KEYWORD_INAUTHENTIC_USER_REVIEWS",
    "KEYWORD_INCITEMENT_VIOLENCE_HATRED",
    "KEYWORD_INSUFFICIENT_INFORMATION_TRADERS",
    "KEYWORD_LANGUAGE_REQUIREMENTS",
    "KEYWORD_MISINFORMATION",
    "KEYWORD_MISSING_PROCESSING_GROUND",
    "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING",
    "KEYWORD_NON_CONSENSUAL_ITEMS_DEEPFAKE",
    "KEYWORD_NUDITY",
    "KEYWORD_ONLINE_BULLYING_INTIMIDATION",
    "KEYWORD_PATENT_INFRINGEMENT",
    "KEYWORD_PHISHING",
    "KEYWORD_PYRAMID_SCHEMES",
    "KEYWORD_REGULATED_GOODS_SERVICES",
    "KEYWORD_RIGHT_TO_BE_FORGOTTEN",
    "KEYWORD_RISK_ENVIRONMENTAL_DAMAGE",
    "KEYWORD_RISK_PUBLIC_HEALTH",
    "KEYWORD_SELF_MUTILATION",
    "KEYWORD_STALKING",
    "KEYWORD_SUICIDE",
    "KEYWORD_TERRORIST_CONTENT",
    "KEYWORD_TRADE_SECRET_INFRINGEMENT",
    "KEYWORD_TRADEMARK_INFRINGEMENT",
    "KEYWORD_UNLAWFUL_SALE_ANIMALS",
    "KEYWORD_UNSAFE_CHALLENGES",
    "KEYWORD_OTHER",
)
SOURCE_TYPES: tuple[str, ...] = (
    "SOURCE_ARTICLE_16",
    "SOURCE_TRUSTED_FLAGGER",
    "SOURCE_TYPE_OTHER_NOTIFICATION",
    "SOURCE_VOLUNTARY",
)


class AutomatedDecision(StrEnum):
    """How automated a platform's decision was (the only field the hits cannot tell)."""

    AUTOMATED_DECISION_FULLY = "AUTOMATED_DECISION_FULLY"
    AUTOMATED_DECISION_PARTIALLY = "AUTOMATED_DECISION_PARTIALLY"
    AUTOMATED_DECISION_NOT_AUTOMATED = "AUTOMATED_DECISION_NOT_AUTOMATED"


AUTOMATED_DECISIONS: tuple[str, ...] = tuple(AutomatedDecision)
#: The countries a decision may apply in: the European Economic Area.
TERRITORIAL_SCOPE: tuple[str, ...] = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip

#: Every field a statement may carry, in the order meldpunt writes them.
FIELDS: tuple[str, ...] = (
    "decision_visibility",
    "decision_visibility_other",
    "end_date_visibility_restriction",
    "decision_monetary",
    "decision_monetary_other",
    "end_date_monetary_restriction",
    "decision_provision",
    "end_date_service_restriction",
    "decision_account",
    "end_date_account_restriction",
    "account_type",
    "decision_ground",
    "decision_ground_reference_url",
    "illegal_content_legal_ground",
    "illegal_content_explanation",
    "incompatible_content_ground",
    "incompatible_content_explanation",
    "incompatible_content_illegal",
    "category",
    "category_addition",
    "category_specification",
    "category_specification_other",
    "content_type",
    "content_type_other",
    "content_language",
    "content_date",
    "territorial_scope",
    "application_date",
    "decision_facts",
    "source_type",
    "source_identity",
    "automated_detection",
    "automated_decision",
    "puid",
)
REQUIRED: tuple[str, ...] = (
    "decision_ground",
    "category",
    "content_type",
    "content_date",
    "application_date",
    "decision_facts",
    "source_type",
    "automated_detection",
    "automated_decision",
    "puid",
)
#: Text fields and their longest allowed length.
TEXT_LIMITS: Mapping[str, int] = {
    "decision_visibility_other": 500,
    "decision_monetary_other": 500,
    "decision_ground_reference_url": 500,
    "illegal_content_legal_ground": 500,
    "illegal_content_explanation": 2000,
    "incompatible_content_ground": 500,
    "incompatible_content_explanation": 2000,
    "category_specification_other": 500,
    "content_type_other": 500,
    "decision_facts": 5000,
    "source_identity": 500,
    "puid": 500,
}
#: Enumerated single values.
ONE_OF: Mapping[str, tuple[str, ...]] = {
    "decision_monetary": DECISION_MONETARIES,
    "decision_provision": DECISION_PROVISIONS,
    "decision_account": DECISION_ACCOUNTS,
    "account_type": ACCOUNT_TYPES,
    "decision_ground": DECISION_GROUNDS,
    "incompatible_content_illegal": YES_NO,
    "category": CATEGORIES,
    "source_type": SOURCE_TYPES,
    "automated_detection": YES_NO,
    "automated_decision": AUTOMATED_DECISIONS,
}
#: Enumerated lists.
LIST_OF: Mapping[str, tuple[str, ...]] = {
    "decision_visibility": DECISION_VISIBILITIES,
    "category_addition": CATEGORIES,
    "category_specification": KEYWORDS,
    "content_type": CONTENT_TYPES,
    "territorial_scope": TERRITORIAL_SCOPE,
}
#: Date fields, ``YYYY-MM-DD``, and their bounds.
DATE_BOUNDS: Mapping[str, tuple[date | None, date]] = {
    "content_date": (date(2000, 1, 1), date(2038, 1, 1)),
    "application_date": (date(2020, 1, 1), date(2038, 1, 1)),
    "end_date_visibility_restriction": (None, date(2038, 1, 1)),
    "end_date_monetary_restriction": (None, date(2038, 1, 1)),
    "end_date_service_restriction": (None, date(2038, 1, 1)),
    "end_date_account_restriction": (None, date(2038, 1, 1)),
}
_DECISIONS = ("decision_visibility", "decision_monetary", "decision_provision", "decision_account")
_GROUND_FIELDS = {
    "DECISION_GROUND_ILLEGAL_CONTENT": (
        "illegal_content_legal_ground",
        "illegal_content_explanation",
    ),
    "DECISION_GROUND_INCOMPATIBLE_CONTENT": (
        "incompatible_content_ground",
        "incompatible_content_explanation",
    ),
}
_OTHER_NEEDS = (
    ("decision_visibility", "DECISION_VISIBILITY_OTHER", "decision_visibility_other"),
    ("decision_monetary", "DECISION_MONETARY_OTHER", "decision_monetary_other"),
    ("content_type", "CONTENT_TYPE_OTHER", "content_type_other"),
    ("category_specification", "KEYWORD_OTHER", "category_specification_other"),
)
PUID = re.compile(r"[A-Za-z0-9_-]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_URL = re.compile(r"https?://[^\s]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# --- errors -------------------------------------------------------------------------------------


class DsaError(errors.MeldpuntError):
    """Base class for the errors of the DSA exports."""


class InvalidInput(DsaError, errors.InvalidInput):
    """A request the exports cannot answer (a bad date, a range too long, a bad page)."""


class InvalidStatement(DsaError, errors.InvalidInput):
    """A statement that does not fit the Transparency Database's schema; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"statement field {field!r}: {message}")
        self.field = field


# --- the validator ------------------------------------------------------------------------------


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def validate_statement(statement: Mapping[str, Any]) -> None:
    """Check one statement against the schema; raise ``InvalidStatement`` naming the field."""
    for name in statement:
        if name not in FIELDS:
            raise InvalidStatement(name, "not a field of the Transparency Database's statements")
    for name in REQUIRED:
        if _empty(statement.get(name)):
            raise InvalidStatement(name, "required")
    if all(_empty(statement.get(name)) for name in _DECISIONS):
        raise InvalidStatement(
            "decision_visibility",
            "one of decision_visibility, decision_monetary, decision_provision or "
            "decision_account is required",
        )
    for name, allowed in ONE_OF.items():
        value = statement.get(name)
        if value is not None and value not in allowed:
            raise InvalidStatement(name, f"{value!r} is not one of {', '.join(allowed)}")
    for name, allowed in LIST_OF.items():
        value = statement.get(name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidStatement(name, "must be a list of strings")
        for one in value:
            if one not in allowed:
                raise InvalidStatement(name, f"{one!r} is not one of {', '.join(allowed)}")
        if len(set(value)) != len(value):
            raise InvalidStatement(name, "names a value twice")
    if _empty(statement.get("content_type")):
        raise InvalidStatement("content_type", "required")
    for name, limit in TEXT_LIMITS.items():
        value = statement.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidStatement(name, "must be text")
        if len(value) > limit:
            raise InvalidStatement(name, f"longer than {limit} characters ({len(value)})")
        if _CONTROL.search(value):
            raise InvalidStatement(name, "contains a control character")
    for name, (low, high) in DATE_BOUNDS.items():
        value = statement.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise InvalidStatement(name, "must be a date as YYYY-MM-DD")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise InvalidStatement(name, f"{value!r} is not a date") from None
        if (low is not None and day < low) or day > high:
            raise InvalidStatement(name, f"must lie between {low or 'any day'} and {high}")
    ground = statement["decision_ground"]
    for own_ground, names in _GROUND_FIELDS.items():
        for name in names:
            if own_ground == ground and _empty(statement.get(name)):
                raise InvalidStatement(name, f"required when decision_ground is {ground}")
            if own_ground != ground and not _empty(statement.get(name)):
                raise InvalidStatement(name, f"only for decision_ground {own_ground}")
    if ground != "DECISION_GROUND_INCOMPATIBLE_CONTENT" and not _empty(
        statement.get("incompatible_content_illegal")
    ):
        raise InvalidStatement(
            "incompatible_content_illegal",
            "only for decision_ground DECISION_GROUND_INCOMPATIBLE_CONTENT",
        )
    for name, other_value, other_field in _OTHER_NEEDS:
        value = statement.get(name)
        chosen = other_value in value if isinstance(value, list) else value == other_value
        if chosen and _empty(statement.get(other_field)):
            raise InvalidStatement(other_field, f"required when {name} is {other_value}")
    if not PUID.fullmatch(statement["puid"]):
        raise InvalidStatement("puid", "only letters, digits, '-' and '_' are allowed")
    url = statement.get("decision_ground_reference_url")
    if url is not None and not _URL.fullmatch(url):
        raise InvalidStatement("decision_ground_reference_url", "must be an http(s) URL")


# --- meldpunt's facts to statements ---------------------------------------------------------------

#: What a platform's outcome says it did, as the database's visibility decision.
VISIBILITY_OF_OUTCOME: Mapping[str, str] = {
    Outcome.removed: "DECISION_VISIBILITY_CONTENT_REMOVED",
    Outcome.blocked: "DECISION_VISIBILITY_CONTENT_DISABLED",
}
ACTED_OUTCOMES: tuple[str, ...] = tuple(VISIBILITY_OF_OUTCOME)


@dataclass(frozen=True)
class _Kind:
    category: str
    keyword: str
    legal_ground: str
    explanation: str


_CSAM = _Kind(
    "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
    "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
    "Directive 2011/93/EU, Article 5 (offences concerning child pornography), and the national "
    "criminal law that implements it",
    "The item matched an entry of a hash list of known child sexual abuse material, classified "
    "{label}. Hosting or distributing such material is a criminal offence.",
)
_NCII = _Kind(
    "STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR",
    "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING",
    "Directive (EU) 2024/1385, Article 5 (non-consensual sharing of intimate or manipulated "
    "material), and the national criminal law that applies",
    "The item matched an entry of a hash list of known non-consensual intimate images, "
    "classified {label}. Making such images accessible without consent is a criminal offence.",
)
#: The registry's categories that make a statement, and what they are in the database's terms.
KIND_OF_CATEGORY: Mapping[str, _Kind] = {
    "csam_baseline": _CSAM,
    "csam_national": _CSAM,
    "csam": _CSAM,
    "ncii": _NCII,
}
#: Why the other categories make none (a statement on illegal-content grounds needs illegal
#: content; one on terms-and-conditions grounds needs the platform's own contractual ground).
NO_STATEMENT_BECAUSE: Mapping[str, str] = {
    code: (
        "not illegal content by its category; a statement on the platform's terms and "
        "conditions needs the platform's own contractual ground"
    )
    for code in CODES
    if code not in KIND_OF_CATEGORY
}
STATEMENT_CATEGORIES: tuple[str, ...] = tuple(KIND_OF_CATEGORY)


@dataclass(frozen=True)
class StatementOptions:
    """What the hits do not say and the platform decides: how automated its decision was, what
    made it look (meldpunt's hash check is its own initiative), where the decision applies."""

    automated_decision: str = "AUTOMATED_DECISION_PARTIALLY"
    source_type: str = "SOURCE_VOLUNTARY"
    territorial_scope: tuple[str, ...] = TERRITORIAL_SCOPE

    def __post_init__(self) -> None:
        if self.automated_decision not in AUTOMATED_DECISIONS:
            raise InvalidInput(
                f"automated_decision {self.automated_decision!r} is not one of "
                f"{', '.join(AUTOMATED_DECISIONS)}"
            )
        if self.source_type not in SOURCE_TYPES:
            raise InvalidInput(
                f"source_type {self.source_type!r} is not one of {', '.join(SOURCE_TYPES)}"
            )
        unknown = [c for c in self.territorial_scope if c not in TERRITORIAL_SCOPE]
        if unknown or not self.territorial_scope:
            raise InvalidInput(
                f"territorial_scope: {', '.join(unknown) or 'empty'}; use EEA country codes"
            )


def _content_type(signal_type: str) -> str:
    return "CONTENT_TYPE_VIDEO" if "video" in signal_type.lower() else "CONTENT_TYPE_IMAGE"


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def puid_of(hit: Hit, first_with_ref: bool) -> str:
    """The platform's own reference when the database accepts it as a PUID and no earlier
    statement of this platform used it; else the hit's public id (``hit-<id>``)."""
    ref = (hit.platform_ref or "").strip()
    if ref and first_with_ref and PUID.fullmatch(ref) and len(ref) <= 500:
        return ref
    return f"hit-{hit.public_id}"


def statement_for(
    hit: Hit, options: StatementOptions | None = None, *, first_with_ref: bool = True
) -> dict[str, Any]:
    """The statement of reasons for one acted-on hit, validated; ``InvalidInput`` when the hit's
    outcome or category makes none."""
    options = options or StatementOptions()
    visibility = VISIBILITY_OF_OUTCOME.get(hit.outcome or "")
    if visibility is None or hit.outcome_at is None:
        raise InvalidInput(f"hit {hit.public_id}: outcome {hit.outcome!r} makes no statement")
    kind = KIND_OF_CATEGORY.get(hit.category)
    if kind is None:
        why = NO_STATEMENT_BECAUSE.get(hit.category, "an unknown category")
        raise InvalidInput(f"hit {hit.public_id}: category {hit.category!r} makes none: {why}")
    label = CODES[hit.category].label
    how = "exactly" if hit.distance == 0 else f"within a perceptual distance of {hit.distance}"
    action = "removed it" if hit.outcome == Outcome.removed else "disabled access to it"
    facts = (
        f"An automated hash check matched the item {how} against a hash list entry classified "
        f"{label} ({hit.signal_type} signal) on {_day(hit.at)}. The platform {action} on "
        f"{_day(hit.outcome_at)}."
    )
    statement: dict[str, Any] = {
        "decision_visibility": [visibility],
        "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT",
        "illegal_content_legal_ground": kind.legal_ground,
        "illegal_content_explanation": kind.explanation.format(label=label),
        "category": kind.category,
        "category_specification": [kind.keyword],
        "content_type": [_content_type(hit.signal_type)],
        "content_date": _day(hit.at),
        "territorial_scope": list(options.territorial_scope),
        "application_date": _day(hit.outcome_at),
        "decision_facts": facts,
        "source_type": options.source_type,
        "automated_detection": "Yes",  # a hash match
        "automated_decision": options.automated_decision,
        "puid": puid_of(hit, first_with_ref),
    }
    validate_statement(statement)
    return statement


# --- selecting a platform's statements --------------------------------------------------------

#: The longest date range one export covers.
MAX_RANGE_DAYS = 366


def _parse_moment(text: str | date | datetime, name: str) -> datetime:
    if isinstance(text, datetime):
        moment = text
    elif isinstance(text, date):
        moment = datetime.combine(text, time.min)
    else:
        value = str(text).strip()
        if not value or len(value) > 40:
            raise InvalidInput(f"{name}: give a date as YYYY-MM-DD (or an ISO date and time)")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not date(2000, 1, 1) <= moment.astimezone(UTC).date() <= date(2100, 1, 1):
        raise InvalidInput(f"{name}: {moment.date()} lies outside 2000-01-01 .. 2100-01-01")
    return moment.astimezone(UTC)


def date_range(
    since: str | date | datetime, until: str | date | datetime
) -> tuple[datetime, datetime]:
    """``[since, until)`` in UTC from dates (midnight UTC) or ISO moments; at most
    ``MAX_RANGE_DAYS`` long, ``until`` after ``since``."""
    start, end = _parse_moment(since, "since"), _parse_moment(until, "until")
    if end <= start:
        raise InvalidInput(f"until ({end.isoformat()}) must lie after since ({start.isoformat()})")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise InvalidInput(
            f"the range is {(end - start).days} days; export at most {MAX_RANGE_DAYS} days at once"
        )
    return start, end


def _org_id(session: Session, org: OrgRef | Organisation) -> int:
    if isinstance(org, Organisation):
        return org.id
    row = load_org_row(session, org)
    return row.id


def _acted(org_id: int, start: datetime, end: datetime) -> Any:
    return and_(
        Hit.org_id == org_id,
        Hit.outcome.in_(ACTED_OUTCOMES),
        Hit.outcome_at >= start,
        Hit.outcome_at < end,
    )


@dataclass(frozen=True)
class Batch:
    """One batch of statements (``{"statements": [...]}``), numbered from 1."""

    number: int
    statements: list[dict[str, Any]]
    has_next: bool

    def body(self) -> dict[str, Any]:
        return {"statements": self.statements}


def _first_refs(session: Session, org_id: int, refs: Sequence[str]) -> dict[str, int]:
    """Per platform reference, the row id of the platform's first acted-on hit that names it."""
    found: dict[str, int] = {}
    unique = sorted(set(refs))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        query = (
            select(Hit.platform_ref, func.min(Hit.id))
            .where(
                Hit.org_id == org_id,
                Hit.outcome.in_(ACTED_OUTCOMES),
                Hit.category.in_(STATEMENT_CATEGORIES),
                Hit.platform_ref.in_(chunk),
            )
            .group_by(Hit.platform_ref)
        )
        found.update({ref: first for ref, first in session.execute(query) if ref is not None})
    return found


def _statements(
    session: Session, org_id: int, hits: Sequence[Hit], options: StatementOptions
) -> list[dict[str, Any]]:
    refs = [h.platform_ref for h in hits if h.platform_ref]
    first = _first_refs(session, org_id, refs) if refs else {}
    return [
        statement_for(h, options, first_with_ref=first.get(h.platform_ref or "") == h.id)
        for h in hits
    ]


def statement_page(
    session: Session,
    org: OrgRef | Organisation,
    since: str | date | datetime,
    until: str | date | datetime,
    page: int = 1,
    options: StatementOptions | None = None,
) -> Batch:
    """Batch number ``page`` (from 1) of one platform's statements for hits it acted on in
    ``[since, until)``, ordered by when it acted, then by hit: the same page always holds the
    same statements while no outcome changes."""
    if not isinstance(page, int) or page < 1 or page > 10**7:
        raise InvalidInput(f"page {page!r}: give a number from 1")
    options = options or StatementOptions()
    start, end = date_range(since, until)
    org_id = _org_id(session, org)
    query = (
        select(Hit)
        .where(_acted(org_id, start, end), Hit.category.in_(STATEMENT_CATEGORIES))
        .order_by(Hit.outcome_at, Hit.id)
        .offset((page - 1) * BATCH_LIMIT)
        .limit(BATCH_LIMIT + 1)
    )
    hits = list(session.scalars(query))
    return Batch(
        page, _statements(session, org_id, hits[:BATCH_LIMIT], options), len(hits) > BATCH_LIMIT
    )


def batches(
    session: Session,
    org: OrgRef | Organisation,
    since: str | date | datetime,
    until: str | date | datetime,
    options: StatementOptions | None = None,
) -> Iterator[Batch]:
    """Every batch of one platform's statements in the range, in order (keyset paging: memory
    stays at one batch however many there are)."""
    options = options or StatementOptions()
    start, end = date_range(since, until)
    org_id = _org_id(session, org)
    after: tuple[datetime, int] | None = None
    number = 0
    while True:
        query = select(Hit).where(
            _acted(org_id, start, end), Hit.category.in_(STATEMENT_CATEGORIES)
        )
        if after is not None:
            query = query.where(
                (Hit.outcome_at > after[0]) | (and_(Hit.outcome_at == after[0], Hit.id > after[1]))
            )
        hits = list(session.scalars(query.order_by(Hit.outcome_at, Hit.id).limit(BATCH_LIMIT + 1)))
        if not hits:
            return
        number += 1
        chunk = hits[:BATCH_LIMIT]
        yield Batch(number, _statements(session, org_id, chunk, options), len(hits) > BATCH_LIMIT)
        if len(hits) <= BATCH_LIMIT:
            return
        last = chunk[-1]
        assert last.outcome_at is not None
        after = (last.outcome_at, last.id)


@dataclass
class StatementCounts:
    """How many of a platform's outcomes in the range make statements, and why the rest do not."""

    statements: int = 0
    batches: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def plain(self) -> dict[str, Any]:
        return {"statements": self.statements, "batches": self.batches, "skipped": self.skipped}


def statement_counts(
    session: Session,
    org: OrgRef | Organisation,
    since: str | date | datetime,
    until: str | date | datetime,
) -> StatementCounts:
    """Statements and batches in the range, and the outcomes recorded in it that make none
    (``"outcome reported"``, ``"category comparison"``, ...)."""
    start, end = date_range(since, until)
    org_id = _org_id(session, org)
    query = (
        select(Hit.outcome, Hit.category, func.count())
        .where(Hit.org_id == org_id, Hit.outcome_at >= start, Hit.outcome_at < end)
        .group_by(Hit.outcome, Hit.category)
    )
    counts = StatementCounts()
    for outcome, category, number in session.execute(query):
        if outcome not in ACTED_OUTCOMES:
            reason = f"outcome {outcome}"
        elif category not in KIND_OF_CATEGORY:
            reason = f"category {category}"
        else:
            counts.statements += number
            continue
        counts.skipped[reason] = counts.skipped.get(reason, 0) + number
    counts.skipped = dict(sorted(counts.skipped.items()))
    counts.batches = -(-counts.statements // BATCH_LIMIT)
    return counts
