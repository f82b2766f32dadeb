"""Triage: cases of seized collections, their files (known, ignorable, new, error) and the groups
of new material with reviewers' decisions.

Revision ID: 0007
Revises: 0009 (written to follow 0006; after main brought 0009, it follows 0009)
Create Date: 2026-12-01 23:36:07.458711
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import meldpunt.store.types

revision: str = "0007"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "triage_cases",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("registry_seq", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("state IN ('running', 'done')", name=op.f("ck_triage_cases_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_cases")),
        sa.UniqueConstraint("name", name=op.f("uq_triage_cases_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "triage_files",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("path_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("file_class", sa.String(length=10), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("sha1", sa.String(length=40), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("pdq", sa.String(length=64), nullable=True),
        sa.Column("pdq_quality", sa.Integer(), nullable=True),
        sa.Column("pdq_dihedral", sa.Text(), nullable=True),
        sa.Column("frames", sa.Text(), nullable=True),
        sa.Column("frames_matched", sa.Integer(), nullable=True),
        sa.Column("matches", sa.Text(), nullable=True),
        sa.Column("group_number", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("recorded_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "file_class IN ('known', 'ignorable', 'new', 'error')",
            name=op.f("ck_triage_files_file_class"),
        ),
        sa.CheckConstraint(
            "kind IN ('picture', 'video', 'archive', 'other')", name=op.f("ck_triage_files_kind")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["triage_cases.id"], name=op.f("fk_triage_files_case_id_triage_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_files")),
        sa.UniqueConstraint("case_id", "path_key", name="uq_triage_files_path"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("triage_files", schema=None) as batch_op:
        batch_op.create_index("ix_triage_files_class", ["case_id", "file_class"], unique=False)
        batch_op.create_index("ix_triage_files_group", ["case_id", "group_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_triage_files_sha256"), ["sha256"], unique=False)

    op.create_table(
        "triage_groups",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("distinct_files", sa.Integer(), nullable=False),
        sa.Column("representative", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(length=12), nullable=True),
        sa.Column("category", sa.String(length=30), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("exported_to", sa.String(length=200), nullable=True),
        sa.Column("exported_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "decision IN ('illegal', 'not_illegal')", name=op.f("ck_triage_groups_decision")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["triage_cases.id"], name=op.f("fk_triage_groups_case_id_triage_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_groups")),
        sa.UniqueConstraint("case_id", "number", name="uq_triage_groups_number"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("triage_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_triage_groups_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("triage_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_triage_groups_case_id"))

    op.drop_table("triage_groups")
    with op.batch_alter_table("triage_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_triage_files_sha256"))
        batch_op.drop_index("ix_triage_files_group")
        batch_op.drop_index("ix_triage_files_class")

    op.drop_table("triage_files")
    op.drop_table("triage_cases")
