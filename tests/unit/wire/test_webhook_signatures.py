"""The Standard Webhooks signature: what reelgate signs verifies with the reference library, and
what the reference library signs verifies with the SDK's ``verify_webhook``."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

import reelgate.client
from reelgate.webhooks.secret import public_secret
from reelgate.wire.webhooks import headers_for

SECRET = public_secret(os.urandom(32).hex())
BODY = json.dumps(
    {
        "event": "TASK_END",
        "taskId": "2009191190196789249",
        "eventData": '{"taskId":"2009191190196789249","status":"SUCCESS"}',
    },
    separators=(",", ":"),
).encode()


def test_the_public_secret_is_whsec_and_the_key_bytes() -> None:
    stored = bytes(range(32)).hex()
    secret = public_secret(stored)
    assert secret.startswith("whsec_")
    assert base64.b64decode(secret.removeprefix("whsec_")) == bytes(range(32))
    assert public_secret(secret) == secret


def test_reelgate_signatures_verify_with_the_reference_library() -> None:
    headers = headers_for(SECRET, "123", BODY)
    assert Webhook(SECRET).verify(BODY, headers)["taskId"] == "2009191190196789249"
    # The same library refuses a changed body: the check above can fail.
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace(b"SUCCESS", b"FAILED"), headers)


def test_the_sdk_verifies_the_reference_library_signatures() -> None:
    now = datetime.now(UTC)
    signature = Webhook(SECRET).sign("msg_1", now, BODY.decode())
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": signature,
    }
    event = reelgate.client.verify_webhook(SECRET, headers, BODY)
    assert event.task_id == "2009191190196789249"
    assert event.task().status == "SUCCESS"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),
        lambda h, b: ({**h, "webhook-id": "other"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(int(time.time()) - 3600)}, b),
        lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b),
    ],
    ids=["body", "id", "no-signature", "replayed", "wrong-signature"],
)
def test_the_sdk_refuses_forged_or_replayed_deliveries(tamper: object) -> None:
    headers, body = tamper(headers_for(SECRET, "123", BODY), BODY)  # type: ignore[operator]
    with pytest.raises(reelgate.client.WebhookVerificationError):
        reelgate.client.verify_webhook(SECRET, headers, body)


def test_a_rotated_secret_list_verifies_with_either_signature() -> None:
    other = public_secret(os.urandom(32).hex())
    headers = headers_for(SECRET, "123", BODY)
    headers["webhook-signature"] = (
        headers_for(other, "123", BODY)["webhook-signature"] + " " + headers["webhook-signature"]
    )
    assert reelgate.client.verify_webhook(SECRET, headers, BODY).task_id == "2009191190196789249"
