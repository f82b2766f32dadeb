"""The hash check service: organisations, API keys, subscriptions, hits, daily check counts and
the false-positive review queue.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit keys that are still SQLite's rowid alias (SQLite only autoincrements INTEGER).
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=True),
        _when("created_at"),
        _when("disabled_at", nullable=True),
        sa.CheckConstraint(
            "kind IN ('platform', 'hotline', 'authority', 'partner')",
            name=op.f("ck_organisations_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        _when("created_at"),
        _when("expires_at", nullable=True),
        _when("revoked_at", nullable=True),
        _when("last_used_at", nullable=True),
        sa.CheckConstraint(
            "role IN ('platform', 'analyst', 'admin')", name=op.f("ck_api_keys_role")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_api_keys_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index(op.f("ix_api_keys_key_hash"), "api_keys", ["key_hash"], unique=True)
    op.create_index(op.f("ix_api_keys_org_id"), "api_keys", ["org_id"])
    op.create_index(op.f("ix_api_keys_prefix"), "api_keys", ["prefix"])

    op.create_table(
        "subscriptions",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("set_ids", sa.Text(), nullable=True),
        sa.Column("categories", sa.Text(), nullable=True),
        _when("updated_at"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_subscriptions_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_subscriptions")),
    )

    op.create_table(
        "check_counts",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("checks", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_check_counts_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", "day", name=op.f("pk_check_counts")),
    )

    op.create_table(
        "hits",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        _when("at"),
        sa.Column("signal_type", sa.String(length=40), nullable=False),
        sa.Column("signal_value", sa.String(length=1000), nullable=False),
        sa.Column("distance", sa.Integer(), nullable=False),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("item_id", BIG_ID, nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("platform_ref", sa.String(length=500), nullable=True),
        sa.Column("public_url", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        _when("outcome_at", nullable=True),
        sa.Column("outcome_reason", sa.Text(), nullable=True),
        sa.Column("report_id", sa.String(length=200), nullable=True),
        _when("recheck_due_at", nullable=True),
        sa.Column("recheck_status", sa.String(length=20), nullable=True),
        _when("rechecked_at", nullable=True),
        sa.CheckConstraint(
            "outcome IN ('blocked', 'removed', 'reported', 'false_positive', 'other')",
            name=op.f("ck_hits_outcome"),
        ),
        sa.CheckConstraint(
            "recheck_status IN ('pending', 'gone', 'online', 'error')",
            name=op.f("ck_hits_recheck_status"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_hits_org_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["set_id"], ["hash_sets.id"], name=op.f("fk_hits_set_id_hash_sets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hits")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_hits_org_at", "hits", ["org_id", "at"])
    op.create_index("ix_hits_org_outcome", "hits", ["org_id", "outcome"])
    op.create_index(op.f("ix_hits_recheck_due_at"), "hits", ["recheck_due_at"])

    op.create_table(
        "false_positive_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hit_id", BIG_ID, nullable=False),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("item_id", BIG_ID, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _when("created_at"),
        _when("resolved_at", nullable=True),
        sa.Column("resolution", sa.String(length=20), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "resolution IN ('confirmed', 'rejected')",
            name=op.f("ck_false_positive_reviews_resolution"),
        ),
        sa.ForeignKeyConstraint(
            ["hit_id"], ["hits.id"], name=op.f("fk_false_positive_reviews_hit_id_hits")
        ),
        sa.ForeignKeyConstraint(
            ["set_id"], ["hash_sets.id"], name=op.f("fk_false_positive_reviews_set_id_hash_sets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_false_positive_reviews")),
    )
    op.create_index(op.f("ix_false_positive_reviews_hit_id"), "false_positive_reviews", ["hit_id"])
    op.create_index(
        op.f("ix_false_positive_reviews_resolved_at"), "false_positive_reviews", ["resolved_at"]
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_false_positive_reviews_resolved_at"), table_name="false_positive_reviews"
    )
    op.drop_index(op.f("ix_false_positive_reviews_hit_id"), table_name="false_positive_reviews")
    op.drop_table("false_positive_reviews")
    op.drop_index(op.f("ix_hits_recheck_due_at"), table_name="hits")
    op.drop_index("ix_hits_org_outcome", table_name="hits")
    op.drop_index("ix_hits_org_at", table_name="hits")
    op.drop_table("hits")
    op.drop_table("check_counts")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_api_keys_prefix"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_org_id"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_key_hash"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("organisations")
