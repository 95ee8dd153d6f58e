"""API throughput: ``/openapi/v2/query`` and a submit, against a bare FastAPI ceiling.

Two servers run side by side on loopback, each one uvicorn process with the same settings
(uvicorn's defaults, as ``reelgate serve`` uses them, with the same logging set-up):

* **reelgate**: ``reelgate serve --workers 0`` (API only) on a fresh data dir, SQLite by
  default (``--database postgres``: a scratch PostgreSQL database), both rate limits off
  (``REELGATE_RATE_LIMIT_PER_SECOND=0``, ``REELGATE_QUERY_RATE_LIMIT_PER_SECOND=0``) and the
  first key given plenty of coins and a queue cap no run reaches.
* **bare**: a FastAPI app with the same two routes, each reading the request body and
  answering a constant: the very bytes reelgate answered for the same request. That is the
  ceiling of the stack (uvicorn, h11, Starlette, FastAPI) with no work at all.

The load generator is ``wrk`` (``apt-get install -y wrk``), with a Lua script for the POST
body and the ``Authorization`` header. The query asks for a finished task (one submitted, then
run by a ``Worker`` with the no-op engine in this process). The submit is a valid v2
image-to-video body whose image is an uploaded-image URL (``--image data-uri`` sends the image
inline instead); no worker runs, so the tasks just queue. Only when wrk is not installed, a
small asyncio/httpx load generator stands in, and the output says so: its figures are far
below wrk's, because it is Python.

For each endpoint, reelgate and bare alternate, round after round (``--rounds``), reelgate
first in odd rounds and bare first in even ones; the table gives the median and best of each,
and ``ratio = reelgate / bare`` of the medians.

    PYTHONPATH=. python benchmarks/api_bench.py
    PYTHONPATH=. python benchmarks/api_bench.py -c 32 -t 2 -d 5s --rounds 5
    PYTHONPATH=. python benchmarks/api_bench.py --database postgres --endpoints query
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import uvicorn
from fastapi import FastAPI, Request, Response
from sqlalchemy import text

from benchmarks._common import (
    DEFAULT_POSTGRES,
    MODEL,
    NoopEngine,
    child_env,
    finish_profile,
    free_port,
    host_line,
    loadavg,
    median,
    record_profile,
    reelgate_env,
    sample_png,
    scratch_postgres,
    settings_from,
    spawn,
    stop,
    summarize_profile,
    table,
    this_script,
    wait_http,
)

ENDPOINTS = ("query", "submit")
SUBMIT_PATH = f"/openapi/v2/{MODEL}"
QUERY_PATH = "/openapi/v2/query"


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    #: Answers that were not 2xx, plus socket errors (wrk: connect, read, write, timeout).
    errors: int
    load: float
    #: Requests wrk gave up on after its 2 s timeout (part of ``errors``).
    timeouts: int = 0
    #: CPU time the server process used per request, in ms, and the kernel's part of it.
    server_cpu_ms: float = float("nan")
    server_system_ms: float = float("nan")


# -- the bare server --------------------------------------------------------------------------


def _bare_server(port: int, answers_file: str) -> None:
    """The ceiling: the same routes, each reading its body and answering constant bytes."""
    answers = json.loads(Path(answers_file).read_text())
    query = answers["query"].encode()
    submit = answers["submit"].encode()
    app = FastAPI()

    @app.post(QUERY_PATH)
    async def query_route(request: Request) -> Response:
        await request.body()
        return Response(query, media_type="application/json")

    @app.post(SUBMIT_PATH)
    async def submit_route(request: Request) -> Response:
        await request.body()
        return Response(submit, media_type="application/json")

    # As ``reelgate serve`` does: the same logging set-up, uvicorn with its defaults.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port)).run()


def _hide_fast_stack(tmp: Path) -> str:
    """A directory whose ``uvloop`` and ``httptools`` fail to import: put first on a server's
    ``PYTHONPATH``, uvicorn falls back to asyncio and h11, as without ``uvicorn[standard]``."""
    hidden = tmp / "plain-stack"
    for name in ("uvloop", "httptools"):
        (hidden / name).mkdir(parents=True)
        (hidden / name / "__init__.py").write_text(
            f'raise ImportError("{name} is hidden by api_bench.py --stack plain")\n'
        )
    return str(hidden)


# -- load generators ----------------------------------------------------------------------------


def _lua(body: str, key: str) -> str:
    assert "]==]" not in body
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{body}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(url: str, lua: Path, threads: int, connections: int, duration: str) -> Load:
    load = loadavg()
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--latency"]
    output = subprocess.run(
        [*command, "-s", str(lua), url], capture_output=True, text=True, check=True
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    if "50" not in latency or "99" not in latency:
        raise SystemExit(f"unexpected wrk output:\n{output}")
    counted = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not counted or not rate:
        raise SystemExit(f"unexpected wrk output:\n{output}")
    requests, rps = int(counted.group(1)), float(rate.group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    return Load(
        rps,
        _ms(latency["50"]),
        _ms(latency["99"]),
        requests,
        errors,
        (load + loadavg()) / 2,
        timeouts=int(socket.group(4)) if socket else 0,
    )


def run_python_load(url: str, body: bytes, key: str, connections: int, duration: str) -> Load:
    """A stand-in for wrk: ``connections`` asyncio clients posting as fast as they can."""
    seconds = float(duration.rstrip("s"))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0

    async def client(http: httpx.AsyncClient, until: float) -> None:
        nonlocal errors
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                answer = await http.post(url, content=body, headers=headers)
                errors += answer.status_code >= 300
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    async def main() -> float:
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            started = time.perf_counter()
            until = started + seconds
            await asyncio.gather(*(client(http, until) for _ in range(connections)))
            return time.perf_counter() - started

    from benchmarks._common import percentile

    load = loadavg()
    elapsed = asyncio.run(main())
    return Load(
        len(latencies) / elapsed,
        percentile(latencies, 50),
        percentile(latencies, 99),
        len(latencies),
        errors,
        (load + loadavg()) / 2,
    )


# -- reelgate set up over HTTP ----------------------------------------------------------------


def _finish_one_task(env: dict[str, str]) -> None:
    """Run the one queued task to SUCCESS with the no-op engine, in this process."""
    from reelgate.runtime import Runtime
    from reelgate.worker.worker import Worker

    runtime = Runtime.open(settings_from(env), migrate=False)
    try:
        if Worker(runtime, engine=NoopEngine()).run_once() is None:
            raise SystemExit("no task to finish")
    finally:
        runtime.close()


def _count_tasks(env: dict[str, str]) -> int:
    from reelgate.store.db import Database

    db = Database(settings_from(env).resolved_database_url())
    try:
        with db.read() as session:
            return int(session.execute(text("SELECT count(*) FROM tasks")).scalar_one())
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", nargs="*", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("-c", "--connections", type=int, default=16, help="default 16")
    parser.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("-d", "--duration", default="10s", help="per run, e.g. 10s (default)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    parser.add_argument(
        "--image",
        choices=("upload", "data-uri"),
        default="upload",
        help="the submit's image: an uploaded-image URL (default) or a data: URI",
    )
    parser.add_argument(
        "--stack",
        choices=("installed", "plain"),
        default="installed",
        help="uvicorn's event loop and HTTP parser for both servers: what is installed "
        "(uvloop and httptools when present, as uvicorn picks them), or plain asyncio and h11 "
        "(reelgate's own dependencies: uvloop and httptools hidden from both servers)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the rounds, one more reelgate run per endpoint under py-spy; "
        "raw stacks saved here and summarised",
    )
    parser.add_argument(
        "--profile-threads",
        action="store_true",
        help="with --profile: sample every busy thread, not only the one holding the GIL "
        "(shows time spent waiting for the database)",
    )
    parser.add_argument("--bare-server", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        _bare_server(int(args.bare_server[0]), args.bare_server[1])
        return

    wrk = shutil.which("wrk")
    print(host_line())
    if wrk:
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
        print(f"load generator: wrk {version[1] if len(version) > 1 else ''}".rstrip())
    else:
        print(
            "load generator: PYTHON FALLBACK (asyncio + httpx), because wrk is not installed; "
            "install it with `apt-get install -y wrk` for real figures"
        )
    plain = args.stack == "plain"
    loop = "uvloop" if importlib.util.find_spec("uvloop") and not plain else "asyncio"
    parser_name = "httptools" if importlib.util.find_spec("httptools") and not plain else "h11"
    print(f"both servers: uvicorn {uvicorn.__version__} (loop {loop}, HTTP {parser_name})")
    print(
        f"-c{args.connections} -t{args.threads} -d{args.duration}, {args.rounds} rounds, "
        f"reelgate on {args.database}, submit image: {args.image}"
    )
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="api-bench-")))
        if args.database == "postgres":
            url = stack.enter_context(scratch_postgres(args.postgres))
        else:
            url = f"sqlite:///{tmp / 'data' / 'reelgate.db'}"
        env = reelgate_env(tmp / "data", url)
        if plain:
            env["PYTHONPATH"] = os.pathsep.join([_hide_fast_stack(tmp), env["PYTHONPATH"]])
        ports = {"reelgate": free_port(), "bare": free_port()}
        server = spawn(
            [
                sys.executable,
                "-m",
                "reelgate",
                "serve",
                "--workers=0",
                f"--port={ports['reelgate']}",
            ],
            env,
        )
        stack.callback(stop, [server])
        base = f"http://127.0.0.1:{ports['reelgate']}"
        wait_http(base + "/healthz")
        key = (tmp / "data" / "api-key.txt").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        http = stack.enter_context(httpx.Client(base_url=base, headers=headers, timeout=30))

        png = sample_png()
        if args.image == "data-uri":
            image = "data:image/png;base64," + base64.b64encode(png).decode()
        else:
            upload = http.post("/openapi/v2/media/upload/binary", files={"file": ("a.png", png)})
            image = upload.json()["data"]["download_url"]
        submit_body = json.dumps(
            {"prompt": "a slow push-in", "firstImageUrl": image, "duration": 5, "sound": False}
        )
        submitted = http.post(SUBMIT_PATH, content=submit_body)
        if submitted.json().get("errorCode"):
            raise SystemExit(f"submit refused: {submitted.text}")
        task_id = submitted.json()["taskId"]
        _finish_one_task(env)
        query_body = json.dumps({"taskId": task_id})
        queried = http.post(QUERY_PATH, content=query_body)
        if queried.json().get("status") != "SUCCESS":
            raise SystemExit(f"the task did not finish: {queried.text}")

        answers = tmp / "answers.json"
        answers.write_text(json.dumps({"query": queried.text, "submit": submitted.text}))
        bare = spawn(
            this_script("bare-server", str(ports["bare"]), str(answers)),
            {**child_env(), "PYTHONPATH": env["PYTHONPATH"]},
        )
        stack.callback(stop, [bare])
        wait_http(f"http://127.0.0.1:{ports['bare']}/docs")

        for target, pid in (("reelgate", server.pid), ("bare", bare.pid)):
            # What each server really loaded: uvloop and httptools are compiled modules.
            loaded = {m.path for m in psutil.Process(pid).memory_maps()}
            fast = [n for n in ("uvloop", "httptools") if any(f"/{n}/" in p for p in loaded)]
            print(
                f"{target} server has loaded: {', '.join(fast) or 'neither uvloop nor httptools'}"
            )

        bodies = {"query": query_body, "submit": submit_body}
        paths = {"query": QUERY_PATH, "submit": SUBMIT_PATH}
        scripts = {}
        for endpoint in args.endpoints:
            scripts[endpoint] = tmp / f"{endpoint}.lua"
            scripts[endpoint].write_text(_lua(bodies[endpoint], key))

        pids = {"reelgate": server.pid, "bare": bare.pid}

        def run(target: str, endpoint: str) -> Load:
            url = f"http://127.0.0.1:{ports[target]}{paths[endpoint]}"
            process = psutil.Process(pids[target])
            before = process.cpu_times()
            if wrk:
                result = run_wrk(
                    url, scripts[endpoint], args.threads, args.connections, args.duration
                )
            else:
                result = run_python_load(
                    url, bodies[endpoint].encode(), key, args.connections, args.duration
                )
            after = process.cpu_times()
            per_request = 1000 / max(result.requests, 1)
            result.server_system_ms = (after.system - before.system) * per_request
            result.server_cpu_ms = (after.user - before.user) * per_request
            result.server_cpu_ms += result.server_system_ms
            return result

        results: dict[tuple[str, str], list[Load]] = {}
        for round_number in range(1, args.rounds + 1):
            order = ("reelgate", "bare") if round_number % 2 else ("bare", "reelgate")
            for endpoint in args.endpoints:
                for target in order:
                    before = _count_tasks(env) if target == "reelgate" else 0
                    result = run(target, endpoint)
                    if target == "reelgate" and endpoint == "submit":
                        created = _count_tasks(env) - before
                        if created < result.requests - result.errors - args.connections:
                            raise SystemExit(
                                f"{result.requests} submits answered but {created} tasks created"
                            )
                    results.setdefault((endpoint, target), []).append(result)
                    print(
                        f"  round {round_number} {endpoint:6} {target:8} "
                        f"{result.requests_per_second:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                        f"p99 {result.p99_ms:6.2f} ms  errors {result.errors} "
                        f"({result.timeouts} timeouts)  "
                        f"server CPU {result.server_cpu_ms:.2f} ms/request "
                        f"({result.server_system_ms:.2f} system)  "
                        f"(load {result.load:.2f})",
                        flush=True,
                    )
        rows = []
        ratios = {}
        for endpoint in args.endpoints:
            for target in ("reelgate", "bare"):
                runs = results[(endpoint, target)]
                rows.append(
                    (
                        f"{endpoint} {target}",
                        f"{median([r.requests_per_second for r in runs]):.0f}",
                        f"{max(r.requests_per_second for r in runs):.0f}",
                        f"{median([r.p50_ms for r in runs]):.2f}",
                        f"{median([r.p99_ms for r in runs]):.2f}",
                        f"{median([r.server_cpu_ms for r in runs]):.2f}",
                        f"{median([r.server_system_ms for r in runs]):.2f}",
                        sum(r.errors for r in runs),
                        f"{median([r.load for r in runs]):.2f}",
                    )
                )
            ratios[endpoint] = median(
                [r.requests_per_second for r in results[(endpoint, "reelgate")]]
            ) / median([r.requests_per_second for r in results[(endpoint, "bare")]])
        print()
        header = ("endpoint", "median req/s", "best req/s", "p50 ms", "p99 ms")
        header += ("server CPU ms/req", "of which system", "errors", "load")
        print(table(header, rows))
        print()
        targets = {"query": 0.5, "submit": 0.3}
        for endpoint, ratio in ratios.items():
            print(
                f"ratio {endpoint} = reelgate / bare = {ratio:.3f} "
                f"(target >= {targets[endpoint]:.2f})"
            )
        print(f"tasks in reelgate's database at the end: {_count_tasks(env)}")

        if args.profile:
            seconds = float(args.duration.rstrip("s"))
            for endpoint in args.endpoints:
                for target, pid in pids.items():
                    out = args.profile / f"{endpoint}-{target}"
                    spies = record_profile([pid], out, gil=not args.profile_threads)
                    started = time.perf_counter()
                    requests = run(target, endpoint).requests
                    finish_profile(spies)
                    requests = round(requests * (time.perf_counter() - started) / seconds)
                    print(f"\nprofile of the {target} server, {endpoint} (files in {out}):")
                    files = sorted(out.glob("*.txt"))
                    gil = not args.profile_threads
                    print(summarize_profile(files, per=requests, gil=gil))


if __name__ == "__main__":
    sys.exit(main())
