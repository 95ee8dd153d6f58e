"""The two model bases of the wire: strict for what clients send, lenient for what servers answer.

Python names are snake_case; the wire names (camelCase, as RunningHub spells them) are the
aliases, and are what is serialised. Requests are strict, as RunningHub's parameter-typing rules
require (a ``"5"`` where the contract says integer is an error). Answers are parsed leniently,
because the SDK reads them from RunningHub too, whose answers vary (numbers sent as strings or as
numbers, ``null`` where a string is documented); reelgate itself always sends the documented
types.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: snake_case in Python, camelCase on the wire; both names are read, the wire's is written.
_WIRE_NAMES = ConfigDict(
    alias_generator=to_camel,
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
    frozen=True,
)


class WireRequest(BaseModel):
    """A request body. Unknown fields are ignored, as RunningHub does."""

    model_config = ConfigDict(**_WIRE_NAMES, strict=True, extra="ignore")

    @classmethod
    def from_wire(cls, body: Any) -> Any:
        """Validate a JSON body by its wire names only (``firstImageUrl``, never ``first_…``)."""
        return cls.model_validate(body, by_alias=True, by_name=False)


class WireAnswer(BaseModel):
    """An answer body. Fields a server added and this version does not know are kept."""

    model_config = ConfigDict(**_WIRE_NAMES, coerce_numbers_to_str=True, extra="allow")

    def to_wire(self) -> dict[str, Any]:
        """The JSON object with wire names, in wire order."""
        return self.model_dump(mode="json", by_alias=True)


def _is_none(value: object) -> bool:
    return value is None


def sent_when_set(default: Any = None, **kwargs: Any) -> Any:
    """A field that is left out of the answer while it is ``None`` (``usage`` before a task
    ends, ``failedReason`` unless it failed, the v1 ``errorMessage`` unless it is an error)."""
    return Field(default, exclude_if=_is_none, **kwargs)
