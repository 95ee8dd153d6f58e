"""``reelgate keys faults`` as an operator runs it: set, merge, show, clear; bad values refused
with exit code 2 and a message, never a traceback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_cli_admin import environment, reelgate


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'reelgate.db'}")
    assert reelgate(env, "db", "upgrade").returncode == 0
    return env


def faults(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = reelgate(env, "keys", "faults", *args, "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def refused(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in done.stderr and "Traceback" not in done.stderr


def test_faults_are_set_merged_shown_and_cleared(env: dict[str, str]) -> None:
    key = json.loads(reelgate(env, "keys", "create", "--name", "qa", "--json").stdout)
    prefix = key["apiKey"][:6]
    assert faults(env, prefix)["faults"] is None
    set_ = faults(env, prefix, "--fail-rate", "0.25", "--queue-delay", "5")
    assert (set_["id"], set_["prefix"], set_["name"]) == (key["id"], prefix, "qa")
    assert set_["faults"] == {
        "fail_rate": 0.25,
        "fail_code": "1015",
        "queue_delay_seconds": 5.0,
        "rate_limit_rate": 0.0,
        "webhook_delay_seconds": 0.0,
        "webhook_fail_rate": 0.0,
    }
    # Options given change only themselves; the key's id names it too.
    merged = faults(env, str(key["id"]), "--fail-code", "1006", "--webhook-fail-rate", "1")
    assert merged["faults"]["fail_rate"] == 0.25 and merged["faults"]["fail_code"] == "1006"
    assert merged["faults"]["webhook_fail_rate"] == 1.0
    assert faults(env, prefix)["faults"] == merged["faults"]
    shown = reelgate(env, "keys", "faults", prefix)
    assert shown.returncode == 0 and "fail_code 1006" in shown.stdout
    # --clear with options: those alone; --clear alone: none.
    only = faults(env, prefix, "--clear", "--rate-limit-rate", "0.5", "--webhook-delay", "2")
    assert {k: v for k, v in only["faults"].items() if v} == {
        "fail_code": "1015",
        "rate_limit_rate": 0.5,
        "webhook_delay_seconds": 2.0,
    }
    assert faults(env, prefix, "--clear")["faults"] is None
    assert "no faults" in reelgate(env, "keys", "faults", prefix).stdout


def test_bad_values_are_refused_with_a_message(env: dict[str, str]) -> None:
    key = json.loads(reelgate(env, "keys", "create", "--name", "qa", "--json").stdout)
    prefix = key["apiKey"][:6]
    refused(reelgate(env, "keys", "faults", prefix, "--fail-rate", "2"), "fail_rate")
    refused(reelgate(env, "keys", "faults", prefix, "--queue-delay", "-1"), "queue_delay")
    refused(reelgate(env, "keys", "faults", prefix, "--fail-code", "9999"), "fail_code")
    refused(reelgate(env, "keys", "faults", prefix, "--fail-rate", "nan"), "fail_rate")
    refused(reelgate(env, "keys", "faults", prefix, "--fail-rate", "lots"), "--fail-rate")
    refused(reelgate(env, "keys", "faults", "zzzzzz", "--fail-rate", "1"), "no key matches")
    # Nothing was changed by the refused commands.
    assert faults(env, prefix)["faults"] is None
