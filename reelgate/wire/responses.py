"""Answer bodies: the v2 task object, the v1 and upload envelopes, and the data they carry.

reelgate builds these and sends ``to_wire()`` of them; the SDK parses RunningHub's and
reelgate's answers into the same classes. Field order is wire order; fields that are sent only
in some states (``failedReason``, ``usage``, the v1 ``errorMessage``) are sent only when set.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AliasChoices, BeforeValidator, ConfigDict, Field

from reelgate.wire._base import WireAnswer, sent_when_set
from reelgate.wire.status import TaskStatus

T = TypeVar("T")


def _code(value: object) -> str:
    """Error codes are strings; some servers send ``0`` (or ``null``) for none."""
    code = str(value if value is not None else "").strip()
    return "" if code == "0" else code


def _text(value: object) -> object:
    return "" if value is None else value


#: A string that a server may also send as ``null`` (read as ``""``).
Text = Annotated[str, BeforeValidator(_text)]
ErrorCode = Annotated[str, BeforeValidator(_code)]
Status = Annotated[TaskStatus, BeforeValidator(TaskStatus.from_wire)]


def number(value: object) -> int | float | None:
    """A number that RunningHub sends as a string; ``None`` when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        parsed = float(str(value).strip())
    except ValueError:
        return None
    if not math.isfinite(parsed):
        return None
    return int(parsed) if parsed.is_integer() else parsed


class ResultItem(WireAnswer):
    """One item of ``results``: a file (``url``) or a text answer (``text``)."""

    url: str | None = Field(
        None,
        validation_alias=AliasChoices("url", "outputUrl", "fileUrl"),
        serialization_alias="url",
        description="A signed link to the file.",
    )
    #: The file extension, e.g. ``"mp4"``.
    output_type: Text = Field(
        "",
        validation_alias=AliasChoices("outputType", "fileType"),
        serialization_alias="outputType",
        description="The file extension, e.g. `mp4`.",
    )
    text: str | None = Field(
        None,
        validation_alias=AliasChoices("text", "content", "output"),
        serialization_alias="text",
        description="A text output (none for videos).",
    )
    node_id: Text = Field("", description="Empty for model endpoints.")


class Usage(WireAnswer):
    """What a finished task cost. Numbers travel as strings, as on RunningHub."""

    consume_coins: Text = Field("", description="RH coins charged.", examples=["435"])
    task_cost_time: Text = Field("", description="Seconds of generation.", examples=["32"])
    consume_money: Text = Field("", description="Yuan charged.", examples=["4.35"])
    third_party_consume_money: str | None = None

    @property
    def coins(self) -> int | float | None:
        return number(self.consume_coins)

    @property
    def cost_seconds(self) -> int | float | None:
        return number(self.task_cost_time)


class FailedReason(WireAnswer):
    """RunningHub's workflow-failure object (snake_case on the wire)."""

    model_config = ConfigDict(alias_generator=None)

    node_id: Text = ""
    node_name: Text = ""
    exception_type: Text = ""
    exception_message: Text = ""
    traceback: Text = ""
    current_inputs: Text = ""
    current_outputs: Text = ""


class TaskObject(WireAnswer):
    """The flat v2 task object: the answer of every submit and of ``/openapi/v2/query``.

    A refused request (bad key, invalid body, …) has the same shape with ``status: FAILED``,
    an ``errorCode`` and no ``taskId``; a rate-limited one is a ``RateLimitedTask``.
    """

    task_id: Text = Field(description="The task's 19-digit id.", examples=["2009191190196789249"])
    status: Status = Field(description="QUEUED, RUNNING, SUCCESS, FAILED or CANCEL.")
    error_code: ErrorCode = Field("", description="Empty while healthy; the contract's code.")
    error_message: Text = Field("", description="Empty while healthy; what went wrong.")
    results: list[ResultItem] | None = Field(None, description="The outputs, once SUCCESS.")
    client_id: Text = ""
    prompt_tips: Text = ""
    failed_reason: FailedReason | None = sent_when_set(description="Sent when FAILED.")
    usage: Usage | None = sent_when_set(description="Sent once the task ended.")


class RateLimitedTask(WireAnswer):
    """A v2 task path's answer to a rate-limited request (HTTP 429 with ``Retry-After``).

    The task object's fields, with the ``taskId`` that was asked about (if any), ``1003``, and
    no ``status``: the request was not served, so nothing is said about the task. Never
    ``FAILED``, which a RunningHub client polling the task would take for the task's end.
    """

    task_id: Text = Field("", description="The task the request asked about, if any.")
    status: None = Field(None, description="Always null: the task was not looked at.")
    error_code: ErrorCode = Field("1003", description="`1003`.")
    error_message: Text = ""
    results: None = None
    client_id: Text = ""
    prompt_tips: Text = ""


class Envelope(WireAnswer, Generic[T]):
    """The v1 envelope ``{code, msg, data}``; errors add ``errorMessage``."""

    code: int = Field(0, description="0 on success; a v1 code (802, 807, 804, …) otherwise.")
    msg: Text = "success"
    data: T | None = None
    error_message: str | None = sent_when_set(description="Sent with errors: the v2 message.")


class UploadEnvelope(WireAnswer, Generic[T]):
    """The upload envelope: documented with ``message``, seen with ``msg``; both are sent."""

    code: int = 0
    message: Text = "success"
    msg: Text = "success"
    data: T | None = None
    error_messages: Any = None


class UploadedFile(WireAnswer):
    """``data`` of ``media/upload/binary``: the link is what model endpoints take."""

    type: Text = Field("", description="image, video, audio or zip.")
    download_url: str = Field(alias="download_url", description="A signed link, valid for one day.")
    file_name: Text = Field("", description="The stored name, e.g. `openapi/<sha256>.png`.")
    size: Text = Field("", description="Bytes, as a string.")


class LegacyUpload(WireAnswer):
    """``data`` of the deprecated ``/task/openapi/upload``."""

    file_name: Text = ""
    file_type: Text = "input"


class AccountStatus(WireAnswer):
    """``data`` of ``/uc/openapi/accountStatus``; numbers travel as strings."""

    remain_coins: Text = ""
    current_task_counts: Text = ""
    remain_money: str | None = None
    currency: str | None = None
    api_type: str | None = None

    @property
    def coins(self) -> int | float | None:
        """``remainCoins`` as a number."""
        return number(self.remain_coins)

    @property
    def current_tasks(self) -> int | float | None:
        """``currentTaskCounts`` as a number."""
        return number(self.current_task_counts)


class QueueStatus(WireAnswer):
    """``data`` of ``/openapi/v2/queue/status``."""

    api_key_type: str | None = None
    concurrent_limit: int | None = None
    running_count: int | None = None
    queued_count: int | None = None
    total_current_tasks: int | None = None
    instance_count: int | None = None


class PricePreview(WireAnswer):
    """``/openapi/v2/price-preview/{model}``: what a request would cost, without running it."""

    error_code: ErrorCode = ""
    error_message: Text = ""
    estimated_price: float | None = Field(None, description="Yuan.")
    currency: str | None = "CNY"
    price_text: Text = ""
    price_text_en: Text = ""
    free_limit: int = 0
    free_limit_count: int = 0
    remaining_free_limit_count: int = 0
    is_free_this_call: bool = False


class OutputFile(WireAnswer):
    """One item of the deprecated ``/task/openapi/outputs``; numbers travel as strings."""

    file_url: Text = ""
    file_type: Text = ""
    task_cost_time: Text = ""
    node_id: Text = ""
    third_party_consume_money: str | None = None
    consume_money: Text = ""
    consume_coins: Text = ""
