"""SQLAlchemy tables: API keys, tasks, task events, uploads, workers and server metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from reelgate.wire.status import TaskStatus

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: What the status CHECK constraint allows: exactly the wire's statuses.
STATUSES = tuple(status.value for status in TaskStatus)


def utcnow() -> datetime:
    """Naive UTC: stored the same way on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("coins >= 0", name="coins_not_negative"),
        CheckConstraint("running_tasks >= 0", name="running_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    #: SHA-256 of the key; the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters, to tell keys apart in listings.
    key_prefix: Mapped[str] = mapped_column(String(16))
    coins: Mapped[int] = mapped_column(BigInteger)
    concurrency: Mapped[int] = mapped_column(Integer)
    queue_cap: Mapped[int] = mapped_column(Integer)
    #: Tasks of this key in RUNNING, kept by the same transactions that move tasks in and out of
    #: RUNNING; the claim statement locks this row, which makes the concurrency limit exact.
    running_tasks: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: Fault injection for integrators, set by the operator (``reelgate keys faults``): what
    #: ``reelgate.core.faults.Faults`` reads; None for a key that behaves normally.
    faults: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: An admin key sees every key's tasks in the dashboard, and creates, disables and credits
    #: keys there; on the RunningHub endpoints it is a key like any other.
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status_valid"),
        UniqueConstraint("api_key_id", "idempotency_key"),
        Index("ix_tasks_status_id", "status", "id"),
        Index("ix_tasks_api_key_id_status", "api_key_id", "status"),
        # The retention sweep: finished tasks not yet expired, oldest first.
        Index("ix_tasks_expired_at_finished_at", "expired_at", "finished_at"),
    )

    #: The 19-digit snowflake id (``taskId`` on the wire, as a string).
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    model: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(16), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reserved_coins: Mapped[int] = mapped_column(BigInteger)
    consumed_coins: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: A remote engine's durable state (e.g. the upstream task id), written before anything that
    #: costs money, so that a task resumed on another worker continues instead of starting over.
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: The upstream key whose concurrency slot this task holds while it is QUEUED or RUNNING.
    remote_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    #: Where the task's ``TASK_END`` event goes (the ``webhookUrl`` extension), and the base URL
    #: that the request came through, for the result links inside the event.
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    links_base_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    #: Not claimed before this time (fault injection's queue delay); None: at once.
    run_after: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: When retention deleted the task's result files; from then on (and from the end of its
    #: retention, swept or not) it answers as a task that does not exist.
    expired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class TaskEvent(Base):
    """Append-only history: one row per status change (and a few notable moments)."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text, default="")


class Upload(Base):
    """One upload. Uploads of the same bytes share one file (``storage_key``), kept until the
    newest of them expires."""

    __tablename__ = "uploads"
    # The retention sweep: uploads not yet expired, oldest first.
    __table_args__ = (Index("ix_uploads_expired_at_created_at", "expired_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    #: Where the bytes are in storage, e.g. ``openapi/<sha256>.png`` (RunningHub's ``fileName``).
    storage_key: Mapped[str] = mapped_column(String(300), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    original_name: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: When retention deleted the file, with every upload that shared it.
    expired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class WorkerRow(Base):
    """Live workers; each renews ``last_seen_at`` with its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UpstreamKey(Base):
    """One key of the upstream engine's pool, by fingerprint (the key itself is not stored)."""

    __tablename__ = "upstream_keys"

    #: SHA-256 of the key, cut to 16 hex characters.
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: What listings show: the key's first characters.
    label: Mapped[str] = mapped_column(String(32))
    #: Tasks the key may run at once upstream (from its queue status, or set).
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    #: Not used for new tasks before this time (it answered rate-limited or queue-full).
    resting_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: Why the key is out of rotation (e.g. its balance ran out); empty while it is in.
    out_of_rotation: Mapped[str] = mapped_column(String(200), default="")
    #: The balance its account status last reported (RH coins, as sent).
    balance: Mapped[str] = mapped_column(String(32), default="")
    checked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class WebhookDelivery(Base):
    """The outbox: one ``TASK_END`` event of a task, written in the transaction that ended it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(
            "status IN ('PENDING', 'RETRYING', 'SUCCESS', 'FAILED')", name="status_valid"
        ),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    #: A snowflake id: ``data.id`` of getWebhookDetail, and the ``webhook-id`` header.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), unique=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    #: PENDING (not tried yet), RETRYING (tried, will try again), SUCCESS, FAILED (gave up).
    status: Mapped[str] = mapped_column(String(16))
    #: The ``eventData`` string, fixed at the first attempt so that every retry sends the same
    #: bytes; None until then.
    event_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    #: A dispatcher holds a delivery until this time while it sends it.
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: The last answer (HTTP status and the start of the body) or the error, for getWebhookDetail.
    last_response: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: Retries stop after this time (the retry window counts from the first event or redelivery).
    give_up_at: Mapped[datetime] = mapped_column(DateTime)


class RateCounter(Base):
    """Fixed-window request counters of the rate limiter, shared by every API process."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    #: Unix time at which the window ends and the counter starts again.
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class Meta(Base):
    """Server-wide values shared by every process, such as the link-signing secret."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
