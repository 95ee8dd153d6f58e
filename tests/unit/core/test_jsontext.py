"""JSON nesting measured on the text before parsing, and on values already parsed."""

from __future__ import annotations

import json

import pytest

from reelgate.core.jsontext import JsonTextError, loads, text_depth, value_depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[["', 0),
        ("[]", 1),
        ('{"a": [1, {"b": "]]]}}}"}]}', 3),
        (r'{"a": "\"[[[", "b": [[]]}', 3),
        (r'["\\", [["\\\""]]]', 3),
        ("[[[[]]], [[]]]", 4),
    ],
)
def test_depth_ignores_brackets_inside_strings(text: str, depth: int) -> None:
    assert text_depth(text) == depth
    assert value_depth(json.loads(text), 100) == depth


def test_a_document_at_the_limit_is_parsed_and_one_deeper_is_refused() -> None:
    assert loads("[" * 32 + "]" * 32, max_depth=32) == json.loads("[" * 32 + "]" * 32)
    with pytest.raises(JsonTextError, match="nested deeper than 32 levels"):
        loads("[" * 33 + "]" * 33, max_depth=32)


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_no_nesting_raises_recursion_error(opening: str) -> None:
    # Deep enough to overflow the parser's recursion many times over; unbalanced on purpose.
    with pytest.raises(JsonTextError, match="nested deeper"):
        loads(opening * 1_000_000, max_depth=1_000)


def test_not_json_is_refused_as_such() -> None:
    for raw in (b"\xc3(", b"{", b"[1,]", b"1" * 5000):
        with pytest.raises(JsonTextError, match="not valid JSON"):
            loads(raw, max_depth=32)


def test_every_encoding_json_allows_is_read() -> None:
    text = '{"prompt": "\u706f\u7b3c"}'
    for encoding in ("utf-8", "utf-16", "utf-32"):
        assert loads(text.encode(encoding), max_depth=32) == {"prompt": "\u706f\u7b3c"}


def test_value_depth_stops_counting_past_the_limit() -> None:
    value: list[object] = []
    for _ in range(10_000):
        value = [value]
    assert value_depth(value, 32) == 33
