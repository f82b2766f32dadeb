"""Exchange and self-hashing: partners, the sets followed from them and where received entries
came from; people's own cases of self-hashed pictures; sets whose entries were not reviewed; the
change log by set (partners' feeds).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:34:56.930414
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import meldpunt.store.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("public_key", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("remote_token", sa.String(length=200), nullable=True),
        sa.Column("send_sets", sa.Text(), nullable=False),
        sa.Column("send_categories", sa.Text(), nullable=True),
        sa.Column("created_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
        sa.UniqueConstraint("name", name=op.f("uq_partners_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_partners_token_hash")),
    )
    op.create_table(
        "self_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("pin_hash", sa.String(length=300), nullable=False),
        sa.Column("created_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pin_failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_self_cases")),
        sa.UniqueConstraint("number", name=op.f("uq_self_cases_number")),
    )
    op.create_table(
        "partner_follows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("remote_set", sa.String(length=200), nullable=False),
        sa.Column("local_set_id", sa.Integer(), nullable=False),
        sa.Column("categories", sa.Text(), nullable=True),
        sa.Column("after_seq", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("remote_head", sa.BigInteger(), nullable=False),
        sa.Column("remote_head_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("changes_applied", sa.BigInteger(), nullable=False),
        sa.Column("last_pull_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "last_success_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("next_pull_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["local_set_id"],
            ["hash_sets.id"],
            name=op.f("fk_partner_follows_local_set_id_hash_sets"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_partner_follows_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_follows")),
        sa.UniqueConstraint("partner_id", "remote_set", name="uq_partner_follows_set"),
    )
    with op.batch_alter_table("partner_follows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_partner_follows_next_pull_at"), ["next_pull_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_partner_follows_partner_id"), ["partner_id"], unique=False
        )

    op.create_table(
        "entry_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("remote_set", sa.String(length=200), nullable=False),
        sa.Column("remote_item", sa.BigInteger(), nullable=False),
        sa.Column("remote_seq", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_entry_sources_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_entry_sources_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry_sources")),
        sa.UniqueConstraint(
            "partner_id", "remote_set", "remote_item", name="uq_entry_sources_remote"
        ),
    )
    with op.batch_alter_table("entry_sources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entry_sources_item_id"), ["item_id"], unique=False)

    op.create_table(
        "self_case_items",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("added_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["self_cases.id"], name=op.f("fk_self_case_items_case_id_self_cases")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_self_case_items_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "item_id", name=op.f("pk_self_case_items")),
    )
    with op.batch_alter_table("self_case_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_self_case_items_item_id"), ["item_id"], unique=False)

    with op.batch_alter_table("hash_sets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reviewed", sa.Boolean(), server_default=sa.true(), nullable=False)
        )

    with op.batch_alter_table("registry_changes", schema=None) as batch_op:
        batch_op.create_index("ix_registry_changes_set_seq", ["set_id", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("registry_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_changes_set_seq")

    with op.batch_alter_table("hash_sets", schema=None) as batch_op:
        batch_op.drop_column("reviewed")

    with op.batch_alter_table("self_case_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_self_case_items_item_id"))

    op.drop_table("self_case_items")
    with op.batch_alter_table("entry_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entry_sources_item_id"))

    op.drop_table("entry_sources")
    with op.batch_alter_table("partner_follows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_partner_follows_partner_id"))
        batch_op.drop_index(batch_op.f("ix_partner_follows_next_pull_at"))

    op.drop_table("partner_follows")
    op.drop_table("self_cases")
    op.drop_table("partners")
