"""The wire does not change by accident: every answer of the corpus is byte-identical to the
recorded one (see ``corpus.py`` for what is normalised and how to record again)."""

from __future__ import annotations

import json
import os

from reelgate.runtime import Runtime
from tests.conftest import LiveServer
from tests.golden.corpus import ANSWERS, run_corpus


def test_every_answer_is_byte_identical_to_the_recorded_one(
    runtime: Runtime, live_server: LiveServer
) -> None:
    records = run_corpus(runtime, live_server.url)
    if os.environ.get("RECORD_GOLDEN") == "1":
        ANSWERS.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    recorded = json.loads(ANSWERS.read_text())
    assert [r["name"] for r in records] == [r["name"] for r in recorded]
    for got, want in zip(records, recorded, strict=True):
        assert got == want, got["name"]
