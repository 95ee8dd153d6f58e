"""``reelgate batch JOBS.jsonl``: the command around the SDK's ``reelgate.client.batch.Batch``.

It parses the options, runs the batch, draws its progress on a terminal, prints a table (or
``--json``) of every job and exits ``0`` when all are done, ``1`` when any failed (or has an
unknown outcome) and ``3`` when some are still running. The journal, resuming and capacity are
the SDK's.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from reelgate.cli._output import (
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_RUNNING,
    err,
    fail,
    out,
    print_json,
)
from reelgate.client import (
    Batch,
    BatchEvent,
    BatchJobChanged,
    BatchResult,
    BatchStarted,
    JobState,
    ReelgateError,
)


class ProgressView:
    """Draws a batch's events: a line when it starts, then a bar of finished jobs (on a TTY)."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self._progress: Progress | None = None
        self._bar: TaskID | None = None

    def __call__(self, event: BatchEvent) -> None:
        if isinstance(event, BatchStarted):
            self._start(event)
        elif (
            isinstance(event, BatchJobChanged)
            and event.finished
            and self._progress is not None
            and self._bar is not None
        ):
            self._progress.advance(self._bar)

    def _start(self, event: BatchStarted) -> None:
        if self.quiet:
            return
        err.print(
            f"{event.total} jobs, {event.finished} already finished; "
            f"up to {event.limit} at a time (journal: {event.journal})"
        )
        if err.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self._bar = self._progress.add_task(
                "batch", total=event.total, completed=event.finished
            )
            self._progress.start()

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()


def summary(result: BatchResult, as_json: bool) -> int:
    """Print every job and return the exit code."""
    if as_json:
        print_json(result.to_json())
    else:
        table = Table(title=f"{len(result.jobs)} jobs")
        for column in ("line", "job", "model", "state", "taskId", "status / error", "files"):
            table.add_column(column)
        for job in result.jobs:
            table.add_row(
                str(job.line),
                job.job_id,
                job.model,
                "running" if job.state is JobState.SUBMITTED else job.state.value,
                job.task_id or "",
                job.error or job.status or "",
                "\n".join(job.files or []),
            )
        out.print(table)
    if result.failed:
        return EXIT_FAILED
    if result.unfinished:
        return EXIT_RUNNING
    return EXIT_DONE


def batch(
    jobs_file: Annotated[
        Path,
        typer.Argument(
            help="JSONL: one {model, payload, id?} per line.", exists=True, dir_okay=False
        ),
    ],
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", min=1, help="Most tasks in flight (capped by the key's limit)."
        ),
    ] = 4,
    out_dir: Annotated[
        Path, typer.Option("-o", "--output", file_okay=False, help="Directory for the outputs.")
    ] = Path("."),
    download: Annotated[
        bool, typer.Option("--download/--no-download", help="Save each job's outputs.")
    ] = True,
    journal_path: Annotated[
        Path | None,
        typer.Option(
            "--journal",
            dir_okay=False,
            help="Journal file [default: JOBS.jsonl.journal].",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Longest wait per task, seconds.")
    ] = 1800.0,
    resubmit_unknown: Annotated[
        bool,
        typer.Option(
            "--resubmit-unknown",
            help="Submit again jobs whose earlier submit has an unknown outcome.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Server URL.", show_default=False)
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="API key.", show_default=False)
    ] = None,
) -> None:
    """Run every job of a JSONL file; run it again to resume after an interruption."""
    try:
        with (
            Batch(jobs_file, journal=journal_path, base_url=base_url, api_key=api_key) as jobs,
            ProgressView(quiet=as_json) as view,
        ):
            result = jobs.run(
                concurrency=concurrency,
                output=out_dir if download else None,
                timeout=timeout,
                resubmit_unknown=resubmit_unknown,
                on_event=view,
            )
    except ReelgateError as error:
        fail(error, as_json)
    except KeyboardInterrupt:
        err.print("interrupted; run the same command again to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(summary(result, as_json))
