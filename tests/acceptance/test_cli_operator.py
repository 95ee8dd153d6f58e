"""The operator's controls as a user runs them: ``keys disable`` cancelling a key's tasks,
``tasks list`` and ``tasks cancel``, and every operator command refusing bad input with a
sentence and exit code 2."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from reelgate.runtime import Runtime
from reelgate.service import Service
from tests.acceptance.test_cli_admin import environment, reelgate
from tests.conftest import make_settings

STD = "kling-video-o3-std/image-to-video"
PRO = "kling-video-o3-pro/image-to-video"
BODY = {"prompt": "street", "firstImageUrl": "https://example.com/a.png", "duration": 3}


def submit(runtime: Runtime, api_key: str, model: str = STD) -> tuple[str, int]:
    """Submit as the API would, with no worker running: the task stays QUEUED."""
    service = Service(runtime)
    task = service.submit(service.authenticate(api_key), model, BODY)
    return str(task.id), task.reserved_coins


def json_of(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_disable_cancels_queued_tasks_and_tasks_lists_and_cancels(
    tmp_path: Path, db_url: str
) -> None:
    env = environment(tmp_path, db_url)
    leaked = json_of(
        reelgate(env, "keys", "create", "--name", "leaked", "--coins", "1000", "--json")
    )
    other = json_of(reelgate(env, "keys", "create", "--name", "other", "--coins", "1000", "--json"))
    runtime = Runtime.open(make_settings(tmp_path / "data", db_url))
    try:
        first, first_price = submit(runtime, leaked["apiKey"])
        second, second_price = submit(runtime, leaked["apiKey"], PRO)
        theirs, their_price = submit(runtime, other["apiKey"])
    finally:
        runtime.close()
    prefix = leaked["apiKey"][:6]

    listed = json_of(reelgate(env, "tasks", "list", "--json"))
    assert [row["taskId"] for row in listed] == [theirs, second, first]  # newest first
    assert listed[0]["keyName"] == "other" and listed[0]["status"] == "QUEUED"
    assert listed[0]["reservedCoins"] == their_price and listed[0]["chargedCoins"] is None
    mine = json_of(reelgate(env, "tasks", "list", "--key", prefix, "--status", "queued", "--json"))
    assert [row["taskId"] for row in mine] == [second, first]
    assert [
        r["taskId"] for r in json_of(reelgate(env, "tasks", "list", "--model", PRO, "--json"))
    ] == [second]
    table = reelgate(env, "tasks", "list", "--since", "1h")
    assert table.returncode == 0 and theirs in table.stdout and "held" in table.stdout

    cancelled = json_of(reelgate(env, "tasks", "cancel", theirs, "--json"))
    assert (cancelled["cancelled"], cancelled["coinsRefunded"]) == (1, their_price)
    assert cancelled["taskIds"] == [theirs]

    disabled = json_of(reelgate(env, "keys", "disable", prefix, "--json"))
    assert disabled["disabled"] is True and disabled["coins"] == 1000
    assert disabled["tasks"]["cancelled"] == 2 and disabled["tasks"]["queued"] == 2
    assert disabled["tasks"]["coinsRefunded"] == first_price + second_price
    assert sorted(disabled["tasks"]["taskIds"]) == sorted([first, second])
    keys = {k["name"]: k for k in json_of(reelgate(env, "keys", "list", "--json"))}
    assert (keys["leaked"]["coins"], keys["other"]["coins"]) == (1000, 1000)
    ended = json_of(reelgate(env, "tasks", "list", "--status", "CANCEL", "--json"))
    assert {row["taskId"] for row in ended} == {first, second, theirs}
    assert all(row["chargedCoins"] == 0 for row in ended)

    nothing_left = reelgate(env, "tasks", "cancel", "--all-queued", "--running")
    assert nothing_left.returncode == 0
    assert "cancelled 0 tasks (0 queued, 0 running); 0 coins refunded" in nothing_left.stdout
    finished = reelgate(env, "tasks", "cancel", first, "404")
    assert finished.returncode == 1  # a task id that names no task
    assert f"task {first} is CANCEL" in finished.stdout and "no task 404" in finished.stderr


def flat(text: str) -> str:
    """The words of an error, whatever box and line breaks the terminal output put around them."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["keys", "create", "--name", ""], "the key's name cannot be empty"),
        (["keys", "create", "--name", "x" * 201], "201 characters long; at most 200"),
        (["keys", "create", "--name", "ci", "--coins", str(2**63)], "coins must be at most"),
        (["keys", "create", "--name", "ci", "--coins", "lots"], "Invalid value for '--coins'"),
        (["keys", "create", "--name", "ci", "--concurrency", "10001"], "at most 10000"),
        (["keys", "disable", "zzzzzz"], "no key matches 'zzzzzz'"),
        (["serve", "--port", "0"], "Invalid value for '--port'"),
        (["serve", "--port", "65536"], "Invalid value for '--port'"),
        (["serve", "--workers", "-1"], "Invalid value for '--workers'"),
        (["serve", "--host", " "], "the address cannot be empty"),
        (["worker", "--concurrency", "0"], "Invalid value for '--concurrency'"),
        (["tasks", "list", "--status", "DONE"], "'DONE' is not a task status; use QUEUED"),
        (["tasks", "list", "--since", "yesterday"], "is neither a time"),
        (["tasks", "list", "--limit", "0"], "Invalid value for '--limit'"),
        (["tasks", "list", "--key", "zzzzzz"], "no key matches 'zzzzzz'"),
        (["tasks", "cancel"], "say which tasks to cancel"),
        (["tasks", "cancel", "--key", "k", "--all-queued"], "only one of --key, --all-queued"),
        (["tasks", "cancel", "12ab"], "a task id is a number"),
        (["tasks", "cancel", str(2**63)], "no task id is as large as"),
    ],
)
def test_operator_commands_refuse_bad_input(tmp_path: Path, args: list[str], why: str) -> None:
    refused = reelgate(environment(tmp_path, f"sqlite:///{tmp_path / 'r.db'}"), *args)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert why in flat(refused.stderr)
    assert "Traceback" not in refused.stderr + refused.stdout
