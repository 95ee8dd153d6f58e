"""Running a task on a remote engine: its checkpoint, its inputs, and when it must stop."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reelgate.core.errors import TaskCancelled
from reelgate.engines.base import RemoteContext
from reelgate.media.download import is_data_uri, write_data_uri
from reelgate.media.fetch import MediaFetcher
from reelgate.media.sniff import sniff
from reelgate.runtime import Runtime
from reelgate.store import queue
from reelgate.store.queue import KEEP, ClaimedTask


def remote_context(
    runtime: Runtime,
    task: ClaimedTask,
    worker_id: str,
    scratch: Path,
    *,
    report_progress: Callable[[float], None],
    owner_cancelled: Callable[[], bool],
    should_stop: Callable[[], bool],
    fetcher: MediaFetcher | None = None,
) -> RemoteContext:
    """The context a remote engine gets for ``task``, bound to this worker's claim; its inputs
    are fetched and checked by ``fetcher`` (the worker's, with its network guard)."""
    ctx = RemoteContext(
        scratch_dir=scratch,
        checkpoint=task.checkpoint,
        worker_id=worker_id,
        save_checkpoint=lambda checkpoint, remote_key=KEEP: None,
        report_progress=report_progress,
        owner_cancelled=owner_cancelled,
        should_stop=should_stop,
        local_file=lambda url, field: local_file(runtime, url, field, scratch),
    )

    def save(checkpoint: dict[str, Any], remote_key: str | None = KEEP) -> None:
        with runtime.db.write() as session:
            ours = queue.save_checkpoint(
                session,
                task.id,
                worker_id=worker_id,
                checkpoint=checkpoint,
                remote_key=remote_key,
            )
        if not ours:
            raise TaskCancelled()
        ctx.checkpoint = checkpoint

    ctx.save_checkpoint = save
    if fetcher is not None:
        ctx.fetch_media = lambda url, field, kind: fetched(fetcher, url, field, kind, scratch)
    return ctx


def fetched(fetcher: MediaFetcher, url: str, field: str, kind: str, scratch: Path) -> Path:
    """The checked local file of one input, as a local engine would get it."""
    fetch = fetcher.fetch_video if kind == "video" else fetcher.fetch_image
    return fetch(url, field, scratch).path


def local_file(runtime: Runtime, url: str, field: str, scratch: Path) -> Path | None:
    """The file behind one of our own links (copied into ``scratch`` unless storage is a local
    directory), or a ``data:`` URI written out; None otherwise. A file written out is named
    with the extension of what it is."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", field).strip("-") or "input"
    dest = scratch / f"{name}.data"
    own = runtime.own_file(url, dest)
    if own is not None and own != dest:
        return own  # the stored file itself
    if own is None:
        if not is_data_uri(url):
            return None
        write_data_uri(url, dest, runtime.settings.media.max_input_bytes)
    with dest.open("rb") as f:
        kind = sniff(f.read(64))
    return dest.rename(dest.with_suffix(f".{kind.ext}")) if kind else dest
