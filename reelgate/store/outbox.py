"""The webhook outbox's SQL: events written with the transition that ends a task, then claimed,
attempted and settled by the dispatchers of any number of worker processes.

* ``enqueue`` runs inside ``queue._transition``, in the transaction that moves a task to SUCCESS,
  FAILED or CANCEL: the task's end and its event commit together or not at all.
* ``claim_due`` locks due deliveries for one dispatcher with a lease (``locked_until``), by one
  guarded UPDATE per row, so two dispatchers never send one event at the same time and a
  dispatcher that dies mid-send frees its rows when the lease runs out.
* ``settle`` records an attempt: SUCCESS, or RETRYING with the next time, or FAILED once the retry
  window is over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from reelgate.core.ids import SnowflakeGenerator
from reelgate.store.tables import ApiKey, WebhookDelivery, utcnow

_ids = SnowflakeGenerator()

PENDING, RETRYING, SUCCESS, FAILED = "PENDING", "RETRYING", "SUCCESS", "FAILED"
#: The most of a receiver's answer kept for getWebhookDetail.
MAX_RESPONSE_TEXT = 1000


@dataclass(frozen=True)
class DueDelivery:
    id: int
    task_id: int
    api_key_id: int
    url: str
    #: None before the first attempt of a round (the dispatcher builds it then).
    event_data: str | None
    attempts: int
    #: True when this attempt starts a round (the first delivery, or a redelivery).
    starts_round: bool
    give_up_at: datetime
    created_at: datetime
    webhook_secret: str
    faults: dict[str, Any] | None


def enqueue(session: Session, *, task_id: int, api_key_id: int, url: str) -> int:
    """Write a task's ``TASK_END`` event; returns its webhook id. Call inside the transition."""
    now = utcnow()
    delivery_id = _ids.next_id()
    session.add(
        WebhookDelivery(
            id=delivery_id,
            task_id=task_id,
            api_key_id=api_key_id,
            url=url,
            status=PENDING,
            event_data=None,
            attempts=0,
            next_attempt_at=now,
            locked_until=None,
            last_response="",
            created_at=now,
            updated_at=now,
            # Set for real when the first attempt starts the round (see ``claim_due``).
            give_up_at=now,
        )
    )
    session.flush()
    return delivery_id


def claim_due(
    session: Session, *, lock_seconds: float, retry_for_seconds: float, limit: int
) -> list[DueDelivery]:
    """Lock up to ``limit`` deliveries that are due now, oldest first, for ``lock_seconds``.

    A delivery that starts a round (PENDING) gets its retry window, ``retry_for_seconds`` from
    now, in the same update.
    """
    now = utcnow()
    candidates = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.status)
        .where(
            WebhookDelivery.status.in_((PENDING, RETRYING)),
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    ).all()
    claimed: list[DueDelivery] = []
    for delivery_id, status in candidates:
        values: dict[str, object] = {"locked_until": now + timedelta(seconds=lock_seconds)}
        if status == PENDING:
            values["give_up_at"] = now + timedelta(seconds=retry_for_seconds)
        # Guarded like a task transition: only if nobody claimed or settled it meanwhile.
        row = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == status,
                or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
            )
            .values(**values)
            .returning(
                WebhookDelivery.id,
                WebhookDelivery.task_id,
                WebhookDelivery.api_key_id,
                WebhookDelivery.url,
                WebhookDelivery.event_data,
                WebhookDelivery.attempts,
                WebhookDelivery.give_up_at,
                WebhookDelivery.created_at,
            )
        ).first()
        if row is None:
            continue
        key = session.execute(
            select(ApiKey.webhook_secret, ApiKey.faults).where(ApiKey.id == row.api_key_id)
        ).one()
        claimed.append(
            DueDelivery(
                id=row.id,
                task_id=row.task_id,
                api_key_id=row.api_key_id,
                url=row.url,
                event_data=row.event_data if status == RETRYING else None,
                attempts=row.attempts,
                starts_round=status == PENDING,
                give_up_at=row.give_up_at,
                created_at=row.created_at,
                webhook_secret=key.webhook_secret,
                faults=dict(key.faults) if key.faults else None,
            )
        )
    return claimed


def settle(
    session: Session,
    delivery_id: int,
    *,
    delivered: bool,
    response: str,
    event_data: str,
    retry_at: datetime | None,
    count_attempt: bool = True,
) -> str:
    """Record an attempt and unlock the delivery; returns its new status.

    ``retry_at`` is when to try again after a failure; None (or a time past the delivery's
    retry window) gives up: FAILED. ``count_attempt`` is False for a postponement that sent
    nothing (an injected delay).
    """
    now = utcnow()
    current = session.get(WebhookDelivery, delivery_id)
    if current is None:
        return FAILED
    if delivered:
        status = SUCCESS
    elif retry_at is None or retry_at > current.give_up_at:
        status = FAILED
    else:
        status = RETRYING
    current.status = status
    current.event_data = event_data
    current.attempts = current.attempts + (1 if count_attempt else 0)
    current.last_response = response[:MAX_RESPONSE_TEXT]
    current.updated_at = now
    current.locked_until = None
    if status == RETRYING and retry_at is not None:
        current.next_attempt_at = retry_at
    return status


def postpone(session: Session, delivery_id: int, until: datetime) -> None:
    """Unlock a claimed delivery without an attempt, due again at ``until``."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(locked_until=None, next_attempt_at=until)
    )


def for_task(session: Session, task_id: int, api_key_id: int) -> WebhookDelivery | None:
    """The event of ``task_id`` if the key owns it."""
    return session.execute(
        select(WebhookDelivery).where(
            WebhookDelivery.task_id == task_id, WebhookDelivery.api_key_id == api_key_id
        )
    ).scalar_one_or_none()


def redeliver(
    session: Session, delivery_id: int, api_key_id: int, url: str | None
) -> WebhookDelivery | None:
    """Start a new round for an event the key owns (to ``url`` when given); None if unknown.

    The event keeps its id, so a receiver that already processed it can tell; its ``eventData``
    is built again at the next attempt, with fresh result links.
    """
    delivery = session.execute(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.api_key_id == api_key_id
        )
    ).scalar_one_or_none()
    if delivery is None:
        return None
    now = utcnow()
    delivery.status = PENDING
    delivery.next_attempt_at = now
    delivery.locked_until = None
    delivery.updated_at = now
    if url:
        delivery.url = url
    return delivery
