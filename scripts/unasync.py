#!/usr/bin/env python3
"""Generate the blocking SDK client (``_client.py``) from the async one (``_async.py``).

The two clients must behave the same, so only one is written by hand: ``AsyncClient``. This
script rewrites it token by token, as httpcore's ``unasync`` does, and formats the result with
ruff. ``--check`` fails (exit 1) when the committed ``_client.py`` is not what the script makes.

    python scripts/unasync.py          # write reelgate/client/_client.py
    python scripts/unasync.py --check  # CI: is it current?
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parent.parent / "reelgate" / "client"
SOURCE, TARGET = CLIENT / "_async.py", CLIENT / "_client.py"

#: Whole phrases first (docstrings, calls that change shape), then identifiers and keywords.
PHRASES = [
    ("the asyncio (and trio) client", "the blocking client"),
    ("An async client", "A blocking client"),
    ("await anyio.to_thread.run_sync(local.sha256)", "local.sha256()"),
    ("(await self._upload_local(r.media))", "self._upload_local(r.media)"),
    ("import anyio\n", "import threading\n"),
    ("anyio.sleep(", "time.sleep("),
    ("anyio.Lock", "threading.Lock"),
    ("httpx.AsyncBaseTransport", "httpx.BaseTransport"),
    ("httpx.AsyncClient", "httpx.Client"),
]
TOKENS = [
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\bAsyncClient\b", "Client"),
    (r"\bAsyncTask\b", "Task"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\baiter_bytes\b", "iter_bytes"),
    (r"``await (\w)", r"``\1"),
]
HEADER = "# Generated from _async.py by scripts/unasync.py: edit that file, then run the script.\n"


def unasync(source: str) -> str:
    for old, new in PHRASES:
        if old not in source:
            raise SystemExit(f"unasync: {old!r} no longer appears in {SOURCE.name}; update PHRASES")
        source = source.replace(old, new)
    for pattern, replacement in TOKENS:
        source = re.sub(pattern, replacement, source)
    docstring_end = source.index('"""', 3) + 3
    return source[:docstring_end] + "\n\n" + HEADER + source[docstring_end:].lstrip("\n")


def formatted(source: str) -> str:
    ruff = [sys.executable, "-m", "ruff"]
    fixed = subprocess.run(
        [*ruff, "check", "--fix-only", "--quiet", "--stdin-filename", str(TARGET), "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return subprocess.run(
        [*ruff, "format", "--quiet", "--stdin-filename", str(TARGET), "-"],
        input=fixed,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def main(argv: list[str]) -> int:
    generated = formatted(unasync(SOURCE.read_text()))
    if "--check" in argv:
        current = TARGET.read_text()
        if current == generated:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                str(TARGET),
                "generated",
            )
        )
        print(f"{TARGET} is not current: run python scripts/unasync.py", file=sys.stderr)
        return 1
    TARGET.write_text(generated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
