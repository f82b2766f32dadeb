"""The registry: hash sets, their items and signals, and the numbered change log.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit keys that are still SQLite's rowid alias (SQLite only autoincrements INTEGER).
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hash_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source_org", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("default_category", sa.String(length=40), nullable=True),
        sa.Column("pdq_threshold", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('blocklist', 'allowlist')", name=op.f("ck_hash_sets_kind")),
        sa.CheckConstraint("state IN ('active', 'disabled')", name=op.f("ck_hash_sets_state")),
        sa.CheckConstraint(
            "pdq_threshold BETWEEN 0 AND 64", name=op.f("ck_hash_sets_pdq_threshold")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hash_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_hash_sets_name")),
    )
    op.create_table(
        "items",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("category_raw", sa.String(length=200), nullable=True),
        sa.Column("category_scheme", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'disabled', 'withdrawn')", name=op.f("ck_items_status")
        ),
        sa.ForeignKeyConstraint(
            ["set_id"], ["hash_sets.id"], name=op.f("fk_items_set_id_hash_sets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_items_set_reference", "items", ["set_id", "reference"])

    op.create_table(
        "item_signals",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("item_id", BIG_ID, nullable=False),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("signal_type", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_item_signals_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["set_id"], ["hash_sets.id"], name=op.f("fk_item_signals_set_id_hash_sets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_signals")),
        sa.UniqueConstraint(
            "set_id", "signal_type", "value", name="uq_item_signals_set_type_value"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_item_signals_item_id"), "item_signals", ["item_id"])
    op.create_index("ix_item_signals_type_value", "item_signals", ["signal_type", "value"])

    op.create_table(
        "registry_changes",
        sa.Column("seq", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("item_id", BIG_ID, nullable=True),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("signal_type", sa.String(length=40), nullable=True),
        sa.Column("value", sa.String(length=1000), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.CheckConstraint(
            "action IN ('add', 'update', 'remove')", name=op.f("ck_registry_changes_action")
        ),
        sa.ForeignKeyConstraint(
            ["set_id"], ["hash_sets.id"], name=op.f("fk_registry_changes_set_id_hash_sets")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_registry_changes")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("registry_changes")
    op.drop_index("ix_item_signals_type_value", table_name="item_signals")
    op.drop_index(op.f("ix_item_signals_item_id"), table_name="item_signals")
    op.drop_table("item_signals")
    op.drop_index("ix_items_set_reference", table_name="items")
    op.drop_table("items")
    op.drop_table("hash_sets")
