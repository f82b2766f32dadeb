"""The tables. Each room's tables sit here so that Alembic sees all of them in one metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from meldpunt.store.base import Base
from meldpunt.store.types import BigIntPK

__all__ = [
    "TriageCase",
    "TriageFile",
    "TriageGroup",
    "ApiKey",
    "AuditEvent",
    "CheckCount",
    "FalsePositiveReview",
    "HashSet",
    "Hit",
    "Item",
    "ItemSignal",
    "Organisation",
    "ProbingAlert",
    "RegistryChange",
    "Subscription",
    "AbuseContact",
    "AsnPrefix",
    "ItemEvent",
    "Notice",
    "NoticeItem",
    "Report",
    "ReportUrl",
    "UrlItem",
    "Case",
    "CaseItem",
    "Fine",
    "HosterFacts",
    "MonitorHoster",
    "MonitorMark",
    "MonitorPlatform",
    "Order",
    "OrderItem",
    "Penalty",
    "EntrySource",
    "Partner",
    "PartnerFollow",
    "SelfCase",
    "SelfCaseItem",
]


class AuditEvent(Base):
    """One entry of the hash-chained audit log; written only through ``meldpunt.audit``."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_subject", "subject_type", "subject_id"),
        # Never reuse an id on SQLite, even after the newest row was deleted.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    subject_type: Mapped[str | None] = mapped_column(String(100))
    subject_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def __repr__(self) -> str:
        return f"AuditEvent(id={self.id}, action={self.action!r}, actor={self.actor!r})"


# --- registry: hash sets, their items and signals, and the numbered change log -------------------

