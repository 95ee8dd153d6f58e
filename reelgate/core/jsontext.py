"""JSON text read with a bound on its nesting, and the nesting of values already read.

``json.loads`` recurses once per level of nesting: a body of a few thousand ``[`` raises
``RecursionError`` in the parser (or, past it, in whatever walks the value next: validation,
``json.dumps`` when it is stored). So the depth is measured on the text first, with the C-speed
parts of the standard library (strings removed by one regular expression, brackets kept by
``bytes.translate``), and a body nested deeper than the limit is refused before it is parsed.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

#: A JSON string, escapes included (unrolled so that long strings match in one C loop).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Every byte but the four brackets, for ``bytes.translate`` to delete.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
#: +1 for an opening bracket, -1 for a closing one, by byte value.
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonTextError(ValueError):
    """The text is not JSON, or is nested deeper than allowed (the message says which)."""


def text_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (0 for a scalar).

    Brackets inside strings do not count. On text that is not JSON the answer is only an
    estimate (an unterminated string's brackets count), which is enough to refuse it.
    """
    brackets = _STRING.sub("", text).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets))))


def loads(raw: bytes | str, *, max_depth: int) -> Any:
    """Parse a JSON document nested at most ``max_depth`` levels deep.

    Raises ``JsonTextError`` when it is not JSON (any encoding ``json.loads`` detects) or is
    nested deeper; never ``RecursionError``.
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode(json.detect_encoding(raw))
        except UnicodeDecodeError:
            raise JsonTextError("the request body is not valid JSON") from None
    else:
        text = raw
    if text_depth(text) > max_depth:
        raise JsonTextError(f"the request body is nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise JsonTextError("the request body is not valid JSON") from None


def value_depth(value: Any, limit: int) -> int:
    """The nesting of a parsed JSON value, counted without recursion and no further than
    ``limit + 1`` (enough to tell that it is too deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
