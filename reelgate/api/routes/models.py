"""Model endpoints, one route per catalogue entry, and their price previews."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from reelgate.api import answers
from reelgate.api.deps import (
    base_url,
    bearer_caller,
    bearer_key,
    body_or_refusal,
    json_body,
    service,
)
from reelgate.api.errors import MethodNotSupported
from reelgate.api.openapi import error_codes
from reelgate.api.openapi import json_body as body_doc
from reelgate.api.routes.tasks import task_answer
from reelgate.core.catalogue import CATALOGUE, ModelSpec
from reelgate.service import Caller
from reelgate.wire import PricePreview, TaskObject

router = APIRouter(tags=["models"])

CallerDep = Annotated[Caller, Depends(bearer_caller)]
#: The key of a submit, authenticated (and counted) by the submit's own service call.
KeyDep = Annotated[str | None, Depends(bearer_key)]
Submit = Callable[[Request, Response, str | None], Awaitable[TaskObject]]
Price = Callable[[Request, Caller], Awaitable[PricePreview]]

_SUBMIT_CODES = error_codes("1002", "1003", "1007", "416", "421")


async def _submit(
    path: str, request: Request, response: Response, api_key: str | None
) -> TaskObject:
    body, refused = await body_or_refusal(request)
    svc = service(request)
    base = base_url(request)
    # The key, its rate limit and the submit in one call: one hop to a thread.
    task = await run_in_threadpool(
        lambda: svc.submit_as(
            api_key,
            path,
            body,
            refused=refused,
            idempotency_key=request.headers.get("idempotency-key"),
            links_base_url=base,
        )
    )
    request.app.state.metrics.task_submitted(task.model)
    return task_answer(task, svc, base, response)


async def _price(path: str, request: Request) -> PricePreview:
    body = await json_body(request)
    coins = await run_in_threadpool(service(request).price, path, body)
    return answers.price(coins)


def _submit_route(model: ModelSpec) -> Submit:
    async def submit(request: Request, response: Response, api_key: KeyDep) -> TaskObject:
        return await _submit(model.path, request, response, api_key)

    return submit


def _price_route(model: ModelSpec) -> Price:
    async def price(request: Request, caller: CallerDep) -> PricePreview:
        return await _price(model.path, request)

    return price


for _model in CATALOGUE.values():
    _name = _model.path.replace("-", "_").replace("/", "__")
    router.add_api_route(
        f"/openapi/v2/{_model.path}",
        _submit_route(_model),
        methods=["POST"],
        response_model=TaskObject,
        name=f"submit__{_name}",
        summary=f"Submit a task to {_model.path}",
        description=(_model.request_type.__doc__ or "")
        + "\n\nThe answer is the same object as `/openapi/v2/query`; poll that until the task "
        "ends." + _SUBMIT_CODES,
        openapi_extra=body_doc(_model.request_type),
    )
    router.add_api_route(
        f"/openapi/v2/price-preview/{_model.path}",
        _price_route(_model),
        methods=["POST"],
        response_model=PricePreview,
        name=f"price__{_name}",
        summary=f"Price of a {_model.path} request, validated but not run",
        description="The same body as the submit; nothing is run or charged."
        + error_codes("1002", "1007"),
        openapi_extra=body_doc(_model.request_type),
    )


# Paths under /openapi/v2 outside the catalogue: passed through to the upstream when routing
# sends them there, otherwise answered as RunningHub does (1007, unknown model).
@router.post("/openapi/v2/price-preview/{vendor}/{action}", include_in_schema=False)
async def price_other(vendor: str, action: str, request: Request, caller: CallerDep) -> Any:
    return (await _price(f"{vendor}/{action}", request)).to_wire()


def _not_another_method(request: Request) -> None:
    """A fixed path asked with a method it does not take (``POST /openapi/v2/queue/status``)
    lands here: that is a wrong method (1009), not an unknown model. Checked before the key, as
    for any other wrong method."""
    if any(route.matches(request.scope)[0] is Match.PARTIAL for route in request.app.routes):
        raise MethodNotSupported(f"{request.method} is not supported here")


@router.post(
    "/openapi/v2/{vendor}/{action}",
    include_in_schema=False,
    dependencies=[Depends(_not_another_method)],
)
async def submit_other(
    vendor: str, action: str, request: Request, response: Response, api_key: KeyDep
) -> Any:
    return (await _submit(f"{vendor}/{action}", request, response, api_key)).to_wire()
