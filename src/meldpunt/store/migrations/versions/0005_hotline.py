"""The hotline: reports and the URLs they name, item timelines, the IP-to-ASN table, the abuse
contact directory and notices; roles and organisation kinds for trusted flaggers and hosters.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:05:29.232072
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import meldpunt.store.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD_ORG_KINDS = ("platform", "hotline", "authority", "partner")
OLD_ROLES = ("platform", "analyst", "admin")
NEW_ORG_KINDS = (*OLD_ORG_KINDS, "flagger", "hoster")
NEW_ROLES = (*OLD_ROLES, "flagger", "hoster")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _words(org_kinds: tuple[str, ...], roles: tuple[str, ...]) -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.drop_constraint(op.f("ck_organisations_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_organisations_kind"), _one_of("kind", org_kinds))
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f("ck_api_keys_role"), type_="check")
        batch.create_check_constraint(op.f("ck_api_keys_role"), _one_of("role", roles))


def upgrade() -> None:
    _words(NEW_ORG_KINDS, NEW_ROLES)
    op.create_table(
        "asn_prefixes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=49), nullable=False),
        sa.Column("asn", sa.BigInteger(), nullable=False),
        sa.Column("org", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asn_prefixes")),
        sa.UniqueConstraint("prefix", name=op.f("uq_asn_prefixes_prefix")),
    )
    with op.batch_alter_table("asn_prefixes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asn_prefixes_asn"), ["asn"], unique=False)

    op.create_table(
        "abuse_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("org", sa.String(length=200), nullable=True),
        sa.Column("domain", sa.String(length=255), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("group_seconds", sa.Integer(), nullable=False),
        sa.Column("hold_weekends", sa.Boolean(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('hoster', 'police')", name=op.f("ck_abuse_contacts_kind")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_abuse_contacts_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abuse_contacts")),
        sa.UniqueConstraint("name", name=op.f("uq_abuse_contacts_name")),
    )
    with op.batch_alter_table("abuse_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_abuse_contacts_asn"), ["asn"], unique=False)
        batch_op.create_index(batch_op.f("ix_abuse_contacts_domain"), ["domain"], unique=False)
        batch_op.create_index(batch_op.f("ix_abuse_contacts_org"), ["org"], unique=False)

    op.create_table(
        "reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ref", sa.String(length=20), nullable=False),
        sa.Column("status_token_hash", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("flagger_ref", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reporter_name", sa.String(length=200), nullable=True),
        sa.Column("reporter_email", sa.String(length=320), nullable=True),
        sa.Column("good_faith", sa.Boolean(), nullable=False),
        sa.Column("created_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('csam', 'ncii', 'other')", name=op.f("ck_reports_kind")),
        sa.CheckConstraint(
            "source IN ('form', 'flagger', 'import')", name=op.f("ck_reports_source")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_reports_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("ref", name=op.f("uq_reports_ref")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reports_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_reports_org_flagger_ref", ["org_id", "flagger_ref"], unique=False)

    op.create_table(
        "notices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_until", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=250), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("sent_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('notice', 'renotice', 'police')", name=op.f("ck_notices_kind")
        ),
        sa.CheckConstraint("status IN ('open', 'sent', 'failed')", name=op.f("ck_notices_status")),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["abuse_contacts.id"], name=op.f("fk_notices_contact_id_abuse_contacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("message_id", name=op.f("uq_notices_message_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notices_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notices_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_notices_status"), ["status"], unique=False)

    op.create_table(
        "url_items",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("url_key", sa.String(length=64), nullable=False),
        sa.Column("open_key", sa.String(length=64), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_until", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("media", sa.String(length=10), nullable=True),
        sa.Column("content_type", sa.String(length=200), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("sha1", sa.String(length=40), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("pdq", sa.String(length=64), nullable=True),
        sa.Column("pdq_quality", sa.Integer(), nullable=True),
        sa.Column("grade", sa.String(length=20), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("graded_by", sa.String(length=200), nullable=True),
        sa.Column("graded_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("match_set_id", sa.Integer(), nullable=True),
        sa.Column(
            "match_entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("match_distance", sa.Integer(), nullable=True),
        sa.Column("proposed_grade", sa.String(length=20), nullable=True),
        sa.Column("proposed_category", sa.String(length=40), nullable=True),
        sa.Column("proposed_by", sa.String(length=200), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("network_owner", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("attributed_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "first_notice_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_notice_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("renotices", sa.Integer(), nullable=False),
        sa.Column("next_check_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("last_miss_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("renotice_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("escalation_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("offline_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "grade IN ('illegal', 'not_illegal', 'ignore', 'police')",
            name=op.f("ck_url_items_grade"),
        ),
        sa.CheckConstraint("kind IN ('csam', 'ncii', 'other')", name=op.f("ck_url_items_kind")),
        sa.CheckConstraint(
            "media IN ('page', 'image', 'video', 'other')", name=op.f("ck_url_items_media")
        ),
        sa.CheckConstraint(
            "proposed_grade IN ('illegal', 'not_illegal', 'ignore', 'police')",
            name=op.f("ck_url_items_proposed_grade"),
        ),
        sa.CheckConstraint(
            "state IN ('received', 'queued', 'review', 'police', 'contact_needed', 'ready', "
            "'noticed', 'escalated', 'forwarded', 'offline', 'not_illegal', 'ignored', 'failed')",
            name=op.f("ck_url_items_state"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["abuse_contacts.id"],
            name=op.f("fk_url_items_contact_id_abuse_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["match_set_id"], ["hash_sets.id"], name=op.f("fk_url_items_match_set_id_hash_sets")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["url_items.id"], name=op.f("fk_url_items_parent_id_url_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_url_items")),
        sa.UniqueConstraint("open_key", name=op.f("uq_url_items_open_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("url_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_url_items_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_url_items_due_at"), ["due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_url_items_escalation_at"), ["escalation_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_url_items_host"), ["host"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_url_items_next_check_at"), ["next_check_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_url_items_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_url_items_renotice_at"), ["renotice_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_url_items_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_url_items_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_url_items_url_key"), ["url_key"], unique=False)

    op.create_table(
        "item_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=30), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["url_items.id"], name=op.f("fk_item_events_item_id_url_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_events")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("item_events", schema=None) as batch_op:
        batch_op.create_index("ix_item_events_item_at", ["item_id", "at"], unique=False)

    op.create_table(
        "notice_items",
        sa.Column(
            "notice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["url_items.id"], name=op.f("fk_notice_items_item_id_url_items")
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notices.id"], name=op.f("fk_notice_items_notice_id_notices")
        ),
        sa.PrimaryKeyConstraint("notice_id", "item_id", name=op.f("pk_notice_items")),
    )
    with op.batch_alter_table("notice_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notice_items_item_id"), ["item_id"], unique=False)

    op.create_table(
        "report_urls",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "report_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url_given", sa.Text(), nullable=False),
        sa.Column("referer", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["url_items.id"], name=op.f("fk_report_urls_item_id_url_items")
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_report_urls_report_id_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_urls")),
        sa.UniqueConstraint("report_id", "item_id", name="uq_report_urls_report_item"),
    )
    with op.batch_alter_table("report_urls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_urls_item_id"), ["item_id"], unique=False)


def downgrade() -> None:
    _words(OLD_ORG_KINDS, OLD_ROLES)
    with op.batch_alter_table("report_urls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_urls_item_id"))

    op.drop_table("report_urls")
    with op.batch_alter_table("notice_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notice_items_item_id"))

    op.drop_table("notice_items")
    with op.batch_alter_table("item_events", schema=None) as batch_op:
        batch_op.drop_index("ix_item_events_item_at")

    op.drop_table("item_events")
    with op.batch_alter_table("url_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_url_items_url_key"))
        batch_op.drop_index(batch_op.f("ix_url_items_state"))
        batch_op.drop_index(batch_op.f("ix_url_items_sha256"))
        batch_op.drop_index(batch_op.f("ix_url_items_renotice_at"))
        batch_op.drop_index(batch_op.f("ix_url_items_parent_id"))
        batch_op.drop_index(batch_op.f("ix_url_items_next_check_at"))
        batch_op.drop_index(batch_op.f("ix_url_items_host"))
        batch_op.drop_index(batch_op.f("ix_url_items_escalation_at"))
        batch_op.drop_index(batch_op.f("ix_url_items_due_at"))
        batch_op.drop_index(batch_op.f("ix_url_items_contact_id"))

    op.drop_table("url_items")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notices_status"))
        batch_op.drop_index(batch_op.f("ix_notices_due_at"))
        batch_op.drop_index(batch_op.f("ix_notices_contact_id"))

    op.drop_table("notices")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reports_org_flagger_ref")
        batch_op.drop_index(batch_op.f("ix_reports_created_at"))

    op.drop_table("reports")
    with op.batch_alter_table("abuse_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_abuse_contacts_org"))
        batch_op.drop_index(batch_op.f("ix_abuse_contacts_domain"))
        batch_op.drop_index(batch_op.f("ix_abuse_contacts_asn"))

    op.drop_table("abuse_contacts")
    with op.batch_alter_table("asn_prefixes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asn_prefixes_asn"))

    op.drop_table("asn_prefixes")
