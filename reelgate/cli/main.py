"""The ``reelgate`` command: server-side commands here, client commands from ``client_commands``."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from reelgate.cli._service import open_service as _service
from reelgate.cli.gc import gc
from reelgate.cli.tasks import show_summary, summary_json, tasks_app
from reelgate.config import Settings
from reelgate.worker.pool import PARENT_PID_VARIABLE

#: Upper bounds that only catch typos: no host runs more worker processes or render threads.
MAX_WORKERS = 256
MAX_CONCURRENCY = 1024

app = typer.Typer(
    help="reelgate: a self-hosted, RunningHub-compatible video generation API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and disable API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(tasks_app, name="tasks")
app.command("gc")(gc)

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root(
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Server for client commands (REELGATE_BASE_URL)."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Key for client commands (REELGATE_API_KEY).")
    ] = None,
) -> None:
    """reelgate: a self-hosted, RunningHub-compatible video generation API."""
    # The client commands read these variables; a flag before the command overrides them.
    if base_url:
        os.environ["REELGATE_BASE_URL"] = base_url
    if api_key:
        os.environ["REELGATE_API_KEY"] = api_key


def _logging(settings: Settings) -> None:
    from reelgate.logs import configure_logging

    configure_logging(settings.log_format)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=0, max=MAX_WORKERS, help="Embedded worker processes (0 = API only).")
    ] = 1,
    demo: Annotated[
        bool, typer.Option(help="Render the documentation's sample task once the server is up.")
    ] = False,
    api_workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            help="API processes sharing the port and the database (each with its own connections).",
        ),
    ] = 1,
) -> None:
    """Run the API with an embedded worker pool (SQLite and local storage by default)."""
    if not host.strip():
        raise typer.BadParameter("the address cannot be empty", param_hint="'--host'")
    import uvicorn

    from reelgate.api.app import create_app
    from reelgate.logs import uvicorn_log_config
    from reelgate.runtime import Runtime
    from reelgate.service import Service
    from reelgate.worker.pool import WorkerPool

    settings = Settings()
    _logging(settings)
    runtime = Runtime.open(settings)
    first_key = Service(runtime).ensure_first_key()
    if first_key:
        console.print(
            f"Created the first API key: [bold]{first_key}[/bold]\n"
            f"(saved in {runtime.first_key_path}; it is not shown again)"
        )
    # uvicorn re-raises the signal that stopped it once it has shut down; with our own handlers
    # installed first, that re-raise lands here instead of killing the process before the
    # worker pool is stopped. (Several API processes: their supervisor installs its own.)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": settings.access_log,
        "log_config": uvicorn_log_config(settings.log_format),
    }
    run_api: Callable[[], None]
    if api_workers == 1:
        server = uvicorn.Server(uvicorn.Config(create_app(runtime=runtime), **options))
        run_api, api_started = server.run, lambda: bool(server.started)
    else:
        run_api = _api_processes(api_workers, options)
        api_started = _answers(_local_url(host, port) + "/healthz")
    pool = WorkerPool(workers)
    if workers:
        pool.start()
    if demo:
        threading.Thread(
            target=_demo_when_up, args=(api_started, runtime, host, port), daemon=True
        ).start()
    try:
        run_api()
    finally:
        pool.stop()
        runtime.close()


def _api_processes(count: int, options: dict[str, Any]) -> Callable[[], None]:
    """``count`` uvicorn processes on one socket, each building the app from the settings.

    They stop, as the embedded workers do, when this process is gone.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ[PARENT_PID_VARIABLE] = str(os.getpid())
    config = uvicorn.Config("reelgate.api.app:app_from_env", factory=True, workers=count, **options)
    return Multiprocess(config, sockets=[config.bind_socket()]).run


def _local_url(host: str, port: int) -> str:
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def _answers(url: str) -> Callable[[], bool]:
    def answering() -> bool:
        import httpx

        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return answering


