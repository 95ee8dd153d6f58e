"""End to end: a 5 s 1280x720 preview image-to-video as a client sees it, against the
encode-only floor of its own frames measured in the same run.

``reelgate serve --workers 1`` runs with its defaults (SQLite, the preview engine at 1280x720,
one embedded worker process; rate limits off so that polling is never refused). The client
uploads the two sample images (``reelgate.samples``, 1280x720), submits the image-to-video case
of ``preview_bench.py`` (first and last image, 5 s, sound), and polls ``/openapi/v2/query``
every ``--poll`` seconds until the task is SUCCESS: that wall time, submit to SUCCESS, is the
figure. One task runs first, untimed, so the worker has loaded what it needs.

After each task the result is downloaded and the **floor** measured on it with
``preview_bench``'s own function: the clip's frames and sound, decoded into memory beforehand,
encoded with the engine's encoder settings. ``ratio = end to end / floor`` (medians; the best
of each is shown too). Submits and floors alternate, so both see the same host load. The
task's timestamps in the database split the end-to-end time into waiting for a worker (submit
to ``started_at``), the worker's run (``started_at`` to ``finished_at``: fetching the images,
rendering, storing the result) and the client noticing (``finished_at`` to the answer that
said SUCCESS, which depends on ``--poll``).

    PYTHONPATH=. python benchmarks/e2e_bench.py
    PYTHONPATH=. python benchmarks/e2e_bench.py --rounds 5 --poll 0.05
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text

from benchmarks._common import (
    MODEL,
    free_port,
    host_line,
    loadavg,
    median,
    reelgate_env,
    spawn,
    stop,
    table,
    wait_http,
)
from benchmarks.preview_bench import _encode_floor
from reelgate.engines.preview.engine import DEFAULT_ENCODER
from reelgate.samples import write_sample_image
from reelgate.store.db import Database
from reelgate.store.tables import Task

PROMPT = "the camera pushes in as the street lights up, rain and footsteps"


@dataclass
class Round:
    end_to_end: float
    floor: float
    waiting: float
    running: float
    noticing: float
    load: float


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed tasks (default 5)")
    parser.add_argument(
        "--poll", type=float, default=0.1, help="client's polling interval, s (default 0.1)"
    )
    args = parser.parse_args()

    print(host_line())
    print(
        f"5 s 1280x720 image-to-video with sound (first + last image), {args.rounds} rounds, "
        f"client polling every {args.poll} s; encoder {DEFAULT_ENCODER}"
    )
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="e2e-bench-")))
        url = f"sqlite:///{tmp / 'data' / 'reelgate.db'}"
        env = reelgate_env(tmp / "data", url)
        port = free_port()
        server = spawn(
            [sys.executable, "-m", "reelgate", "serve", "--workers=1", f"--port={port}"], env
        )
        stack.callback(stop, [server])
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")
        key = (tmp / "data" / "api-key.txt").read_text().strip()
        http = stack.enter_context(
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        )
        db = Database(url)
        stack.callback(db.dispose)
        deadline = time.monotonic() + 60
        while True:
            with db.read() as session:
                if session.execute(text("SELECT count(*) FROM workers")).scalar_one():
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the embedded worker did not start")
            time.sleep(0.1)

        links = {}
        for variant in ("first", "last"):
            image = write_sample_image(
                tmp / f"{variant}.png", width=1280, height=720, variant=variant
            )
            answer = http.post(
                "/openapi/v2/media/upload/binary",
                files={"file": (image.name, image.read_bytes())},
            )
            links[variant] = answer.json()["data"]["download_url"]
        body = {
            "prompt": PROMPT,
            "firstImageUrl": links["first"],
            "lastImageUrl": links["last"],
            "duration": 5,
            "sound": True,
        }

        def run_task() -> tuple[int, float, datetime, dict[str, Any]]:
            """(task id, seconds from submit to SUCCESS, when SUCCESS was seen, the answer)."""
            started = time.perf_counter()
            task = http.post(f"/openapi/v2/{MODEL}", json=body).json()
            if task.get("errorCode"):
                raise SystemExit(f"submit refused: {task}")
            while task["status"] not in ("SUCCESS", "FAILED", "CANCEL"):
                time.sleep(args.poll)
                task = http.post("/openapi/v2/query", json={"taskId": task["taskId"]}).json()
            seen = datetime.now(UTC)
            elapsed = time.perf_counter() - started
            if task["status"] != "SUCCESS":
                raise SystemExit(f"task ended {task['status']}: {task}")
            return int(task["taskId"]), elapsed, seen, task

        _, cold, _, _ = run_task()
        print(f"  untimed first task: {cold:.2f} s")
        rounds: list[Round] = []
        for number in range(1, args.rounds + 1):
            load = loadavg()
            task_id, elapsed, seen, task = run_task()
            result = tmp / f"result-{number}.mp4"
            result.write_bytes(httpx.get(task["results"][0]["url"], timeout=60).content)
            floor = _encode_floor(result, tmp, DEFAULT_ENCODER)
            with db.read() as session:
                row = session.execute(
                    select(Task.created_at, Task.started_at, Task.finished_at).where(
                        Task.id == task_id
                    )
                ).one()
            created, started_at, finished = (_utc(v) for v in row)
            rounds.append(
                Round(
                    elapsed,
                    floor,
                    (started_at - created).total_seconds(),
                    (finished - started_at).total_seconds(),
                    (seen - finished).total_seconds(),
                    (load + loadavg()) / 2,
                )
            )
            r = rounds[-1]
            print(
                f"  round {number}: end to end {r.end_to_end:.2f} s, floor {r.floor:.2f} s, "
                f"ratio {r.end_to_end / r.floor:.2f} (load {r.load:.2f})",
                flush=True,
            )
    rows = [
        (
            "median",
            *(
                f"{median([getattr(r, f) for r in rounds]):.2f}"
                for f in ("end_to_end", "floor", "waiting", "running", "noticing")
            ),
            f"{median([r.end_to_end / r.floor for r in rounds]):.2f}",
            f"{median([r.load for r in rounds]):.2f}",
        ),
        (
            "best",
            f"{min(r.end_to_end for r in rounds):.2f}",
            f"{min(r.floor for r in rounds):.2f}",
            f"{min(r.waiting for r in rounds):.2f}",
            f"{min(r.running for r in rounds):.2f}",
            f"{min(r.noticing for r in rounds):.2f}",
            f"{min(r.end_to_end for r in rounds) / min(r.floor for r in rounds):.2f}",
            "",
        ),
    ]
    header = ("", "e2e s", "floor s", "waiting s", "worker s", "noticed s", "ratio", "load")
    print()
    print(table(header, rows, first=8))
    print("target: end to end <= 1.5 x floor")


if __name__ == "__main__":
    sys.exit(main())
