"""Webhook endpoints: RunningHub's getWebhookDetail and retryWebhook, and the signing secret."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from reelgate.api.deps import Credentials, bearer_caller, v1_body_and_caller
from reelgate.api.deps import service as service_of
from reelgate.api.openapi import error_codes
from reelgate.api.openapi import json_body as body_doc
from reelgate.service import Caller
from reelgate.wire import Envelope
from reelgate.wire.webhooks import RetryWebhookRequest, WebhookDetail, WebhookDetailRequest

router = APIRouter(tags=["webhooks"])


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


@router.post(
    "/task/openapi/getWebhookDetail",
    summary="The webhook event of a task, and how its delivery went",
    description="`callbackStatus` is PENDING, RETRYING, SUCCESS or FAILED; `code 1` when the "
    "task has no webhook event (no `webhookUrl`, or it has not ended yet)."
    + error_codes("1002", "1004"),
    response_model=Envelope[WebhookDetail],
    openapi_extra=body_doc(WebhookDetailRequest),
)
async def get_webhook_detail(request: Request, credentials: Credentials) -> Envelope[WebhookDetail]:
    body, caller = await v1_body_and_caller(request, credentials)
    detail = await run_in_threadpool(
        service_of(request).webhook_detail, caller, _field(body, "taskId")
    )
    return Envelope(data=detail)


@router.post(
    "/task/openapi/retryWebhook",
    summary="Deliver a webhook event again",
    description="Starts a new round of attempts at once, with the same `webhook-id`; "
    "`webhookUrl` redirects this and later deliveries." + error_codes("1001", "1002", "1007"),
    response_model=Envelope[None],
    openapi_extra=body_doc(RetryWebhookRequest),
)
async def retry_webhook(request: Request, credentials: Credentials) -> Envelope[None]:
    body, caller = await v1_body_and_caller(request, credentials)
    await run_in_threadpool(
        service_of(request).retry_webhook,
        caller,
        _field(body, "webhookId"),
        _field(body, "webhookUrl"),
    )
    return Envelope(msg="", data=None)


class WebhookSecret(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    webhook_secret: str = Field(
        alias="webhookSecret",
        description="The key's Standard Webhooks signing secret (`whsec_…`).",
    )


@router.get(
    "/reelgate/v1/webhook-secret",
    summary="The signing secret of the calling key's webhooks (reelgate extension)",
    response_model=WebhookSecret,
    response_model_by_alias=True,
)
async def webhook_secret(
    caller: Annotated[Caller, Depends(bearer_caller)], request: Request
) -> Any:
    secret = await run_in_threadpool(service_of(request).webhook_secret, caller)
    return WebhookSecret(webhook_secret=secret)
