"""What platforms may learn: distances only for organisations allowed them, random public hit
ids, and the alerts of the probing detector.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Public hit ids are below 2**53, so that every JSON reader keeps them exact.
PUBLIC_ID_LIMIT = 2**53


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _backfill_public_ids() -> None:
    """Existing hits get random public ids (their old ids were sequential)."""
    connection = op.get_bind()
    hits = sa.table("hits", sa.column("id", sa.BigInteger), sa.column("public_id", sa.BigInteger))
    ids = [row[0] for row in connection.execute(sa.select(hits.c.id))]
    taken: set[int] = set()
    for start in range(0, len(ids), 10_000):
        rows = []
        for hit_id in ids[start : start + 10_000]:
            public = secrets.randbelow(PUBLIC_ID_LIMIT - 1) + 1
            while public in taken:
                public = secrets.randbelow(PUBLIC_ID_LIMIT - 1) + 1
            taken.add(public)
            rows.append({"hit_id": hit_id, "public": public})
        connection.execute(
            hits.update().where(hits.c.id == sa.bindparam("hit_id")),
            [{"hit_id": r["hit_id"], "public_id": r["public"]} for r in rows],
        )


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(
            sa.Column("show_distances", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("hits") as batch:
        batch.add_column(sa.Column("public_id", sa.BigInteger(), nullable=True))
    _backfill_public_ids()
    with op.batch_alter_table("hits") as batch:
        batch.alter_column("public_id", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint(op.f("uq_hits_public_id"), ["public_id"])

    op.create_table(
        "probing_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        _when("at"),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        _when("throttled_until"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_probing_alerts_key_id_api_keys")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_probing_alerts_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probing_alerts")),
    )
    op.create_index(op.f("ix_probing_alerts_at"), "probing_alerts", ["at"])
    op.create_index(op.f("ix_probing_alerts_org_id"), "probing_alerts", ["org_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_probing_alerts_org_id"), table_name="probing_alerts")
    op.drop_index(op.f("ix_probing_alerts_at"), table_name="probing_alerts")
    op.drop_table("probing_alerts")
    with op.batch_alter_table("hits") as batch:
        batch.drop_constraint(op.f("uq_hits_public_id"), type_="unique")
        batch.drop_column("public_id")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("show_distances")
