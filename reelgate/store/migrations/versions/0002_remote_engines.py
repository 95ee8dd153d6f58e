"""remote engines: task checkpoints and the upstream key pool

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("checkpoint", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("remote_key", sa.String(length=64), nullable=True))
        batch.create_index(op.f("ix_tasks_remote_key"), ["remote_key"], unique=False)
    op.create_table(
        "upstream_keys",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("resting_until", sa.DateTime(), nullable=True),
        sa.Column("out_of_rotation", sa.String(length=200), nullable=False),
        sa.Column("balance", sa.String(length=32), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_upstream_keys")),
    )


def downgrade() -> None:
    op.drop_table("upstream_keys")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index(op.f("ix_tasks_remote_key"))
        batch.drop_column("remote_key")
        batch.drop_column("checkpoint")
