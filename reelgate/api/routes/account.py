"""Account status (v1 envelope) and queue status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from reelgate.api.deps import Credentials, bearer_caller, service, v1_body_and_caller
from reelgate.api.openapi import error_codes
from reelgate.api.openapi import json_body as body_doc
from reelgate.service import Caller
from reelgate.wire import AccountRequest, AccountStatus, Envelope, QueueStatus

router = APIRouter(tags=["account"])


@router.post(
    "/uc/openapi/accountStatus",
    summary="Coins and current tasks of a key",
    description="The key travels in the body as `apikey`; the Bearer header is the fallback."
    + error_codes("1002"),
    response_model=Envelope[AccountStatus],
    openapi_extra=body_doc(AccountRequest),
)
async def account_status(request: Request, credentials: Credentials) -> Envelope[AccountStatus]:
    _body, caller = await v1_body_and_caller(request, credentials, field="apikey")
    data = await run_in_threadpool(service(request).account, caller)
    return Envelope(data=data)


@router.get(
    "/openapi/v2/queue/status",
    summary="Concurrency limit and current tasks of a key",
    description=error_codes("1002"),
    response_model=Envelope[QueueStatus],
)
async def queue_status(
    request: Request, caller: Annotated[Caller, Depends(bearer_caller)]
) -> Envelope[QueueStatus]:
    data = await run_in_threadpool(service(request).queue_status, caller)
    return Envelope(data=data)
