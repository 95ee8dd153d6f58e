"""Finding the keywords of a prompt: whole words and phrases, case and punctuation ignored."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def normalise(prompt: str) -> str:
    """Lower case, punctuation to single spaces, padded so that ``" word "`` finds whole words."""
    return f" {_NOT_WORD.sub(' ', prompt.lower()).strip()} "


def first_match(prompt: str, table: Mapping[str, T]) -> T | None:
    """The value of the phrase that appears earliest in the prompt (longest phrase on a tie)."""
    text = normalise(prompt)
    best: tuple[int, int, T] | None = None
    for phrase, value in table.items():
        at = text.find(f" {phrase} ")
        if at >= 0 and (best is None or (at, -len(phrase)) < (best[0], best[1])):
            best = (at, -len(phrase), value)
    return best[2] if best else None


def all_matches(prompt: str, table: Mapping[str, T]) -> list[T]:
    """The values of every phrase in the prompt, in the table's order, each value once."""
    text = normalise(prompt)
    found: list[T] = []
    for phrase, value in table.items():
        if f" {phrase} " in text and value not in found:
            found.append(value)
    return found


def contains_any(prompt: str, phrases: Iterable[str]) -> bool:
    text = normalise(prompt)
    return any(f" {phrase} " in text for phrase in phrases)
