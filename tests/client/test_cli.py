"""The client commands against a real reelgate server over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from reelgate.cli.client_commands import register
from tests.client.conftest import Server

app = typer.Typer()
register(app)


def cli(server: Server, *args: str, env: dict[str, str] | None = None) -> Result:
    environment = {"REELGATE_BASE_URL": server.url, "REELGATE_API_KEY": server.api_key}
    return CliRunner().invoke(app, list(args), env=environment | (env or {}))


def out(result: Result) -> Any:
    return json.loads(result.stdout)


def test_i2v_uploads_local_frames_waits_and_saves(
    live: Server, media: dict[str, Path], tmp_path: Path
) -> None:
    result = cli(
        live,
        "i2v",
        "--prompt",
        "a street",
        "--first-image",
        str(media["first"]),
        "--last-image",
        str(media["last"]),
        "--duration",
        "3",
        "--no-sound",
        "--tier",
        "std",
        "-o",
        str(tmp_path),
        "--json",
    )
    assert result.exit_code == 0, result.output
    body = out(result)
    assert body["status"] == "SUCCESS" and body["errorCode"] == ""
    assert body["files"] == [str(tmp_path / f"{body['taskId']}_1.mp4")]
    assert Path(body["files"][0]).stat().st_size > 0


def test_edit_with_reference_images_in_plain_text(
    live: Server, media: dict[str, Path], tmp_path: Path
) -> None:
    result = cli(
        live,
        "edit",
        "--prompt",
        "sepia",
        "--video",
        str(media["video"]),
        "--image",
        str(media["first"]),
        "--image",
        str(media["last"]),
        "--no-keep-sound",
        "-o",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert "SUCCESS" in result.stdout and "saved" in result.stdout
    assert "submitted" in result.stderr


def test_no_wait_then_wait_query_and_cancel_report_by_exit_code(live_idle: Server) -> None:
    submitted = cli(
        live_idle,
        "run",
        "kling-video-o3-pro/image-to-video",
        '{"prompt": "p", "firstImageUrl": "https://example.com/a.png"}',
        "--no-wait",
        "--json",
    )
    assert submitted.exit_code == 0, submitted.output
    task_id = out(submitted)["taskId"]
    assert out(submitted)["status"] == "QUEUED"

    waited = cli(live_idle, "wait", task_id, "--timeout", "0.2", "--json")
    assert waited.exit_code == 3
    assert out(waited)["taskId"] == task_id and out(waited)["error"]["type"] == "StillRunning"

    assert cli(live_idle, "query", task_id).exit_code == 3
    cancelled = cli(live_idle, "cancel", task_id, "--json")
    assert cancelled.exit_code == 0 and out(cancelled)["status"] == "CANCEL"
    queried = cli(live_idle, "query", task_id, "--json")
    assert queried.exit_code == 1 and out(queried)["taskId"] == task_id
    assert cli(live_idle, "download", task_id).exit_code == 1


def test_a_failed_task_exits_1_with_its_task_id(live: Server, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(
        json.dumps(
            {"prompt": "fail now", "firstImageUrl": "https://example.com/a.png", "duration": 3}
        )
    )
    result = cli(live, "run", "kling-video-o3-std/image-to-video", f"@{body}", "--json")
    assert result.exit_code == 1
    assert out(result)["status"] == "FAILED" and out(result)["taskId"]


def test_refusals_and_bad_input(live_idle: Server, media: dict[str, Path]) -> None:
    bad = cli(
        live_idle,
        "i2v",
        "--prompt",
        "p",
        "--first-image",
        str(media["first"]),
        "--duration",
        "20",
        "--json",
    )
    assert bad.exit_code == 2 and out(bad)["taskId"] is None
    assert "duration" in out(bad)["error"]["message"]
    denied = cli(live_idle, "account", "--json", "--api-key", "wrong")
    assert denied.exit_code == 1 and out(denied)["error"]["type"] == "InvalidApiKey"
    nowhere = CliRunner().invoke(app, ["account"], env={"REELGATE_BASE_URL": ""})
    assert nowhere.exit_code == 2 and "REELGATE_BASE_URL" in nowhere.stderr


def test_upload_account_and_price(live_idle: Server, media: dict[str, Path]) -> None:
    uploaded = cli(live_idle, "upload", str(media["first"]), "--json")
    assert uploaded.exit_code == 0 and out(uploaded)["download_url"].startswith("http")
    account = cli(live_idle, "account", "--json")
    assert out(account)["account"]["remainCoins"] == "100000"
    assert out(account)["queue"]["concurrentLimit"] == 2
    price = cli(
        live_idle,
        "price",
        "kling-video-o3-pro/image-to-video",
        '{"prompt": "p", "firstImageUrl": "https://example.com/a.png", "duration": 10}',
    )
    assert price.exit_code == 0 and price.stdout.strip()


@pytest.mark.parametrize(
    "command",
    [
        "i2v",
        "edit",
        "run",
        "query",
        "wait",
        "download",
        "cancel",
        "upload",
        "account",
        "price",
        "batch",
    ],
)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "--base-url" in result.stdout
