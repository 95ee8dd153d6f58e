"""The SDK's public surface, and its independence from the server."""

from __future__ import annotations

import json
import subprocess
import sys

import reelgate.client
from tests.client.conftest import ROOT

SERVER_SIDE = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "av",
    "numpy",
    "cv2",
    "PIL",
    "uvicorn",
    "reelgate.api",
    "reelgate.store",
    "reelgate.worker",
    "reelgate.engines",
    "reelgate.core",
    "reelgate.service",
    "reelgate.config",
    "reelgate.media",
    "reelgate.storage",
    "reelgate.runtime",
)


def test_all_lists_exactly_the_public_names_sorted() -> None:
    public = {name for name in vars(reelgate.client) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(reelgate.client, name)).__name__ == "module"}
    assert set(reelgate.client.__all__) == public - modules
    # isort style, as ruff keeps it: CONSTANTS, then Classes, each group in code-point order.
    constants = [n for n in reelgate.client.__all__ if n.isupper()]
    others = [n for n in reelgate.client.__all__ if not n.isupper()]
    assert reelgate.client.__all__ == sorted(constants) + sorted(others)


def test_the_batch_module_is_public_and_its_types_are_exported() -> None:
    assert reelgate.client.batch.__all__ == [
        "DEFAULT_CAPACITY_PATIENCE",
        "DEFAULT_CONCURRENCY",
        "Batch",
        "BatchEvent",
        "BatchJob",
        "BatchJobChanged",
        "BatchJournal",
        "BatchResult",
        "BatchStarted",
        "JobState",
        "JournalUploadCache",
        "make_jobs",
        "read_jobs",
    ]
    functions = {"make_jobs", "read_jobs"}  # reelgate.client.batch.read_jobs, not top level
    for name in set(reelgate.client.batch.__all__) - functions:
        assert getattr(reelgate.client, name) is getattr(reelgate.client.batch, name), name
        assert name in reelgate.client.__all__, name
    for name in functions:
        assert name not in reelgate.client.__all__, name


def test_every_exported_error_documents_itself() -> None:
    for name in reelgate.client.__all__:
        value = getattr(reelgate.client, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert value.__doc__ and name in reelgate.client._errors.__doc__, name


def test_importing_the_sdk_and_cli_commands_pulls_in_nothing_server_side() -> None:
    code = (
        "import sys, json, reelgate.client, reelgate.client.batch, reelgate.cli.client_commands,"
        " reelgate.cli.batch; print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    )
    leaked = [m for m in loaded if m.split(".")[0] in SERVER_SIDE or m.startswith(SERVER_SIDE)]
    assert leaked == []


def test_the_sdk_pulls_in_neither_the_cli_nor_typer() -> None:
    cli = ["reelgate", "cli"]
    # rich may come with httpx's own command line; the SDK itself never draws anything.
    code = (
        "import sys, json, reelgate.client, reelgate.client.batch;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    )
    assert [m for m in loaded if m.split(".")[0] == "typer" or m.split(".")[:2] == cli] == []
