"""Edited copies: the ways a set may match (``hash_sets.ways_off``) and the local features of
entries made from pictures (``item_features``, kept by the digest their signal names); the
hotline's new material keeps its further signals until it is graded
(``url_items.picture_signals``).

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-01 23:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import meldpunt.store.types

revision: str = "0009"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("url_items") as batch:
        batch.add_column(sa.Column("picture_signals", sa.Text(), nullable=True))
    with op.batch_alter_table("hash_sets") as batch:
        batch.add_column(
            sa.Column("ways_off", sa.String(length=100), server_default="", nullable=False)
        )
    op.create_table(
        "item_features",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", meldpunt.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_item_features")),
    )


def downgrade() -> None:
    with op.batch_alter_table("url_items") as batch:
        batch.drop_column("picture_signals")
    op.drop_table("item_features")
    with op.batch_alter_table("hash_sets") as batch:
        batch.drop_column("ways_off")
