"""``reelgate serve --demo``: the seed's image-to-video example, end to end over HTTP."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console

from reelgate.samples import write_sample_image
from reelgate.wire import TaskObject, TaskStatus

#: The request of RunningHub's documentation page for kling-video-o3-pro/image-to-video.
SEED_PROMPT = (
    "The girl walks gracefully from the background, her skirt swaying naturally with each step. "
    "The camera follows her as red lanterns on the street sway in the wind. At the 10-second "
    "mark, she pauses and turns back with a sweet smile as fireworks bloom in the night sky, "
    "casting shifting lights on her face. Audio:  including bustling street noise, light "
    "footsteps, and the booming of distant fireworks."
)


def run_demo(base_url: str, api_key: str, out_dir: Path, console: Console) -> Path:
    """Upload two sample frames, submit the seed request, wait, download the MP4."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        urls = []
        with tempfile.TemporaryDirectory() as tmp:
            for variant in ("first", "last"):
                image = write_sample_image(
                    Path(tmp) / f"{variant}.jpg", width=1280, height=720, variant=variant
                )
                with image.open("rb") as fh:
                    answer = http.post(
                        "/openapi/v2/media/upload/binary", files={"file": (image.name, fh)}
                    ).json()
                urls.append(answer["data"]["download_url"])
        body = {
            "prompt": SEED_PROMPT,
            "firstImageUrl": urls[0],
            "lastImageUrl": urls[1],
            "duration": 5,
            "sound": True,
            "multiShot": False,
            "shotType": "customize",
        }
        answer = http.post("/openapi/v2/kling-video-o3-pro/image-to-video", json=body)
        task = TaskObject.model_validate(answer.json())
        task_id = task.task_id
        if not task_id:
            raise RuntimeError(f"submit failed: {task.error_code} {task.error_message}")
        console.print(f"demo: submitted task [bold]{task_id}[/bold]; rendering…")
        while not task.status.is_terminal:
            time.sleep(0.5)
            answer = http.post("/openapi/v2/query", json={"taskId": task_id})
            task = TaskObject.model_validate(answer.json())
        if task.status is not TaskStatus.SUCCESS or not task.results:
            raise RuntimeError(f"task {task_id} ended {task.status}: {task.error_message}")
        output = task.results[0]
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{task_id}_1.{output.output_type}"
        with http.stream("GET", output.url or "") as response:
            response.raise_for_status()
            with target.open("wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
        spent = task.usage.task_cost_time if task.usage else "?"
        coins = task.usage.consume_coins if task.usage else "?"
        console.print(
            f"demo: [green]done[/green] in {spent} s, {coins} coins "
            f"→ [bold]{target.resolve()}[/bold]"
        )
        return target
