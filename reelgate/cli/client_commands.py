"""The client commands of ``reelgate``: submit, wait, download and manage tasks from a shell.

Every command takes ``--base-url`` and ``--api-key`` (default: ``REELGATE_BASE_URL``,
``REELGATE_API_KEY`` or ``RUNNINGHUB_API_KEY``) and works against RunningHub or a reelgate
server alike. ``--json`` output always carries the ``taskId``. Exit codes: 0 done, 1 failed,
2 invalid input, 3 still running (resume with ``reelgate wait ID``), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from reelgate.cli._output import (
    EXIT_DONE,
    EXIT_FAILED,
    WaitDisplay,
    err,
    exit_code,
    out,
    print_json,
    reported,
    show_task,
)
from reelgate.client import Client, RequestValidationError, Task, TaskStatus

BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url", help="Server URL [default: $REELGATE_BASE_URL].", show_default=False
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key [default: $REELGATE_API_KEY or $RUNNINGHUB_API_KEY].",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (always with the taskId).")]
OutDir = Annotated[
    Path, typer.Option("-o", "--output", file_okay=False, help="Directory for the outputs.")
]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the task to finish.")]
Download = Annotated[
    bool, typer.Option("--download/--no-download", help="Save the outputs once finished.")
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", min=0, help="Longest wait in seconds; then exit 3 (still running)."),
]
Tier = Annotated[str, typer.Option("--tier", help="Model tier: pro or std.")]
#: The longest ``Idempotency-Key`` a reelgate server keeps (RunningHub ignores the header).
MAX_IDEMPOTENCY_KEY = 200


def _idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter("cannot be blank")
    if len(value.strip()) > MAX_IDEMPOTENCY_KEY:
        raise typer.BadParameter(f"at most {MAX_IDEMPOTENCY_KEY} characters, not {len(value)}")
    return value.strip()


IdemKey = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Makes resubmitting safe on reelgate servers.",
        show_default=False,
        callback=_idempotency_key,
    ),
]
DEFAULT_TIMEOUT = 1800.0


def _client(base_url: str | None, api_key: str | None) -> Client:
    return Client(base_url, api_key)


def _tier(value: str) -> str:
    tier = value.strip().lower()
    if tier not in ("pro", "std"):
        raise RequestValidationError(f"--tier must be pro or std, not {value!r}")
    return tier


def _json_arg(text: str) -> dict[str, Any]:
    """A JSON object given inline, as ``@file.json``, or as ``-`` (stdin)."""
    if text == "-":
        raw = sys.stdin.read()
    elif text.startswith("@"):
        try:
            raw = Path(text[1:]).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise RequestValidationError(f"cannot read {text[1:]!r}: {reason}") from None
    else:
        raw = text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RequestValidationError("the request body must be a JSON object")
    return value


def _follow(
    client: Client,
    task: Task,
    *,
    wait: bool,
    download: bool,
    out_dir: Path,
    timeout: float,
    as_json: bool,
) -> None:
    """Report a task just submitted (at once, so its id is never lost), then wait and save."""
    if not as_json:
        err.print(f"task [bold]{task.id}[/bold] submitted ({task.status.value})")
    if not wait:
        show_task(task.info, None, as_json)
        raise typer.Exit(EXIT_DONE)
    _finish(client, task, download=download, out_dir=out_dir, timeout=timeout, as_json=as_json)


def _finish(
    client: Client, task: Task, *, download: bool, out_dir: Path, timeout: float, as_json: bool
) -> None:
    try:
        with WaitDisplay(not as_json) as display:
            display.update(task.info)
            info = task.wait(timeout, on_update=display.update, raise_on_failure=False)
    except KeyboardInterrupt:
        err.print(
            f"\nstopped waiting; task {task.id} goes on. Resume with: reelgate wait {task.id}"
        )
        raise
    files = (
        client.download(info, out_dir) if download and info.status is TaskStatus.SUCCESS else None
    )
    show_task(info, files, as_json)
    raise typer.Exit(exit_code(info))


def i2v(
    prompt: Annotated[str, typer.Option("--prompt", help="What happens in the video.")],
    first_image: Annotated[str, typer.Option("--first-image", help="First frame: file or URL.")],
    last_image: Annotated[
        str | None,
        typer.Option("--last-image", help="Last frame: file or URL.", show_default=False),
    ] = None,
    duration: Annotated[int, typer.Option("--duration", help="Seconds, 3 to 15.")] = 5,
    sound: Annotated[bool, typer.Option("--sound/--no-sound", help="Generate sound.")] = True,
    tier: Tier = "pro",
    out_dir: OutDir = Path("."),
    as_json: Json = False,
    wait: Wait = True,
    download: Download = True,
    timeout: Timeout = DEFAULT_TIMEOUT,
    idempotency_key: IdemKey = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Image-to-video (Kling O3) from a first and optional last frame."""
    with reported(as_json), _client(base_url, api_key) as client:
        task = client.image_to_video(
            prompt,
            first_image,
            last_image=last_image,
            duration=duration,
            sound=sound,
            tier="pro" if _tier(tier) == "pro" else "std",
            idempotency_key=idempotency_key,
        )
        _follow(
            client,
            task,
            wait=wait,
            download=download,
            out_dir=out_dir,
            timeout=timeout,
            as_json=as_json,
        )