SET_KINDS = ("blocklist", "allowlist")
SET_STATES = ("active", "disabled")
ITEM_STATUSES = ("active", "disabled", "withdrawn")
CHANGE_ACTIONS = ("add", "update", "remove")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class HashSet(Base):
    """A named list of known material (or, as an allow-list, of known false positives)."""

    __tablename__ = "hash_sets"
    __table_args__ = (
        CheckConstraint(_one_of("kind", SET_KINDS), name="kind"),
        CheckConstraint(_one_of("state", SET_STATES), name="state"),
        CheckConstraint("pdq_threshold BETWEEN 0 AND 64", name="pdq_threshold"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    source_org: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="blocklist")
    default_category: Mapped[str | None] = mapped_column(String(40))
    pdq_threshold: Mapped[int] = mapped_column(Integer, default=31)
    state: Mapped[str] = mapped_column(String(20), default="active")
    # The ways of matching (``registry.vocabulary.MatchWay``) turned off for this set, by name,
    # comma-separated; empty: every way is on.
    ways_off: Mapped[str] = mapped_column(String(100), default="", server_default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: False: its entries were not assessed by the hotline (submitted by the person pictured,
    #: ``registry.selfcases``); every match says so, and platforms review before acting.
    reviewed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    def __repr__(self) -> str:
        return (
            f"HashSet(id={self.id}, name={self.name!r}, kind={self.kind!r}, state={self.state!r})"
        )


class Item(Base):
    """One picture or record in a set; its signals (MD5, SHA-1, PDQ, ...) hang off it."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint(_one_of("status", ITEM_STATUSES), name="status"),
        Index("ix_items_set_reference", "set_id", "reference"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("hash_sets.id"))
    reference: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(40))
    category_raw: Mapped[str | None] = mapped_column(String(200))
    category_scheme: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="active")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"Item(id={self.id}, set_id={self.set_id}, status={self.status!r})"


class ItemSignal(Base):
    """One signal of an item. A value appears at most once per set and signal type."""

    __tablename__ = "item_signals"
    __table_args__ = (
        UniqueConstraint("set_id", "signal_type", "value", name="uq_item_signals_set_type_value"),
        Index("ix_item_signals_type_value", "signal_type", "value"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("items.id", ondelete="CASCADE"),
        index=True,
    )
    # Denormalised from the item: the uniqueness rule and the lookups are per set.
    set_id: Mapped[int] = mapped_column(ForeignKey("hash_sets.id"))
    signal_type: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(1000))


class ItemFeatures(Base):
    """The local features of a picture (``signals.features``), kept by their SHA-256: an item's
    ``features`` signal names them, so the change log and exports carry the digest, not the
    few kilobytes."""

    __tablename__ = "item_features"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class RegistryChange(Base):
    """The change log: one row per signal that became active, changed category or stopped
    being active. ``seq`` is the change number that followers (indexes, partners) page by.

    Rows with ``item_id`` NULL concern a whole set (created, disabled, enabled)."""

    __tablename__ = "registry_changes"
    __table_args__ = (
        CheckConstraint(_one_of("action", CHANGE_ACTIONS), name="action"),
        # a set's feed for partners: its changes after N
        Index("ix_registry_changes_set_seq", "set_id", "seq"),
        # Never reuse a change number on SQLite, even after the newest row was deleted.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    set_id: Mapped[int] = mapped_column(ForeignKey("hash_sets.id"))
    # No foreign key: the row outlives a deleted item.
    item_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    action: Mapped[str] = mapped_column(String(10))
    signal_type: Mapped[str | None] = mapped_column(String(40))
    value: Mapped[str | None] = mapped_column(String(1000))
    category: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(40))


# --- checks: organisations, their keys and subscriptions, hits and their follow-up ----------------

ORG_KINDS = ("platform", "hotline", "authority", "partner", "flagger", "hoster")
KEY_ROLES = ("platform", "analyst", "admin", "flagger", "hoster", "authority")
HIT_OUTCOMES = ("blocked", "removed", "reported", "false_positive", "other")
RECHECK_STATUSES = ("pending", "gone", "online", "error")
REVIEW_RESOLUTIONS = ("confirmed", "rejected")

#: A 64-bit foreign key to a ``BigIntPK`` column (an INTEGER on SQLite, like its target).
_BIG_FK = BigInteger().with_variant(Integer(), "sqlite")


class Organisation(Base):
    """A platform, hotline, authority or partner that holds API keys."""

    __tablename__ = "organisations"
    __table_args__ = (CheckConstraint(_one_of("kind", ORG_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    #: Check answers show PDQ distances (an admin's decision: distances help recover list hashes).
    show_distances: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def __repr__(self) -> str:
        return f"Organisation(id={self.id}, name={self.name!r}, kind={self.kind!r})"


class ApiKey(Base):
    """An API key of an organisation. Only the SHA-256 of the key is kept; ``prefix`` (its first
    12 characters) is what lists show and what a person recognises it by."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_one_of("role", KEY_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    label: Mapped[str | None] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(12), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id}, org_id={self.org_id}, role={self.role!r})"


class Subscription(Base):
    """Which blocklists and categories an organisation's checks run against; NULL means all."""

    __tablename__ = "subscriptions"

    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    set_ids: Mapped[str | None] = mapped_column(Text)  # JSON list of hash set ids
    categories: Mapped[str | None] = mapped_column(Text)  # JSON list of category codes
    updated_at: Mapped[datetime]


class Hit(Base):
    """One match of a checked item against a blocklist entry, and what the platform did."""

    __tablename__ = "hits"
    __table_args__ = (
        CheckConstraint(_one_of("outcome", HIT_OUTCOMES), name="outcome"),
        CheckConstraint(_one_of("recheck_status", RECHECK_STATUSES), name="recheck_status"),
        Index("ix_hits_org_at", "org_id", "at"),
        Index("ix_hits_org_outcome", "org_id", "outcome"),
        # outcomes given or changed since a moment (the monitor's refresh, DSA statements)
        Index("ix_hits_outcome_at", "outcome_at"),
        # Never reuse a hit id on SQLite: platforms keep them.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    #: The id platforms see: random, so that it says nothing about other organisations' hits.
    public_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    at: Mapped[datetime]
    signal_type: Mapped[str] = mapped_column(String(40))
    signal_value: Mapped[str] = mapped_column(String(1000))
    distance: Mapped[int] = mapped_column(Integer)
    set_id: Mapped[int] = mapped_column(ForeignKey("hash_sets.id"))
    # No foreign key: the hit outlives a deleted item.
    item_id: Mapped[int] = mapped_column(_BIG_FK)
    category: Mapped[str] = mapped_column(String(40))
    platform_ref: Mapped[str | None] = mapped_column(String(500))
    public_url: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(20))
    outcome_at: Mapped[datetime | None]
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    report_id: Mapped[str | None] = mapped_column(String(200))
    recheck_due_at: Mapped[datetime | None] = mapped_column(index=True)
    recheck_status: Mapped[str | None] = mapped_column(String(20))
    rechecked_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"Hit(id={self.id}, org_id={self.org_id}, outcome={self.outcome!r})"


class CheckCount(Base):
    """Checks (requests) and items an organisation checked on one UTC day."""

    __tablename__ = "check_counts"

    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # 'YYYY-MM-DD', UTC
    checks: Mapped[int] = mapped_column(BigInteger)
    items: Mapped[int] = mapped_column(BigInteger)


class FalsePositiveReview(Base):
    """A platform's claim that a hit was a false positive, waiting for an analyst's decision."""

    __tablename__ = "false_positive_reviews"
    __table_args__ = (
        CheckConstraint(_one_of("resolution", REVIEW_RESOLUTIONS), name="resolution"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    hit_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("hits.id"), index=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("hash_sets.id"))
    item_id: Mapped[int] = mapped_column(_BIG_FK)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None] = mapped_column(index=True)
    resolution: Mapped[str | None] = mapped_column(String(20))
    resolved_by: Mapped[str | None] = mapped_column(String(200))


class ProbingAlert(Base):
    """A key whose checks looked like probing the lists (``checks.probing``), and its throttle."""

    __tablename__ = "probing_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    reason: Mapped[str] = mapped_column(String(40))  # 'close_queries' | 'near_threshold'
    details: Mapped[str] = mapped_column(Text)  # JSON: what was seen
    throttled_until: Mapped[datetime]


# --- the hotline: reports, the URLs they name, their timelines ------------------------------------

REPORT_KINDS = ("csam", "ncii", "other")
REPORT_SOURCES = ("form", "flagger", "import")
URL_STATES = (
    "received", "queued", "review", "police", "contact_needed", "ready", "noticed", "escalated",
    "forwarded", "offline", "not_illegal", "ignored", "failed",
)  # fmt: skip
GRADES = ("illegal", "not_illegal", "ignore", "police")
MEDIA_KINDS = ("page", "image", "video", "other")
CONTACT_KINDS = ("hoster", "police")
NOTICE_KINDS = ("notice", "renotice", "police")
NOTICE_STATUSES = ("open", "sent", "failed")


class Report(Base):
    """One report: from the public form, a trusted flagger or an import. It names URLs
    (``report_urls``); each URL is one ``UrlItem``, shared by every report that names it while
    it is open."""

    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint(_one_of("kind", REPORT_KINDS), name="kind"),
        CheckConstraint(_one_of("source", REPORT_SOURCES), name="source"),
        Index("ix_reports_org_flagger_ref", "org_id", "flagger_ref"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    #: What the reporter is shown and quotes (random, says nothing about other reports).
    ref: Mapped[str] = mapped_column(String(20), unique=True)
    #: SHA-256 of the secret in the reporter's private status link.
    status_token_hash: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(10))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    flagger_ref: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(Text)
    reporter_name: Mapped[str | None] = mapped_column(String(200))
    reporter_email: Mapped[str | None] = mapped_column(String(320))
    good_faith: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(index=True)


class UrlItem(Base):
    """A reported URL (or a picture or video found on a reported page) and everything the hotline
    learned and did about it. Its timeline is ``item_events``.

    Work that waits is a due time here: ``due_at`` (fetch, or a retry), ``next_check_at``
    (re-check while online), ``renotice_at`` and ``escalation_at``. ``lease_until`` is a
    worker's claim. ``open_key`` is the normalised URL's digest while the item is open and NULL
    once it is final, so one open item per URL (a unique index)."""

    __tablename__ = "url_items"
    __table_args__ = (
        CheckConstraint(_one_of("state", URL_STATES), name="state"),
        CheckConstraint(_one_of("kind", REPORT_KINDS), name="kind"),
        CheckConstraint(_one_of("grade", GRADES), name="grade"),
        CheckConstraint(_one_of("proposed_grade", GRADES), name="proposed_grade"),
        CheckConstraint(_one_of("media", MEDIA_KINDS), name="media"),
        # the monitor's groups: a hoster's items by the time of their first notice or report
        Index("ix_url_items_notice_hoster", "notice_asn", "first_notice_at"),
        Index("ix_url_items_hoster_created", "asn", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text)  # normalised
    url_key: Mapped[str] = mapped_column(String(64), index=True)  # SHA-256 of ``url``
    open_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    parent_id: Mapped[int | None] = mapped_column(_BIG_FK, ForeignKey("url_items.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime]
    #: Every state change moves it; the monitor follows the items that changed by it.
    updated_at: Mapped[datetime] = mapped_column(index=True)
    # work that waits
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # what was fetched: hashes only, never the bytes
    media: Mapped[str | None] = mapped_column(String(10))
    content_type: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int | None] = mapped_column(BigInteger)
    md5: Mapped[str | None] = mapped_column(String(32))
    sha1: Mapped[str | None] = mapped_column(String(40))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    pdq: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    # New material's further signals from its pixels (``registry.pictures``, JSON), kept until
    # an analyst grades it, so that its entry in the hotline's set carries them
    picture_signals: Mapped[str | None] = mapped_column(Text)
    # the grade: by a registry match or by analysts
    grade: Mapped[str | None] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(40))
    graded_by: Mapped[str | None] = mapped_column(String(200))
    graded_at: Mapped[datetime | None]
    match_set_id: Mapped[int | None] = mapped_column(ForeignKey("hash_sets.id"))
    match_entry_id: Mapped[int | None] = mapped_column(_BIG_FK)  # no FK: outlives the entry
    match_distance: Mapped[int | None] = mapped_column(Integer)
    proposed_grade: Mapped[str | None] = mapped_column(String(20))
    proposed_category: Mapped[str | None] = mapped_column(String(40))
    proposed_by: Mapped[str | None] = mapped_column(String(200))
    # where it is hosted, as attributed
    ip: Mapped[str | None] = mapped_column(String(45))
    asn: Mapped[int | None] = mapped_column(BigInteger)
    network_owner: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("abuse_contacts.id"), index=True)
    attributed_at: Mapped[datetime | None]
    # notices, re-checks, escalation
    first_seen_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    first_notice_at: Mapped[datetime | None] = mapped_column(index=True)
    #: The hoster as attributed when the first notice went (the monitor counts it there).
    notice_asn: Mapped[int | None] = mapped_column(BigInteger)
    notice_owner: Mapped[str | None] = mapped_column(String(200))
    notice_country: Mapped[str | None] = mapped_column(String(2))
    last_notice_at: Mapped[datetime | None]
    renotices: Mapped[int] = mapped_column(Integer, default=0)
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    misses: Mapped[int] = mapped_column(Integer, default=0)
    last_miss_at: Mapped[datetime | None]
    renotice_at: Mapped[datetime | None] = mapped_column(index=True)
    escalation_at: Mapped[datetime | None] = mapped_column(index=True)
    escalated_at: Mapped[datetime | None]
    #: The first of the run of misses that made the item offline (NULL while it is online):
    #: when it was first seen gone, the moment the monitor and orders' compliance count.
    gone_at: Mapped[datetime | None]
    offline_at: Mapped[datetime | None]


class ReportUrl(Base):
    """A URL as one report named it, and the item it became (or was linked to)."""

    __tablename__ = "report_urls"
    __table_args__ = (UniqueConstraint("report_id", "item_id", name="uq_report_urls_report_item"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("reports.id"))
    item_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("url_items.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    url_given: Mapped[str] = mapped_column(Text)
    referer: Mapped[str | None] = mapped_column(Text)


class ItemEvent(Base):
    """One line of an item's timeline. The disputable ones also go through the audit log."""

    __tablename__ = "item_events"
    __table_args__ = (
        Index("ix_item_events_item_at", "item_id", "at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("url_items.id"))
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(200))
    details: Mapped[str | None] = mapped_column(Text)  # JSON


# --- takedown: where material is hosted, who to tell, what was sent -------------------------------


class AsnPrefix(Base):
    """One network of the operator's IP-to-ASN table (``meldpunt attribution load``)."""

    __tablename__ = "asn_prefixes"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(49), unique=True)  # CIDR
    asn: Mapped[int] = mapped_column(BigInteger, index=True)
    org: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))


class AbuseContact(Base):
    """An abuse desk in the curated directory. It applies to a network (``asn``), a network owner
    (``org``) or host names (``domain``: the name and everything under it, for resellers and
    CDNs; a domain rule wins over the network's). Notices go only to approved contacts."""

    __tablename__ = "abuse_contacts"
    __table_args__ = (CheckConstraint(_one_of("kind", CONTACT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(10), default="hoster")
    email: Mapped[str | None] = mapped_column(String(320))
    asn: Mapped[int | None] = mapped_column(BigInteger, index=True)
    org: Mapped[str | None] = mapped_column(String(200), index=True)
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    country: Mapped[str | None] = mapped_column(String(2))
    approved: Mapped[bool] = mapped_column(Boolean, default=False)
    group_seconds: Mapped[int] = mapped_column(Integer, default=120)
    hold_weekends: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The organisation whose ``hoster`` keys may answer this contact's notices by API.
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Notice(Base):
    """One message to one abuse contact about one or more items (``notice_items``). It collects
    items while ``open`` until ``due_at`` (the contact's grouping window), then the worker sends
    it; failures move ``due_at`` on with backoff. ``message_id`` is fixed before the first
    attempt, so a message sent again after a crash is recognisably the same one."""

    __tablename__ = "notices"
    __table_args__ = (
        CheckConstraint(_one_of("kind", NOTICE_KINDS), name="kind"),
        CheckConstraint(_one_of("status", NOTICE_STATUSES), name="status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("abuse_contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), index=True)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(250), unique=True)
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    answer: Mapped[str | None] = mapped_column(Text)


class NoticeItem(Base):
    __tablename__ = "notice_items"

    notice_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("notices.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(
        _BIG_FK, ForeignKey("url_items.id"), primary_key=True, index=True
    )


# --- the authority: cases, orders, penalty payments, fines ---------------------------------------

CASE_STATES = ("open", "closed")
CASE_SOURCES = ("escalation", "authority")
ORDER_STATUSES = ("issued", "met", "unmet", "late", "withdrawn")
REVIEW_OUTCOMES = ("upheld", "reduced", "annulled")


class HosterFacts(Base):
    """What the operator knows of a network (by AS number): its size, for the monitor's figures
    per unit of size, and its turnover, the basis of a fine as a share of it."""

    __tablename__ = "hoster_facts"

    asn: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str | None] = mapped_column(String(200))
    addresses: Mapped[int | None] = mapped_column(BigInteger)  # IPv4 addresses announced
    customers: Mapped[int | None] = mapped_column(BigInteger)
    turnover_cents: Mapped[int | None] = mapped_column(BigInteger)  # yearly, in euro cents
    turnover_year: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class Case(Base):
    """The authority's file on one hoster: items the hotline escalated (``case_items``, their
    timelines the evidence), or a URL or hoster the authority took up itself."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(_one_of("state", CASE_STATES), name="state"),
        CheckConstraint(_one_of("source", CASE_SOURCES), name="source"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(30), unique=True)
    state: Mapped[str] = mapped_column(String(10), index=True)
    source: Mapped[str] = mapped_column(String(12))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("abuse_contacts.id"), index=True)
    asn: Mapped[int | None] = mapped_column(BigInteger, index=True)
    network_owner: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class CaseItem(Base):
    __tablename__ = "case_items"

    case_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("cases.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(
        _BIG_FK, ForeignKey("url_items.id"), primary_key=True, index=True
    )
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(String(200))


class Order(Base):
    """A binding order to a hoster to remove listed URLs (``order_items``) by ``deadline_at``.
    Delivery is mail (``send_due_at``, retries, ``message_id`` fixed before the first attempt)
    and the API; compliance is evaluated at ``check_at`` (the deadline, then again until every
    URL is gone); while it is ``unmet`` a penalty payment is forfeited each period
    (``penalties``, the next at ``next_penalty_at``) up to the cap."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_one_of("status", ORDER_STATUSES), name="status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(30), unique=True)
    case_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("cases.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("abuse_contacts.id"), index=True)
    asn: Mapped[int | None] = mapped_column(BigInteger, index=True)
    network_owner: Mapped[str | None] = mapped_column(String(200))
    recipient: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(12), index=True)
    legal_basis: Mapped[str] = mapped_column(Text)
    reasons: Mapped[str] = mapped_column(Text)
    issued_by: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(index=True)
    hours: Mapped[float] = mapped_column(Float)
    deadline_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(index=True)
    lease_until: Mapped[datetime | None]
    # delivery
    message_id: Mapped[str] = mapped_column(String(250), unique=True)
    send_due_at: Mapped[datetime | None] = mapped_column(index=True)
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    send_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    # compliance
    check_at: Mapped[datetime | None] = mapped_column(index=True)
    gone_at: Mapped[datetime | None]  # when the last listed URL was gone
    # penalty payments, in euro cents
    penalty_cents: Mapped[int | None] = mapped_column(BigInteger)
    penalty_period_hours: Mapped[float | None] = mapped_column(Float)
    penalty_cap_cents: Mapped[int | None] = mapped_column(BigInteger)
    penalty_total_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    next_penalty_at: Mapped[datetime | None] = mapped_column(index=True)
    # publication
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]


class OrderItem(Base):
    __tablename__ = "order_items"

    order_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("orders.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(
        _BIG_FK, ForeignKey("url_items.id"), primary_key=True, index=True
    )
    gone_at: Mapped[datetime | None]  # as compliance found it


class Penalty(Base):
    """One period's penalty payment, forfeited because the order was still unmet when the
    period began (``due_at``: the deadline, then every period after)."""

    __tablename__ = "penalties"
    __table_args__ = (
        UniqueConstraint("order_id", "seq", name="uq_penalties_order_seq"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("orders.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... within the order
    due_at: Mapped[datetime]
    forfeited_at: Mapped[datetime] = mapped_column(index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    asn: Mapped[int | None] = mapped_column(BigInteger, index=True)
    network_owner: Mapped[str | None] = mapped_column(String(200))


class Fine(Base):
    """A fine on a hoster: the amount and its basis (a share of the turnover when it is
    recorded, capped by the setting), the decision, and any objection and appeal with their
    outcome (``final_cents`` is what stands)."""

    __tablename__ = "fines"
    __table_args__ = (
        CheckConstraint(_one_of("objection_outcome", REVIEW_OUTCOMES), name="objection_outcome"),
        CheckConstraint(_one_of("appeal_outcome", REVIEW_OUTCOMES), name="appeal_outcome"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(30), unique=True)
    case_id: Mapped[int | None] = mapped_column(_BIG_FK, ForeignKey("cases.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("abuse_contacts.id"), index=True)
    asn: Mapped[int | None] = mapped_column(BigInteger, index=True)
    network_owner: Mapped[str | None] = mapped_column(String(200))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    legal_basis: Mapped[str] = mapped_column(Text)
    reasons: Mapped[str] = mapped_column(Text)
    turnover_cents: Mapped[int | None] = mapped_column(BigInteger)
    share: Mapped[float | None] = mapped_column(Float)  # of the turnover, 0..1
    decided_at: Mapped[datetime] = mapped_column(index=True)
    decided_by: Mapped[str] = mapped_column(String(200))
    objection_due_at: Mapped[datetime | None]
    objection_at: Mapped[datetime | None]
    objection_outcome: Mapped[str | None] = mapped_column(String(10))
    objection_decided_at: Mapped[datetime | None]
    appeal_at: Mapped[datetime | None]
    appeal_outcome: Mapped[str | None] = mapped_column(String(10))
    appeal_decided_at: Mapped[datetime | None]
    final_cents: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(index=True)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None]


# --- the monitor: figures kept up to date as events arrive ---------------------------------------

MONITOR_PERIODS = ("month", "quarter", "year")


class MonitorHoster(Base):
    """One hoster's figures for one period (``key`` ''  is the period's total). Rebuilt for the
    groups whose items changed (``monitor.figures``); pages read only these rows."""

    __tablename__ = "monitor_hosters"
    __table_args__ = (
        CheckConstraint(_one_of("period_kind", MONITOR_PERIODS), name="period_kind"),
        UniqueConstraint("period_kind", "period", "key", name="uq_monitor_hosters_group"),
        Index("ix_monitor_hosters_rank", "period_kind", "period", "notified"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    period_kind: Mapped[str] = mapped_column(String(10))
    period: Mapped[str] = mapped_column(String(10))  # '2026-03', '2026-Q1', '2026'
    key: Mapped[str] = mapped_column(String(250))  # '<asn>|<network owner>'
    asn: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    reported: Mapped[int] = mapped_column(BigInteger, default=0)
    notified: Mapped[int] = mapped_column(BigInteger, default=0)
    offline_24h: Mapped[int] = mapped_column(BigInteger, default=0)
    offline_48h: Mapped[int] = mapped_column(BigInteger, default=0)
    offline_later: Mapped[int] = mapped_column(BigInteger, default=0)
    online: Mapped[int] = mapped_column(BigInteger, default=0)
    median_hours: Mapped[float | None] = mapped_column(Float)
    p90_hours: Mapped[float | None] = mapped_column(Float)
    renotices: Mapped[int] = mapped_column(BigInteger, default=0)
    escalations: Mapped[int] = mapped_column(BigInteger, default=0)
    orders: Mapped[int] = mapped_column(BigInteger, default=0)
    penalties_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    computed_at: Mapped[datetime]


class MonitorPlatform(Base):
    """One platform's check-service figures for one period (``org_id`` NULL: the total)."""

    __tablename__ = "monitor_platforms"
    __table_args__ = (
        CheckConstraint(_one_of("period_kind", MONITOR_PERIODS), name="period_kind"),
        UniqueConstraint("period_kind", "period", "key", name="uq_monitor_platforms_group"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    period_kind: Mapped[str] = mapped_column(String(10))
    period: Mapped[str] = mapped_column(String(10))
    key: Mapped[str] = mapped_column(String(40))  # the organisation's id, '' for the total
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    name: Mapped[str | None] = mapped_column(String(200))
    checks: Mapped[int] = mapped_column(BigInteger, default=0)
    items: Mapped[int] = mapped_column(BigInteger, default=0)
    hits: Mapped[int] = mapped_column(BigInteger, default=0)
    blocked: Mapped[int] = mapped_column(BigInteger, default=0)
    removed: Mapped[int] = mapped_column(BigInteger, default=0)
    reported: Mapped[int] = mapped_column(BigInteger, default=0)
    false_positive: Mapped[int] = mapped_column(BigInteger, default=0)
    other: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)  # no outcome yet
    overdue: Mapped[int] = mapped_column(BigInteger, default=0)
    computed_at: Mapped[datetime]


class MonitorMark(Base):
    """How far the monitor has followed a source (``name``): a time or an id."""

    __tablename__ = "monitor_marks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime | None]
    last_id: Mapped[int | None] = mapped_column(BigInteger)


# --- exchange: partners, the sets followed from them, where received entries came from ----------


class Partner(Base):
    """Another instance (another hotline, another country) that reads our feeds, sends us its
    own, or both. Its public key verifies the pages it sends; the token it reads ours with is
    kept as a SHA-256 only."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    public_key: Mapped[str] = mapped_column(String(100))  # Ed25519, raw 32 bytes in base64
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    remote_token: Mapped[str | None] = mapped_column(String(200))  # we read their feeds with it
    send_sets: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of set names
    send_categories: Mapped[str | None] = mapped_column(Text)  # JSON list of codes; NULL: all
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class PartnerFollow(Base):
    """One of a partner's sets that we follow into a set of ours, and how far we are."""

    __tablename__ = "partner_follows"
    __table_args__ = (UniqueConstraint("partner_id", "remote_set", name="uq_partner_follows_set"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    remote_set: Mapped[str] = mapped_column(String(200))
    local_set_id: Mapped[int] = mapped_column(ForeignKey("hash_sets.id"))
    categories: Mapped[str | None] = mapped_column(Text)  # JSON list of codes taken in; NULL: all
    after_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_at: Mapped[datetime | None]  # the source's time of the last change applied
    remote_head: Mapped[int] = mapped_column(BigInteger, default=0)
    remote_head_at: Mapped[datetime | None]
    changes_applied: Mapped[int] = mapped_column(BigInteger, default=0)
    last_pull_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    next_pull_at: Mapped[datetime | None] = mapped_column(index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]


class EntrySource(Base):
    """A partner's entry that became (part of) one of our items: an item two partners both
    send has two sources."""

    __tablename__ = "entry_sources"
    __table_args__ = (
        UniqueConstraint("partner_id", "remote_set", "remote_item", name="uq_entry_sources_remote"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(
        _BIG_FK, ForeignKey("items.id", ondelete="CASCADE"), index=True
    )
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    remote_set: Mapped[str] = mapped_column(String(200))
    remote_item: Mapped[int] = mapped_column(BigInteger)
    remote_seq: Mapped[int] = mapped_column(BigInteger)  # the change that last touched it
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]


# --- self-hashing: a person's own pictures, hashed on their device ------------------------------


class SelfCase(Base):
    """A person's case: the hashes of their own pictures, reachable with a number and the PIN
    they chose (kept as scrypt only)."""

    __tablename__ = "self_cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]


class SelfCaseItem(Base):
    """An item (the hashes of one picture) of a case."""

    __tablename__ = "self_case_items"

    case_id: Mapped[int] = mapped_column(ForeignKey("self_cases.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(
        _BIG_FK, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime]


# --- triage: seized collections split into known, new and ignorable material ---------------------

TRIAGE_CASE_STATES = ("running", "done")
TRIAGE_CLASSES = ("known", "ignorable", "new", "error")
TRIAGE_KINDS = ("picture", "video", "archive", "other")
TRIAGE_DECISIONS = ("illegal", "not_illegal")


class TriageCase(Base):
    """One scan of a collection. Its files are recorded as they are hashed, so a run that was
    interrupted continues where it stopped."""

    __tablename__ = "triage_cases"
    __table_args__ = (
        CheckConstraint(_one_of("state", TRIAGE_CASE_STATES), name="state"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(10))
    sources: Mapped[str] = mapped_column(Text)  # JSON list of the sources as given
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # time spent, all runs
    runs: Mapped[int] = mapped_column(Integer, default=0)
    registry_seq: Mapped[int | None] = mapped_column(BigInteger)  # the registry as matched


class TriageFile(Base):
    """One file of a case (an archive's member labelled ``ARCHIVE/MEMBER``)."""

    __tablename__ = "triage_files"
    __table_args__ = (
        CheckConstraint(_one_of("kind", TRIAGE_KINDS), name="kind"),
        CheckConstraint(_one_of("file_class", TRIAGE_CLASSES), name="file_class"),
        UniqueConstraint("case_id", "path_key", name="uq_triage_files_path"),
        Index("ix_triage_files_class", "case_id", "file_class"),
        Index("ix_triage_files_group", "case_id", "group_number"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("triage_cases.id"))
    path: Mapped[str] = mapped_column(Text)
    path_key: Mapped[str] = mapped_column(String(64))  # SHA-256 of the path: unique per case
    kind: Mapped[str] = mapped_column(String(10))
    file_class: Mapped[str] = mapped_column(String(10))
    size: Mapped[int | None] = mapped_column(BigInteger)
    md5: Mapped[str | None] = mapped_column(String(32))
    sha1: Mapped[str | None] = mapped_column(String(40))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    pdq: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    pdq_dihedral: Mapped[str | None] = mapped_column(Text)  # 8 hashes, space-separated
    frames: Mapped[str | None] = mapped_column(Text)  # JSON [[pdq, quality, seconds], ...]
    frames_matched: Mapped[int | None] = mapped_column(Integer)
    matches: Mapped[str | None] = mapped_column(Text)  # JSON list of matches
    group_number: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]


class TriageGroup(Base):
    """New material within the PDQ threshold of each other (exact copies collapsed), with a
    reviewer's decision once made."""

    __tablename__ = "triage_groups"
    __table_args__ = (
        CheckConstraint(_one_of("decision", TRIAGE_DECISIONS), name="decision"),
        UniqueConstraint("case_id", "number", name="uq_triage_groups_number"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(_BIG_FK, ForeignKey("triage_cases.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    files: Mapped[int] = mapped_column(Integer)
    distinct_files: Mapped[int] = mapped_column(Integer)  # different SHA-256 values
    representative: Mapped[str] = mapped_column(Text)  # its path
    decision: Mapped[str | None] = mapped_column(String(12))
    category: Mapped[str | None] = mapped_column(String(30))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    exported_to: Mapped[str | None] = mapped_column(String(200))
    exported_at: Mapped[datetime | None]
