"""The SDK and the CLI against ``reelgate serve`` running as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reelgate.samples import write_sample_image
from tests.client.conftest import ROOT, ServeProcess


def test_cli_i2v_subprocess_end_to_end(
    serve_process: ServeProcess, media: dict[str, Path], tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reelgate.cli.client_commands",
            "i2v",
            "--prompt",
            "a street",
            "--first-image",
            str(media["first"]),
            "--duration",
            "3",
            "--no-sound",
            "--tier",
            "std",
            "-o",
            str(tmp_path),
            "--json",
        ],
        env=serve_process.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["status"] == "SUCCESS"
    saved = Path(body["files"][0])
    assert saved.name == f"{body['taskId']}_1.mp4" and saved.read_bytes()[4:8] == b"ftyp"


def test_the_documented_sdk_snippet_runs(serve_process: ServeProcess, tmp_path: Path) -> None:
    text = (ROOT / "docs" / "client.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(snippet.strip().splitlines()) == 10
    for name in ("first.png", "last.png"):
        write_sample_image(
            tmp_path / name, width=480, height=320, variant=name.removesuffix(".png")
        )
    result = subprocess.run(
        [sys.executable, "-c", snippet],
        env=serve_process.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "_1.mp4" in result.stdout and len(list((tmp_path / "out").glob("*_1.mp4"))) == 1
