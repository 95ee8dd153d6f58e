"""``reelgate gc``: delete now what retention would delete at the workers' next sweep.

The logic is ``Service.collect_garbage`` (``reelgate.retention``); with ``--dry-run`` nothing is
deleted and the same figures say what would be.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from reelgate.cli._service import open_service

if TYPE_CHECKING:
    from reelgate.config import RetentionSettings
    from reelgate.retention import Swept

console = Console(soft_wrap=True, highlight=False)


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be deleted.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete expired tasks' results and expired uploads now (REELGATE_RETENTION__*)."""
    with open_service() as service:
        swept = service.collect_garbage(dry_run=dry_run)
        retention = service.settings.retention
    if as_json:
        print(json.dumps(gc_json(swept, retention, dry_run=dry_run)))
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"results (kept {_kept(retention.results_seconds)}): {verb} {swept.result_files} "
        f"files, {_size(swept.result_bytes)}, of {swept.tasks} finished tasks"
        + _since(swept.oldest_task, "finished")
    )
    console.print(
        f"uploads (kept {_kept(retention.uploads_seconds)}): {verb} {swept.upload_files} "
        f"files, {_size(swept.upload_bytes)}, of {swept.uploads} uploads"
        + _since(swept.oldest_upload, "uploaded")
    )


def gc_json(swept: Swept, retention: RetentionSettings, *, dry_run: bool) -> dict[str, Any]:
    return {
        "dryRun": dry_run,
        "results": {
            "keptSeconds": retention.results_seconds,
            "tasks": swept.tasks,
            "files": swept.result_files,
            "bytes": swept.result_bytes,
            "oldest": _iso(swept.oldest_task),
        },
        "uploads": {
            "keptSeconds": retention.uploads_seconds,
            "uploads": swept.uploads,
            "files": swept.upload_files,
            "bytes": swept.upload_bytes,
            "oldest": _iso(swept.oldest_upload),
        },
    }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds") + "Z"


def _since(when: datetime | None, verb: str) -> str:
    return "" if when is None else f" ({verb} from {_iso(when)})"


def _kept(seconds: int) -> str:
    if not seconds:
        return "for ever"
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds} s"


def _size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024:
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"
