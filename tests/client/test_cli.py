"""The client commands against a real reelgate server over HTTP."""

from __future__ import annotations

import json
import re
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


I2V_MODEL = "kling-video-o3-pro/image-to-video"
JOB = {"model": I2V_MODEL, "payload": {"prompt": "p", "firstImageUrl": "https://e.com/a.png"}}


def flat(text: str) -> str:
    """The words of a message, whatever box and line breaks the terminal output put around them."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize(
    ("args", "why"),
    [
        # JSON bodies: unreadable files, text that does not parse, not an object.
        (["run", I2V_MODEL, "@<missing>"], "cannot read"),
        (["price", I2V_MODEL, "@<folder>"], "cannot read"),
        (["price", I2V_MODEL, "{bad"], "not valid JSON"),
        (["run", I2V_MODEL, "[1]"], "the request body must be a JSON object"),
        # Files that do not exist, counts and values the models refuse.
        (["i2v", "--prompt", "p", "--first-image", "<missing>"], "neither a URL nor an existing"),
        (["edit", "--prompt", "p", "--video", "<missing>"], "neither a URL nor an existing"),
        (["edit", "--prompt", "p", "--video", "<video>", *["--image", "<first>"] * 5], "at most 4"),
        (["upload", "<missing>"], "neither a URL nor an existing file"),
        (["i2v", "--prompt", "p", "--first-image", "<first>", "--duration", "20"], "duration"),
        (["i2v", "--prompt", "", "--first-image", "<first>"], "prompt"),
        # Options: tiers, numbers, durations, output folders, idempotency keys.
        (["i2v", "--prompt", "p", "--first-image", "<first>", "--tier", "max"], "pro or std"),
        (["i2v", "--prompt", "p", "--first-image", "<first>", "--duration", "x"], "'--duration'"),
        (["i2v", "--prompt", "p", "--first-image", "<first>", "--timeout", "-1"], "'--timeout'"),
        (["i2v", "--prompt", "p", "--first-image", "<first>", "-o", "<first>"], "is a file"),
        (["run", I2V_MODEL, "{}", "--idempotency-key", " "], "cannot be blank"),
        (["run", I2V_MODEL, "{}", "--idempotency-key", "k" * 201], "at most 200 characters"),
        (["run", "", "{}"], "not a model path"),
        # Task ids.
        (["query", "abc"], "a taskId is a number"),
        (["wait", " "], "a taskId is a number"),
        (["download", "12x"], "a taskId is a number"),
        (["cancel", "5.5"], "a taskId is a number"),
        (["wait", "123", "--timeout", "-1"], "'--timeout'"),
        # Batch files and their options.
        (["batch", "<missing>"], "does not exist"),
        (["batch", "<bad-jobs>"], "not valid JSON"),
        (["batch", "<jobs>", "--journal", "<folder>"], "is a directory"),
        (["batch", "<jobs>", "--journal", "<nowhere>"], "cannot use"),
        (["batch", "<jobs>", "--concurrency", "0"], "'--concurrency'"),
        (["batch", "<jobs>", "--timeout", "-1"], "'--timeout'"),
        (["batch", "<jobs>", "-o", "<jobs>"], "is a file"),
        # The server's address.
        (["account", "--base-url", "ftp://example.com"], "base URL must be http(s)"),
    ],
)
def test_bad_input_exits_2_with_a_sentence_and_sends_nothing(
    live_idle: Server, media: dict[str, Path], tmp_path: Path, args: list[str], why: str
) -> None:
    jobs, bad_jobs = tmp_path / "jobs.jsonl", tmp_path / "bad.jsonl"
    jobs.write_text(json.dumps(JOB) + "\n")
    bad_jobs.write_text("{bad\n")
    paths = {
        "<missing>": str(tmp_path / "missing.png"),
        "<folder>": str(tmp_path),
        "<nowhere>": str(tmp_path / "no" / "such" / "folder" / "journal"),
        "<jobs>": str(jobs),
        "<bad-jobs>": str(bad_jobs),
        "<first>": str(media["first"]),
        "<video>": str(media["video"]),
    }
    resolved = [paths.get(arg, arg) for arg in args]
    resolved = [arg.replace("@<missing>", "@" + paths["<missing>"]) for arg in resolved]
    resolved = [arg.replace("@<folder>", "@" + paths["<folder>"]) for arg in resolved]
    result = cli(live_idle, *resolved)
    assert result.exit_code == 2, result.output
    assert why in flat(result.output)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert (live_idle.task_count(), live_idle.upload_count()) == (0, 0)
