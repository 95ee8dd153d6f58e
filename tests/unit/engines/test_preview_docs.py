"""docs/engines.md lists exactly the words the preview renderer reacts to."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelgate.engines.preview.grade import STYLE_WORDS
from reelgate.engines.preview.motion import MOVE_KEYWORDS, Move
from reelgate.engines.preview.sound import LAYER_WORDS

DOC = Path(__file__).resolve().parents[3] / "docs" / "engines.md"


def _row(first_cell: str) -> str:
    for line in DOC.read_text().splitlines():
        if line.startswith(f"| {first_cell} |"):
            return line
    raise AssertionError(f"docs/engines.md has no table row for {first_cell}")


@pytest.mark.parametrize("move", list(Move))
def test_camera_move_rows(move: Move) -> None:
    phrases = [phrase for phrase, target in MOVE_KEYWORDS.items() if target is move]
    assert _row(f"`{move.value}`").split(" | ")[1] == ", ".join(phrases)


def test_sound_and_style_rows() -> None:
    for layer, words in LAYER_WORDS.items():
        assert _row(layer.value).split(" | ")[1] == ", ".join(words)
    for style, words in STYLE_WORDS.items():
        assert _row(style.value).split(" | ")[1] == ", ".join(words)
