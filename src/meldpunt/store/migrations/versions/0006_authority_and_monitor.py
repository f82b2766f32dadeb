"""The authority and the monitor: cases, orders, penalty payments, fines, hosters' facts, the
monitor's figures and marks; items keep the hoster they were noticed to and when they were first
seen gone; the role ``authority``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 20:27:35.621958
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import meldpunt.store.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD_ROLES = ("platform", "analyst", "admin", "flagger", "hoster")
NEW_ROLES = (*OLD_ROLES, "authority")


def _roles(roles: tuple[str, ...]) -> None:
    words = ", ".join(repr(role) for role in roles)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f("ck_api_keys_role"), type_="check")
        batch.create_check_constraint(op.f("ck_api_keys_role"), f"role IN ({words})")


def upgrade() -> None:
    _roles(NEW_ROLES)
    op.create_table(
        "hoster_facts",
        sa.Column("asn", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("addresses", sa.BigInteger(), nullable=True),
        sa.Column("customers", sa.BigInteger(), nullable=True),
        sa.Column("turnover_cents", sa.BigInteger(), nullable=True),
        sa.Column("turnover_year", sa.Integer(), nullable=True),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asn", name=op.f("pk_hoster_facts")),
    )
    op.create_table(
        "monitor_hosters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_kind", sa.String(length=10), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("reported", sa.BigInteger(), nullable=False),
        sa.Column("notified", sa.BigInteger(), nullable=False),
        sa.Column("offline_24h", sa.BigInteger(), nullable=False),
        sa.Column("offline_48h", sa.BigInteger(), nullable=False),
        sa.Column("offline_later", sa.BigInteger(), nullable=False),
        sa.Column("online", sa.BigInteger(), nullable=False),
        sa.Column("median_hours", sa.Float(), nullable=True),
        sa.Column("p90_hours", sa.Float(), nullable=True),
        sa.Column("renotices", sa.BigInteger(), nullable=False),
        sa.Column("escalations", sa.BigInteger(), nullable=False),
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("penalties_cents", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "period_kind IN ('month', 'quarter', 'year')",
            name=op.f("ck_monitor_hosters_period_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_hosters")),
        sa.UniqueConstraint("period_kind", "period", "key", name="uq_monitor_hosters_group"),
    )
    with op.batch_alter_table("monitor_hosters", schema=None) as batch_op:
        batch_op.create_index(
            "ix_monitor_hosters_rank", ["period_kind", "period", "notified"], unique=False
        )

    op.create_table(
        "monitor_marks",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_monitor_marks")),
    )
    op.create_table(
        "monitor_platforms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_kind", sa.String(length=10), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("checks", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("blocked", sa.BigInteger(), nullable=False),
        sa.Column("removed", sa.BigInteger(), nullable=False),
        sa.Column("reported", sa.BigInteger(), nullable=False),
        sa.Column("false_positive", sa.BigInteger(), nullable=False),
        sa.Column("other", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("overdue", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "period_kind IN ('month', 'quarter', 'year')",
            name=op.f("ck_monitor_platforms_period_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_monitor_platforms_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_platforms")),
        sa.UniqueConstraint("period_kind", "period", "key", name="uq_monitor_platforms_group"),
    )
    op.create_table(
        "cases",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ref", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("network_owner", sa.String(length=200), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("opened_by", sa.String(length=200), nullable=False),
        sa.Column("opened_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("source IN ('escalation', 'authority')", name=op.f("ck_cases_source")),
        sa.CheckConstraint("state IN ('open', 'closed')", name=op.f("ck_cases_state")),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["abuse_contacts.id"], name=op.f("fk_cases_contact_id_abuse_contacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("ref", name=op.f("uq_cases_ref")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_asn"), ["asn"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_opened_at"), ["opened_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_state"), ["state"], unique=False)

    op.create_table(
        "case_items",
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("added_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_items_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["url_items.id"], name=op.f("fk_case_items_item_id_url_items")
        ),
        sa.PrimaryKeyConstraint("case_id", "item_id", name=op.f("pk_case_items")),
    )
    with op.batch_alter_table("case_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_items_item_id"), ["item_id"], unique=False)

    op.create_table(
        "fines",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ref", sa.String(length=30), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("network_owner", sa.String(length=200), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("turnover_cents", sa.BigInteger(), nullable=True),
        sa.Column("share", sa.Float(), nullable=True),
        sa.Column("decided_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column(
            "objection_due_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("objection_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("objection_outcome", sa.String(length=10), nullable=True),
        sa.Column(
            "objection_decided_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("appeal_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("appeal_outcome", sa.String(length=10), nullable=True),
        sa.Column(
            "appeal_decided_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("final_cents", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("published_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "appeal_outcome IN ('upheld', 'reduced', 'annulled')",
            name=op.f("ck_fines_appeal_outcome"),
        ),
        sa.CheckConstraint(
            "objection_outcome IN ('upheld', 'reduced', 'annulled')",
            name=op.f("ck_fines_objection_outcome"),
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_fines_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["abuse_contacts.id"], name=op.f("fk_fines_contact_id_abuse_contacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fines")),
        sa.UniqueConstraint("ref", name=op.f("uq_fines_ref")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("fines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fines_asn"), ["asn"], unique=False)
        batch_op.create_index(batch_op.f("ix_fines_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fines_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fines_decided_at"), ["decided_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_fines_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "orders",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ref", sa.String(length=30), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("network_owner", sa.String(length=200), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("issued_by", sa.String(length=200), nullable=False),
        sa.Column("issued_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("deadline_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=250), nullable=False),
        sa.Column("send_due_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("send_attempts", sa.Integer(), nullable=False),
        sa.Column("send_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "acknowledged_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("check_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("gone_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("penalty_cents", sa.BigInteger(), nullable=True),
        sa.Column("penalty_period_hours", sa.Float(), nullable=True),
        sa.Column("penalty_cap_cents", sa.BigInteger(), nullable=True),
        sa.Column("penalty_total_cents", sa.BigInteger(), nullable=False),
        sa.Column(
            "next_penalty_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("published_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('issued', 'met', 'unmet', 'late', 'withdrawn')",
            name=op.f("ck_orders_status"),
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_orders_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["abuse_contacts.id"], name=op.f("fk_orders_contact_id_abuse_contacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("message_id", name=op.f("uq_orders_message_id")),
        sa.UniqueConstraint("ref", name=op.f("uq_orders_ref")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_asn"), ["asn"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_check_at"), ["check_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_deadline_at"), ["deadline_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_issued_at"), ["issued_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_orders_next_penalty_at"), ["next_penalty_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_orders_send_due_at"), ["send_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "order_items",
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("gone_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["url_items.id"], name=op.f("fk_order_items_item_id_url_items")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_items_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("order_id", "item_id", name=op.f("pk_order_items")),
    )
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_items_item_id"), ["item_id"], unique=False)

    op.create_table(
        "penalties",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("due_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("forfeited_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("network_owner", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_penalties_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_penalties")),
        sa.UniqueConstraint("order_id", "seq", name="uq_penalties_order_seq"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("penalties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_penalties_asn"), ["asn"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_penalties_forfeited_at"), ["forfeited_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_penalties_order_id"), ["order_id"], unique=False)

    with op.batch_alter_table("url_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_asn", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("notice_owner", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("notice_country", sa.String(length=2), nullable=True))
        batch_op.add_column(
            sa.Column("gone_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_url_items_first_notice_at"), ["first_notice_at"], unique=False
        )
        batch_op.create_index(
            "ix_url_items_notice_hoster", ["notice_asn", "first_notice_at"], unique=False
        )
        batch_op.create_index("ix_url_items_hoster_created", ["asn", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_url_items_updated_at"), ["updated_at"], unique=False)
    # hits whose outcome was given or changed since a moment (the monitor, the DSA statements)
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.create_index("ix_hits_outcome_at", ["outcome_at"], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM api_keys WHERE role = 'authority'")
    _roles(OLD_ROLES)
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.drop_index("ix_hits_outcome_at")
    with op.batch_alter_table("url_items", schema=None) as batch_op:
        batch_op.drop_index("ix_url_items_hoster_created")
        batch_op.drop_index("ix_url_items_notice_hoster")
        batch_op.drop_index(batch_op.f("ix_url_items_updated_at"))
        batch_op.drop_index(batch_op.f("ix_url_items_first_notice_at"))
        batch_op.drop_column("gone_at")
        batch_op.drop_column("notice_country")
        batch_op.drop_column("notice_owner")
        batch_op.drop_column("notice_asn")

    with op.batch_alter_table("penalties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_penalties_order_id"))
        batch_op.drop_index(batch_op.f("ix_penalties_forfeited_at"))
        batch_op.drop_index(batch_op.f("ix_penalties_asn"))

    op.drop_table("penalties")
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_items_item_id"))

    op.drop_table("order_items")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_updated_at"))
        batch_op.drop_index(batch_op.f("ix_orders_status"))
        batch_op.drop_index(batch_op.f("ix_orders_send_due_at"))
        batch_op.drop_index(batch_op.f("ix_orders_next_penalty_at"))
        batch_op.drop_index(batch_op.f("ix_orders_issued_at"))
        batch_op.drop_index(batch_op.f("ix_orders_deadline_at"))
        batch_op.drop_index(batch_op.f("ix_orders_contact_id"))
        batch_op.drop_index(batch_op.f("ix_orders_check_at"))
        batch_op.drop_index(batch_op.f("ix_orders_case_id"))
        batch_op.drop_index(batch_op.f("ix_orders_asn"))

    op.drop_table("orders")
    with op.batch_alter_table("fines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fines_updated_at"))
        batch_op.drop_index(batch_op.f("ix_fines_decided_at"))
        batch_op.drop_index(batch_op.f("ix_fines_contact_id"))
        batch_op.drop_index(batch_op.f("ix_fines_case_id"))
        batch_op.drop_index(batch_op.f("ix_fines_asn"))

    op.drop_table("fines")
    with op.batch_alter_table("case_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_items_item_id"))

    op.drop_table("case_items")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_state"))
        batch_op.drop_index(batch_op.f("ix_cases_opened_at"))
        batch_op.drop_index(batch_op.f("ix_cases_contact_id"))
        batch_op.drop_index(batch_op.f("ix_cases_asn"))

    op.drop_table("cases")
    op.drop_table("monitor_platforms")
    op.drop_table("monitor_marks")
    with op.batch_alter_table("monitor_hosters", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_hosters_rank")

    op.drop_table("monitor_hosters")
    op.drop_table("hoster_facts")
