"""The layering of docs/architecture.md, checked on the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reelgate"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def offenders(folder: str, forbidden: tuple[str, ...], *, but: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules(folder)
        if not any(path.is_relative_to(PACKAGE / allowed) for allowed in but)
        for name in sorted(imports_of(path))
        if name.startswith(forbidden)
    ]


def reelgate_imports_outside(folder: str, allowed: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules(folder)
        for name in sorted(imports_of(path))
        if name.startswith("reelgate") and not name.startswith(allowed)
    ]


def test_the_wire_imports_nothing_of_the_server() -> None:
    assert reelgate_imports_outside("wire", ("reelgate.wire",)) == []
    assert offenders("wire", ("fastapi", "starlette", "sqlalchemy", "av", "httpx")) == []


def test_the_sdk_imports_only_itself_and_the_wire() -> None:
    outside = reelgate_imports_outside("client", ("reelgate.client", "reelgate.wire"))
    # ``from reelgate import __version__`` is the one name it takes from the package root.
    assert [i for i in outside if not i.endswith(" reelgate")] == []


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        # Routes may name the task row's type (answers read it), never open the store.
        (
            "api/routes",
            (
                "reelgate.store.db",
                "reelgate.store.repo",
                "reelgate.store.queue",
                "reelgate.storage",
                "reelgate.runtime",
                "sqlalchemy",
            ),
        ),
        # The dashboard's routes and views: as the API's routes.
        (
            "api/dashboard",
            (
                "reelgate.store.db",
                "reelgate.store.repo",
                "reelgate.store.queue",
                "reelgate.storage",
                "reelgate.runtime",
                "sqlalchemy",
            ),
        ),
        ("worker", ("reelgate.service", "reelgate.api")),
        ("store", ("reelgate.service", "reelgate.api", "reelgate.worker")),
        ("core", ("reelgate.service", "reelgate.api", "reelgate.store", "sqlalchemy", "fastapi")),
        ("engines", ("reelgate.service", "reelgate.api", "reelgate.worker")),
        # Files by key: nothing of the database, the use-cases or the API.
        (
            "storage",
            ("reelgate.service", "reelgate.api", "reelgate.store", "reelgate.worker", "sqlalchemy"),
        ),
    ],
)
def test_layers_call_only_downwards(folder: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(folder, forbidden) == []


def test_only_remote_engines_keep_state_in_the_store() -> None:
    """A remote engine's key slots live in the database; local engines never touch it (the
    registry only hands the database to the engines that need it). The slots are the shared
    remote mechanism's (``engines/remote.py``); the remote engines hand it the database, and
    the upstream's pool refreshes its keys' rows."""
    remote = (
        "engines/upstream",
        "engines/openai_videos",
        "engines/remote.py",
        "engines/registry.py",
    )
    assert offenders("engines", ("reelgate.store",), but=remote) == []
