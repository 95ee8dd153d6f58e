"""webhooks outbox, shared rate counters, fault injection

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("faults", sa.JSON(), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("webhook_url", sa.String(length=2048), nullable=True))
        batch.add_column(sa.Column("links_base_url", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("run_after", sa.DateTime(), nullable=True))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("event_data", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("give_up_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('PENDING', 'RETRYING', 'SUCCESS', 'FAILED')",
            name=op.f("ck_webhook_deliveries_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_webhook_deliveries_api_key_id_api_keys")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_webhook_deliveries_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("task_id", name=op.f("uq_webhook_deliveries_task_id")),
    )
    op.create_index(op.f("ix_webhook_deliveries_api_key_id"), "webhook_deliveries", ["api_key_id"])
    op.create_index(
        "ix_webhook_deliveries_status_next_attempt_at",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_counters")),
    )
    op.create_index(op.f("ix_rate_counters_expires_at"), "rate_counters", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_counters_expires_at"), table_name="rate_counters")
    op.drop_table("rate_counters")
    op.drop_index("ix_webhook_deliveries_status_next_attempt_at", table_name="webhook_deliveries")
    op.drop_index(op.f("ix_webhook_deliveries_api_key_id"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("run_after")
        batch.drop_column("links_base_url")
        batch.drop_column("webhook_url")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("faults")
