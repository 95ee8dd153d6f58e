"""The model catalogue: each model is data (its path, family, request schema and price)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from reelgate.core.errors import InvalidParameters
from reelgate.core.pricing import PriceRule
from reelgate.wire import WIRE_REQUESTS, ImageToVideoRequest, ModelRequest

#: The longest source clip a video-edit accepts (contract §3.1).
MAX_EDIT_SECONDS = 10


class Family(StrEnum):
    IMAGE_TO_VIDEO = "image-to-video"
    VIDEO_EDIT = "video-edit"


@dataclass(frozen=True)
class ModelSpec:
    path: str
    family: Family
    tier: str
    price: PriceRule

    @property
    def request_type(self) -> type[ModelRequest]:
        """The wire model of this endpoint's body."""
        return WIRE_REQUESTS[self.path]

    def parse(self, body: Any) -> ModelRequest:
        """Validate a JSON body; errors become 1007 with the field and the rule."""
        if not isinstance(body, dict):
            raise InvalidParameters("the request body must be a JSON object")
        try:
            request: ModelRequest = self.request_type.from_wire(body)
        except ValidationError as exc:
            raise InvalidParameters(describe_validation_error(exc)) from None
        return request

    def reserve_cost(self, request: ModelRequest) -> int:
        """Coins to hold at submit: the exact price, or the most an edit can cost."""
        if self.family is Family.IMAGE_TO_VIDEO:
            assert isinstance(request, ImageToVideoRequest)
            return self.price.cost(request.duration, request.sound)
        return self.price.cost(MAX_EDIT_SECONDS, True)

    def final_cost(self, request: ModelRequest, input_seconds: float | None) -> int:
        """Coins charged once the task succeeded (edits: by the source clip's real length)."""
        if self.family is Family.VIDEO_EDIT and input_seconds is not None:
            return self.price.cost(min(input_seconds, MAX_EDIT_SECONDS), True)
        return self.reserve_cost(request)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-after"))
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        parts.append(f"{where} {message}".strip() if where else message)
    return "; ".join(dict.fromkeys(parts))


_MODELS = [
    ModelSpec(
        "kling-video-o3-pro/image-to-video",
        Family.IMAGE_TO_VIDEO,
        "pro",
        PriceRule(87, 69),
    ),
    ModelSpec(
        "kling-video-o3-std/image-to-video",
        Family.IMAGE_TO_VIDEO,
        "std",
        PriceRule(69, 52),
    ),
    ModelSpec(
        "kling-video-o3-pro/video-edit",
        Family.VIDEO_EDIT,
        "pro",
        PriceRule(108, 108, by_input_seconds=True),
    ),
    ModelSpec(
        "kling-video-o3-std/video-edit",
        Family.VIDEO_EDIT,
        "std",
        PriceRule(81, 81, by_input_seconds=True),
    ),
]

CATALOGUE: dict[str, ModelSpec] = {m.path: m for m in _MODELS}


def get_model(path: str) -> ModelSpec | None:
    return CATALOGUE.get(path.strip("/"))
