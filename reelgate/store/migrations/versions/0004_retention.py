"""retention: when a task's results and an upload's file were deleted

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("expired_at", sa.DateTime(), nullable=True))
    op.create_index("ix_tasks_expired_at_finished_at", "tasks", ["expired_at", "finished_at"])
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("expired_at", sa.DateTime(), nullable=True))
    op.create_index(op.f("ix_uploads_storage_key"), "uploads", ["storage_key"])
    op.create_index("ix_uploads_expired_at_created_at", "uploads", ["expired_at", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_uploads_expired_at_created_at", table_name="uploads")
    op.drop_index(op.f("ix_uploads_storage_key"), table_name="uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("expired_at")
    op.drop_index("ix_tasks_expired_at_finished_at", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("expired_at")
