"""Checking the webhooks a reelgate server sends (Standard Webhooks signatures)."""

from __future__ import annotations

from collections.abc import Mapping

from reelgate.client._errors import WebhookVerificationError
from reelgate.wire import webhooks
from reelgate.wire.webhooks import TOLERANCE_SECONDS, TaskEndEvent, WebhookDetail

__all__ = ["TaskEndEvent", "WebhookDetail", "WebhookVerificationError", "verify_webhook"]


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: float = TOLERANCE_SECONDS,
) -> TaskEndEvent:
    """Check a ``TASK_END`` delivery and return its event; raise before acting on a forgery.

    ``secret`` is the key's ``whsec_…`` secret (``reelgate keys create`` prints it;
    ``Client.webhook_secret()`` fetches it). Pass the raw body, exactly as received: any
    re-encoding breaks the signature. ``event.task()`` is the task as ``/openapi/v2/query``
    answers it. Deliveries are retried with the same ``webhook-id`` header: keep the ids you
    processed and ignore repeats.

    Raises ``WebhookVerificationError`` when a header is missing, the signature does not match,
    or the timestamp is more than ``tolerance`` seconds from now (a replay).
    """
    try:
        return webhooks.verify(secret, headers, body, tolerance=tolerance)
    except webhooks.WebhookVerificationError as exc:
        raise WebhookVerificationError(str(exc)) from None