def edit(
    prompt: Annotated[str, typer.Option("--prompt", help="The change to make.")],
    video: Annotated[str, typer.Option("--video", help="MP4 to edit (3–10 s): file or URL.")],
    image: Annotated[
        list[str] | None,
        typer.Option("--image", help="Reference image (file or URL); up to 4.", show_default=False),
    ] = None,
    keep_sound: Annotated[
        bool, typer.Option("--keep-sound/--no-keep-sound", help="Keep the video's sound.")
    ] = True,
    tier: Tier = "pro",
    out_dir: OutDir = Path("."),
    as_json: Json = False,
    wait: Wait = True,
    download: Download = True,
    timeout: Timeout = DEFAULT_TIMEOUT,
    idempotency_key: IdemKey = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Video-edit (Kling O3): change a clip with a prompt and reference images."""
    with reported(as_json), _client(base_url, api_key) as client:
        task = client.video_edit(
            prompt,
            video,
            images=list(image) if image else None,
            keep_sound=keep_sound,
            tier="pro" if _tier(tier) == "pro" else "std",
            idempotency_key=idempotency_key,
        )
        _follow(
            client,
            task,
            wait=wait,
            download=download,
            out_dir=out_dir,
            timeout=timeout,
            as_json=as_json,
        )


def run(
    model: Annotated[
        str, typer.Argument(help="Model path, e.g. kling-video-o3-pro/image-to-video.")
    ],
    body: Annotated[str, typer.Argument(help="JSON body, @file.json, or - for stdin.")],
    out_dir: OutDir = Path("."),
    as_json: Json = False,
    wait: Wait = True,
    download: Download = True,
    timeout: Timeout = DEFAULT_TIMEOUT,
    idempotency_key: IdemKey = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Submit a raw JSON body to any model endpoint (local files in *Url fields are uploaded)."""
    with reported(as_json), _client(base_url, api_key) as client:
        task = client.run(model, _json_arg(body), idempotency_key=idempotency_key)
        _follow(
            client,
            task,
            wait=wait,
            download=download,
            out_dir=out_dir,
            timeout=timeout,
            as_json=as_json,
        )


def _task_id(value: str) -> str:
    """RunningHub's task ids (and reelgate's) are numbers; anything else is a typo, said so here
    rather than by the server."""
    if not value.strip().isdigit() or not value.strip().isascii():
        raise typer.BadParameter(f"a taskId is a number like 2013508786110042113, not {value!r}")
    return value.strip()


TaskIdArg = Annotated[str, typer.Argument(help="The taskId.", callback=_task_id)]


def query(
    task_id: TaskIdArg, as_json: Json = False, base_url: BaseUrl = None, api_key: ApiKey = None
) -> None:
    """Show a task's status once; the exit code says done (0), failed (1) or running (3)."""
    with reported(as_json, task_id), _client(base_url, api_key) as client:
        info = client.query(task_id)
        show_task(info, None, as_json)
        raise typer.Exit(exit_code(info))


def wait_command(
    task_id: TaskIdArg,
    out_dir: OutDir = Path("."),
    as_json: Json = False,
    download: Download = True,
    timeout: Timeout = DEFAULT_TIMEOUT,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Wait for a task (submitted by anything) to finish, then save its outputs."""
    with reported(as_json, task_id), _client(base_url, api_key) as client:
        _finish(
            client,
            client.task(task_id),
            download=download,
            out_dir=out_dir,
            timeout=timeout,
            as_json=as_json,
        )


def download_command(
    task_id: TaskIdArg,
    out_dir: OutDir = Path("."),
    as_json: Json = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Save a finished task's outputs as <taskId>_<n>.<ext>."""
    with reported(as_json, task_id), _client(base_url, api_key) as client:
        info = client.query(task_id)
        files = client.download(info, out_dir)
        show_task(info, files, as_json)


def cancel(
    task_id: TaskIdArg, as_json: Json = False, base_url: BaseUrl = None, api_key: ApiKey = None
) -> None:
    """Cancel a queued or running task."""
    with reported(as_json, task_id), _client(base_url, api_key) as client:
        client.cancel(task_id)
        info = client.query(task_id)
        show_task(info, None, as_json)
        raise typer.Exit(EXIT_DONE if info.status is TaskStatus.CANCEL else EXIT_FAILED)


def upload(
    files: Annotated[list[Path], typer.Argument(help="Files to upload.")],
    as_json: Json = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Upload files; prints each download_url (valid for one day)."""
    with reported(as_json), _client(base_url, api_key) as client:
        uploaded = [client.upload(path) for path in files]
        if as_json:
            print_json(
                [u.to_json() for u in uploaded] if len(uploaded) > 1 else uploaded[0].to_json()
            )
            return
        for path, item in zip(files, uploaded, strict=True):
            out.print(f"{path}\t{item.download_url}")


def account(as_json: Json = False, base_url: BaseUrl = None, api_key: ApiKey = None) -> None:
    """The key's balance, running tasks and concurrency."""
    with reported(as_json), _client(base_url, api_key) as client:
        status = client.account()
        queue = client.queue_status()
        if as_json:
            print_json({"account": status.to_wire(), "queue": queue.to_wire()})
            return
        out.print(
            f"balance: {status.coins} coins"
            + (f" ({status.remain_money} {status.currency})" if status.remain_money else "")
        )
        out.print(f"key type: {status.api_type or queue.api_key_type}")
        out.print(
            f"concurrency limit: {queue.concurrent_limit}; running {queue.running_count}, "
            f"queued {queue.queued_count}"
        )


def price(
    model: Annotated[
        str, typer.Argument(help="Model path, e.g. kling-video-o3-pro/image-to-video.")
    ],
    body: Annotated[str, typer.Argument(help="JSON body, @file.json, or - for stdin.")],
    as_json: Json = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """What a request would cost, without running it."""
    with reported(as_json), _client(base_url, api_key) as client:
        preview = client.price(model, _json_arg(body))
        if as_json:
            print_json(preview.to_wire())
            return
        text = preview.price_text_en or preview.price_text
        out.print(
            f"{preview.estimated_price} {preview.currency or ''}".strip()
            + (f" ({text})" if text else "")
        )


def register(app: typer.Typer) -> None:
    """Add the client commands to the ``reelgate`` application."""
    from reelgate.cli.batch import batch

    app.command("i2v")(i2v)
    app.command("edit")(edit)
    app.command("run")(run)
    app.command("query")(query)
    app.command("wait")(wait_command)
    app.command("download")(download_command)
    app.command("cancel")(cancel)
    app.command("upload")(upload)
    app.command("account")(account)
    app.command("price")(price)
    app.command("batch")(batch)


def main() -> None:
    """Run the client commands on their own (``python -m reelgate.cli.client_commands``)."""
    app = typer.Typer(
        help="reelgate client commands.", no_args_is_help=True, pretty_exceptions_enable=False
    )
    register(app)
    app()


if __name__ == "__main__":
    main()