def _demo_when_up(started: Callable[[], bool], runtime: object, host: str, port: int) -> None:
    import time

    from reelgate.cli.demo import run_demo
    from reelgate.runtime import Runtime

    assert isinstance(runtime, Runtime)
    while not started():
        time.sleep(0.1)
    base = _local_url(host, port)
    key_file = runtime.first_key_path
    if not key_file.exists():
        err_console.print(f"demo: no {key_file}; create a key with 'reelgate keys create'")
        return
    try:
        run_demo(base, key_file.read_text().strip(), Path("reelgate-demo"), console)
    except Exception as exc:  # the demo must never take the server down
        err_console.print(f"demo failed: {exc}")
        return
    console.print(
        f"The server keeps running at {base}. Try:\n"
        f'  curl -s {base}/openapi/v2/queue/status -H "Authorization: Bearer $(cat {key_file})"\n'
        "Stop it with Ctrl-C."
    )


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, max=MAX_CONCURRENCY, help="Tasks rendered at the same time.")
    ] = 1,
) -> None:
    """Run a standalone worker against REELGATE_DATABASE_URL and REELGATE_STORAGE_URL."""
    from reelgate.runtime import Runtime
    from reelgate.worker.worker import Worker

    settings = Settings()
    _logging(settings)
    runtime = Runtime.open(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if parent:
        threading.Thread(target=_stop_when_orphaned, args=(int(parent), stop), daemon=True).start()
    try:
        Worker(runtime, concurrency=concurrency).run(stop)
    finally:
        runtime.close()


def _stop_when_orphaned(parent_pid: int, stop: threading.Event) -> None:
    """A pool worker stops (handing back its task) when its ``reelgate serve`` is gone."""
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            stop.set()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name to tell the key apart.")],
    coins: Annotated[int | None, typer.Option(help="Starting balance in RH coins.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Tasks running at once.")] = None,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin", help="An admin key: the dashboard shows it every key's tasks and the keys."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from reelgate.core.errors import InvalidParameters
    from reelgate.webhooks.secret import public_secret

    with _service() as service:
        try:
            key = service.create_key(name, coins=coins, concurrency=concurrency, admin=admin)
        except InvalidParameters as error:
            err_console.print(f"error: {error.detail}")
            raise typer.Exit(2) from None
    if as_json:
        print(
            json.dumps(
                {
                    "apiKey": key.api_key,
                    "id": key.id,
                    "name": key.name,
                    "coins": key.coins,
                    "concurrency": key.concurrency,
                    "admin": key.admin,
                    "webhookSecret": public_secret(key.webhook_secret),
                }
            )
        )
    else:
        kind = "Admin API key" if key.admin else "API key"
        console.print(f"{kind} for {name!r} (shown once): [bold]{key.api_key}[/bold]")
        console.print(f"Webhook signing secret: {public_secret(key.webhook_secret)}")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List keys (by prefix; keys themselves are never stored)."""
    with _service() as service:
        rows = [
            {
                "id": k.id,
                "name": k.name,
                "prefix": k.key_prefix,
                "coins": k.coins,
                "concurrency": k.concurrency,
                "running": k.running_tasks,
                "disabled": k.disabled,
                "admin": k.admin,
                "createdAt": k.created_at.isoformat(),
            }
            for k in service.list_keys()
        ]
    if as_json:
        print(json.dumps(rows))
        return
    columns = ("id", "name", "prefix", "coins", "concurrency", "running", "disabled", "admin")
    table = Table(*columns)
    for r in rows:
        table.add_row(*(str(r[c]) for c in columns))
    console.print(table)


@keys_app.command("disable")
def keys_disable(
    key: Annotated[str, typer.Argument(help="The key's id, its prefix, or the key itself.")],
    cancel_running: Annotated[
        bool,
        typer.Option(
            "--cancel-running",
            help="Cancel its running tasks too (their workers stop at their next heartbeat).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Disable a key: its requests answer 1002 from now on, and its queued tasks are cancelled
    with full refunds (its running ones too with --cancel-running)."""
    from reelgate.core.errors import InvalidParameters

    with _service() as service:
        try:
            done = service.disable_key(key, cancel_running=cancel_running)
        except InvalidParameters as error:
            err_console.print(f"error: {error.detail}")
            raise typer.Exit(2) from None
    k = done.key
    if as_json:
        row = {"id": k.id, "name": k.name, "prefix": k.key_prefix, "disabled": k.disabled}
        print(json.dumps({**row, "coins": k.coins, "tasks": summary_json(done.cancelled)}))
        return
    console.print(f"disabled key {k.id} ({k.key_prefix}, {k.name!r})")
    show_summary(done.cancelled, running=cancel_running)


@keys_app.command("faults")
def keys_faults(
    key: Annotated[str, typer.Argument(help="The key's id, its prefix, or the key itself.")],
    fail_rate: Annotated[
        float | None,
        typer.Option("--fail-rate", help="Share of tasks (0..1) that end FAILED, unrendered."),
    ] = None,
    fail_code: Annotated[
        str | None,
        typer.Option("--fail-code", help="The RunningHub code they fail with (default 1015)."),
    ] = None,
    queue_delay: Annotated[
        float | None,
        typer.Option("--queue-delay", help="Seconds each new task waits before it may run."),
    ] = None,
    rate_limit_rate: Annotated[
        float | None,
        typer.Option("--rate-limit-rate", help="Share of requests (0..1) answered 429 (1003)."),
    ] = None,
    webhook_delay: Annotated[
        float | None,
        typer.Option("--webhook-delay", help="Seconds before each webhook event is sent."),
    ] = None,
    webhook_fail_rate: Annotated[
        float | None,
        typer.Option("--webhook-fail-rate", help="Share of delivery attempts (0..1) that fail."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove every fault first (alone: remove them all).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show or set a key's fault injection, for its integrators to test their error handling.

    Options given change only those faults; none shows them. See docs/operations.md.
    """
    from reelgate.core.errors import InvalidParameters

    given = {
        "fail_rate": fail_rate,
        "fail_code": fail_code,
        "queue_delay_seconds": queue_delay,
        "rate_limit_rate": rate_limit_rate,
        "webhook_delay_seconds": webhook_delay,
        "webhook_fail_rate": webhook_fail_rate,
    }
    changes = {name: value for name, value in given.items() if value is not None}
    with _service() as service:
        try:
            if changes or clear:
                found, faults = service.set_key_faults(key, changes, clear=clear)
            else:
                found, faults = service.key_faults(key)
        except InvalidParameters as error:
            err_console.print(f"error: {error.detail}")
            raise typer.Exit(2) from None
    stored = faults.model_dump() if faults is not None else None
    if as_json:
        print(
            json.dumps(
                {"id": found.id, "name": found.name, "prefix": found.key_prefix, "faults": stored}
            )
        )
        return
    label = f"key {found.id} ({found.key_prefix}, {found.name!r})"
    if stored is None:
        console.print(f"{label}: no faults; it behaves normally")
        return
    console.print(f"{label}: " + ", ".join(f"{name} {value}" for name, value in stored.items()))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    from reelgate.store.db import Database
    from reelgate.store.migrate import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url())
    try:
        upgrade(db)
    finally:
        db.dispose()
    console.print("database is up to date")


@app.command()
def engines(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The engines, their models and capabilities, and whether they are ready here.

    The upstream engine is listed when it is configured: its URL's reachability and each pool
    key's state (balance, concurrency, resting, out of rotation), never the keys themselves.
    """
    from reelgate.engines.registry import ENGINE_NAMES

    settings = Settings()
    configured = {
        "preview": True,
        "upstream": bool(settings.upstream_url),
        "openai-videos": bool(settings.openai_videos.url),
        "diffusers": bool(settings.diffusers.models),
    }
    names = [n for n in ENGINE_NAMES if configured.get(n) or n in settings.engines_in_use()]
    rows = [_engine_row(name, settings) for name in names]
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        mark = "[green]ready[/green]" if row["ready"] else "[red]not ready[/red]"
        console.print(f"[bold]{row['name']}[/bold] {mark}: {row['detail']}")
        for model in row["routed"]:
            console.print(f"  {model}")
        for model in row.get("openModels", []):
            weights = "weights present" if model["weightsPresent"] else "weights missing"
            console.print(
                f"  {model['name']} ({model['pipeline']}: {', '.join(model['features'])}): "
                f"{weights} at {model['path']}"
            )
        for key in row.get("keys", []):
            state = key["outOfRotation"] or (
                f"resting until {key['restingUntil']}" if key["restingUntil"] else "in rotation"
            )
            console.print(
                f"  key {key['key']}: {key['inUse']}/{key['concurrency']} in use, "
                f"balance {key['balance'] or '?'}, {state}"
            )


def _engine_row(name: str, settings: Settings) -> dict[str, Any]:
    from reelgate.core.catalogue import CATALOGUE
    from reelgate.core.errors import ReelgateError
    from reelgate.engines.diffusers.engine import DiffusersEngine
    from reelgate.engines.openai_videos import OpenAIVideosEngine
    from reelgate.engines.registry import load_engine
    from reelgate.engines.upstream import UpstreamEngine
    from reelgate.runtime import Runtime

    row: dict[str, Any] = {"name": name, "default": name == settings.engine}
    row["routed"] = sorted(p for p in CATALOGUE if settings.engine_for(p) == name)
    # Remote engines keep their slots in the database.
    runtime = Runtime.open(settings) if name in ("upstream", "openai-videos") else None
    try:
        engine = load_engine(name, settings, runtime.db if runtime else None)
    except ReelgateError as error:
        row.update(ready=False, detail=error.message, models=[], capabilities={})
        return row
    try:
        ready, why = engine.ready()
        caps = engine.capabilities
        row.update(
            ready=ready,
            detail=why,
            models=sorted(m.path for m in CATALOGUE.values() if m.family in caps.families),
            capabilities={
                "families": sorted(f.value for f in caps.families),
                "firstFrame": caps.first_frame,
                "lastFrame": caps.last_frame,
                "referenceImages": caps.reference_images,
                "audio": caps.audio,
                "maxSeconds": caps.max_seconds,
                "fps": caps.fps,
            },
        )
        if isinstance(engine, UpstreamEngine):
            row["url"] = engine.url
            row["keys"] = [state.to_json() for state in engine.pool.states()]
            engine.close()
        if isinstance(engine, OpenAIVideosEngine):
            row["url"] = engine.url
            row["keys"] = [state.to_json() for state in engine.slots.states()]
            engine.close()
        if isinstance(engine, DiffusersEngine):
            row["openModels"] = engine.model_states()
    finally:
        if runtime is not None:
            runtime.close()
    return row


def _register_client_commands() -> None:
    from reelgate.cli.client_commands import register

    register(app)


_register_client_commands()


def main() -> None:
    app()
