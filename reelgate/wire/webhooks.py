"""Webhooks: RunningHub's ``TASK_END`` event, its detail and redelivery bodies, and the Standard
Webhooks signature that reelgate adds to every delivery.

The event body is RunningHub's (contract §7.2): ``{"event": "TASK_END", "taskId": …,
"eventData": "<the task object as a JSON string>"}``. The signature follows the Standard Webhooks
specification (https://www.standardwebhooks.com): three headers, ``webhook-id`` (stable across
retries, so receivers can drop duplicates), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``), keyed by the
API key's secret ``whsec_<base64>``. Any Standard Webhooks library verifies it; ``verify`` here
does the same with the standard library only, for the SDK.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Literal

from pydantic import ConfigDict, Field, StrictStr

from reelgate.wire._base import WireAnswer, WireRequest
from reelgate.wire.responses import TaskObject

SECRET_PREFIX = "whsec_"
#: How far a delivery's timestamp may be from the receiver's clock (the specification's 5 min).
TOLERANCE_SECONDS = 5 * 60

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

CallbackStatus = Literal["PENDING", "RETRYING", "SUCCESS", "FAILED"]


class WebhookVerificationError(ValueError):
    """A delivery whose headers or signature do not verify: do not act on it."""


class TaskEndEvent(WireAnswer):
    """The body POSTed to a task's ``webhookUrl`` when it ends (SUCCESS, FAILED or CANCEL)."""

    event: Literal["TASK_END"] = "TASK_END"
    task_id: str
    #: The task object of ``/openapi/v2/query``, as a JSON string (RunningHub's shape).
    event_data: str

    def task(self) -> TaskObject:
        """``eventData`` parsed: the task as ``/openapi/v2/query`` answers it."""
        return TaskObject.model_validate_json(self.event_data)


class WebhookDetail(WireAnswer):
    """``data`` of ``/task/openapi/getWebhookDetail`` (contract §7.3)."""

    #: The webhook id: ``webhookId`` of ``retryWebhook`` and the ``webhook-id`` header.
    id: str
    #: The key, masked.
    user_api_key: str
    task_id: str
    webhook_url: str
    #: The event's ``eventData``; empty until the first attempt.
    event_data: str
    callback_status: CallbackStatus
    #: The last attempt's outcome: the receiver's HTTP status and the start of its body, or why
    #: no answer came.
    callback_response: str
    #: Attempts after the first one.
    retry_count: int
    create_time: str
    update_time: str


class WebhookDetailRequest(WireRequest):
    """``/task/openapi/getWebhookDetail``: which task's event."""

    api_key: StrictStr | None = Field(None, description="The API key (v1 style).")
    task_id: StrictStr | int | None = Field(None, description="The task whose event to show.")


class RetryWebhookRequest(WireRequest):
    """``/task/openapi/retryWebhook``: send an event again, optionally to another URL."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"webhookId": "1904444422778503169"}]}
    )

    api_key: StrictStr | None = Field(None, description="The API key (v1 style).")
    webhook_id: StrictStr | int | None = Field(None, description="`data.id` of getWebhookDetail.")
    webhook_url: StrictStr | None = Field(
        None, max_length=2048, description="Deliver to this URL from now on (optional)."
    )


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (the prefix is optional, as in the specification)."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("the webhook secret is not whsec_<base64>") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value of one delivery."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers_for(
    secret: str, msg_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The three signature headers of a delivery sent at ``now``."""
    timestamp = int(time.time() if now is None else now)
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> TaskEndEvent:
    """Check a delivery's signature and age; return its event.

    ``headers`` may use any capitalisation. Raises ``WebhookVerificationError`` when a header is
    missing, the timestamp is further than ``tolerance`` seconds from ``now`` (a replay), or no
    signature matches (the header may list several, space-separated, during a secret rotation).
    """
    raw = body.encode() if isinstance(body, str) else body
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        msg_id = lowered[ID_HEADER]
        timestamp_text = lowered[TIMESTAMP_HEADER]
        signatures = lowered[SIGNATURE_HEADER]
    except KeyError as exc:
        raise WebhookVerificationError(f"missing header {exc.args[0]}") from None
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too far from now")
    expected = sign(secret, msg_id, timestamp, raw).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            try:
                return TaskEndEvent.model_validate(json.loads(raw))
            except ValueError as exc:
                raise WebhookVerificationError(f"the body is not a TASK_END event ({exc})") from exc
    raise WebhookVerificationError("no signature matches")
