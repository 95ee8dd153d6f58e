"""The SDK's view of the wire models (``reelgate.wire``): requests that take local media, and
answers with what the SDK adds (progress and poll hints from headers, the upload's hash).

The request models check the same rules as the server, because they are the server's own
(``reelgate.wire.requests``), parametrised with a media type that also takes a local path or
bytes: a bad request fails at once with ``RequestValidationError`` naming the field, before any
upload. Python names are snake_case; the wire (camelCase) names are accepted too, and are what
is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StrictBytes, ValidationError
from pydantic.alias_generators import to_camel

from reelgate.client._errors import RequestValidationError
from reelgate.wire import (
    MODEL_REQUESTS,
    AccountStatus,
    ModelRequest,
    PricePreview,
    QueueStatus,
    ResultItem,
    ShotPrompt,
    TaskObject,
    TaskStatus,
    Usage,
    number,
    requests,
    responses,
)

__all__ = [
    "REQUEST_MODELS",
    "AccountStatus",
    "KlingO3ProImageToVideo",
    "KlingO3ProVideoEdit",
    "KlingO3StdImageToVideo",
    "KlingO3StdVideoEdit",
    "Media",
    "ModelRequest",
    "Output",
    "PricePreview",
    "QueueStatus",
    "ShotPrompt",
    "TaskInfo",
    "TaskStatus",
    "UploadedFile",
    "Usage",
    "number",
    "parse_request",
]

#: A media value: a URL, a local path, or the file's bytes (local ones are uploaded first).
Media = requests.MediaUrl | Path | Annotated[StrictBytes, Field(min_length=1)]

KlingO3ProImageToVideo = requests.KlingO3ProImageToVideo[Media]
KlingO3StdImageToVideo = requests.KlingO3StdImageToVideo[Media]
KlingO3ProVideoEdit = requests.KlingO3ProVideoEdit[Media]
KlingO3StdVideoEdit = requests.KlingO3StdVideoEdit[Media]

#: The typed request model of each model path the SDK knows.
REQUEST_MODELS: dict[str, type[ModelRequest]] = {
    model.model_path: model[Media]  # type: ignore[index]
    for model in MODEL_REQUESTS
}

#: One item of ``results``: a file (``url``) or a text answer (``text``).
Output = ResultItem


def parse_request(model: type[ModelRequest], data: dict[str, Any]) -> ModelRequest:
    """Validate keyword or wire-named fields; a typo or a broken rule raises
    ``RequestValidationError`` naming the field."""
    known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    unknown = [name for name in data if name not in known]
    if unknown:
        raise RequestValidationError(
            f"{model.model_path}: "
            + "; ".join(f"{to_camel(name)} is not a field of this model" for name in unknown)
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(describe(exc, model.model_path)) from None


def describe(exc: ValidationError, model_path: str) -> str:
    """One line naming each wrong field (by its wire name) and the rule it broke."""
    by_place: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        # Keep field names and list indexes; drop the tags pydantic adds for union members.
        loc = [
            str(p) if isinstance(p, int) else to_camel(p)
            for p in error["loc"]
            if isinstance(p, int)
            or (p.isidentifier() and p[0].islower() and p not in ("str", "bytes", "int", "bool"))
        ]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        messages = by_place.setdefault(".".join(loc), [])
        if message not in messages:
            messages.append(message)
    parts: list[str] = []
    for where, messages in by_place.items():
        if len(messages) > 1 and all(m.startswith("Input should be") for m in messages):
            alternatives = [m.removeprefix("Input should be ") for m in messages]
            messages = ["Input should be " + " or ".join(alternatives)]
        parts.extend(f"{where} {m}".strip() for m in messages)
    return f"{model_path}: " + "; ".join(parts)


class TaskInfo(TaskObject):
    """A task as the server last described it: the wire's task object, plus reelgate's hints."""

    #: 0..1 while running, when the server says (``X-Reelgate-Progress``).
    progress: float | None = Field(None, exclude=True)
    #: Seconds the server suggests before the next query (``X-Reelgate-Poll-After``).
    poll_after: float | None = Field(None, exclude=True)

    @property
    def done(self) -> bool:
        return self.status.is_terminal

    @property
    def outputs(self) -> list[ResultItem]:
        """``results``, or an empty list while there are none."""
        return list(self.results or [])

    def to_json(self) -> dict[str, Any]:
        """The wire object (``taskId``, ``status``, …), with any field the server added."""
        return self.to_wire()


class UploadedFile(responses.UploadedFile):
    """A file stored by ``media/upload/binary``; its ``download_url`` is valid for one day."""

    #: SHA-256 of the content, computed by the SDK (the server does not send it).
    sha256: str = Field("", exclude=True)

    @property
    def size_bytes(self) -> int:
        return int(number(self.size) or 0)

    def to_json(self) -> dict[str, Any]:
        return {**self.to_wire(), "sha256": self.sha256}
