"""OpenAI's Videos API onto the catalogue and back (``reelgate/videos/mapping.py``): no I/O."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from reelgate.config import VideosApiSettings
from reelgate.core.status import TaskStatus
from reelgate.store.tables import Task
from reelgate.videos.mapping import (
    Inputs,
    InvalidVideoParameter,
    Plan,
    model_name,
    parsed_request,
    plan,
    video_of,
)

SETTINGS = VideosApiSettings()
IMAGE = "https://example.com/first.png"
VIDEO = "https://example.com/source.mp4"
UPLOADED = Inputs(
    upload_kind="image", upload_url="http://me/files/openapi/a.png?expires=1&signature=s"
)


def planned(fields: dict[str, Any], inputs: Inputs = Inputs()) -> Plan:
    return plan(parsed_request(fields), inputs, SETTINGS)


def refused(fields: dict[str, Any], inputs: Inputs = Inputs()) -> InvalidVideoParameter:
    with pytest.raises(InvalidVideoParameter) as error:
        planned(fields, inputs)
    return error.value


def test_an_image_makes_image_to_video_with_openais_defaults() -> None:
    made = planned({"prompt": "a street"}, UPLOADED)
    assert made.model.path == "kling-video-o3-std/image-to-video"  # sora-2
    assert made.body == {
        "prompt": "a street",
        "duration": 4,
        "size": "720x1280",
        "sound": False,
        "firstImageUrl": UPLOADED.upload_url,
    }


def test_form_text_and_json_values_are_read_alike() -> None:
    form = {
        "prompt": "p",
        "model": "sora-2-pro",
        "seconds": "8",
        "size": "1280X720",
        "generate_sound": "true",
        "seed": "42",
        "image_reference": json.dumps({"image_url": IMAGE}),
        "extra_params": json.dumps({"lastImageUrl": IMAGE}),
    }
    json_body = {**form, "seconds": 8, "generate_sound": True, "seed": 42}
    json_body["image_reference"] = {"image_url": IMAGE}
    json_body["extra_params"] = {"lastImageUrl": IMAGE}
    for fields in (form, json_body):
        made = planned(fields)
        assert made.model.path == "kling-video-o3-pro/image-to-video"
        assert made.body == {
            "prompt": "p",
            "duration": 8,
            "size": "1280x720",
            "sound": True,
            "firstImageUrl": IMAGE,
            "seed": 42,
            "lastImageUrl": IMAGE,
        }


def test_a_video_makes_an_edit_and_an_image_beside_it_is_its_reference() -> None:
    made = planned({"prompt": "p", "video_reference": {"video_url": VIDEO}}, UPLOADED)
    assert made.model.path == "kling-video-o3-std/video-edit"
    assert made.body == {"prompt": "p", "videoUrl": VIDEO, "imageUrls": [UPLOADED.upload_url]}
    uploaded_video = Inputs(upload_kind="video", upload_url=VIDEO)
    assert planned({"prompt": "p"}, uploaded_video).body == {"prompt": "p", "videoUrl": VIDEO}


def test_a_catalogue_path_is_a_model_name_too() -> None:
    fields = {"prompt": "p", "model": "kling-video-o3-pro/image-to-video"}
    assert planned(fields, UPLOADED).model.path == "kling-video-o3-pro/image-to-video"


@pytest.mark.parametrize(
    ("fields", "inputs", "param", "words"),
    [
        ({"prompt": "p"}, Inputs(), "input_reference", "no text-to-video"),
        ({"prompt": " "}, UPLOADED, "prompt", "1–2500"),
        ({"prompt": "p", "model": "sora-9"}, UPLOADED, "model", "sora-2, sora-2-pro"),
        (
            {"prompt": "p", "model": "kling-video-o3-pro/video-edit"},
            UPLOADED,
            "model",
            "does not take an image reference",
        ),
        ({"prompt": "p", "seconds": "99"}, UPLOADED, "seconds", "15"),
        ({"prompt": "p", "seconds": "4.5"}, UPLOADED, "seconds", "whole number"),
        ({"prompt": "p", "size": "1281x720"}, UPLOADED, "size", "even"),
        ({"prompt": "p", "seed": -1}, UPLOADED, "seed", "greater than or equal to 0"),
        (
            {"prompt": "p", "image_reference": {"image_url": IMAGE}},
            UPLOADED,
            "image_reference",
            "not both",
        ),
        (
            {"prompt": "p", "input_reference": {"file_id": "file-1"}},
            Inputs(),
            "input_reference",
            "Files API",
        ),
        (
            {"prompt": "p", "video_reference": {"video_url": VIDEO}, "size": "64x64"},
            Inputs(),
            "size",
            "source",
        ),
        ({"prompt": "p", "extra_params": {"duration": 5}}, UPLOADED, "extra_params", "own fields"),
        ({"prompt": "p", "extra_params": {"fps": 16}}, UPLOADED, "extra_params", "not a field"),
        (
            {"prompt": "p", "extra_params": {"multiShot": "yes"}},
            UPLOADED,
            "extra_params",
            "multiShot",
        ),
        ({"prompt": "p", "extra_params": "{nope"}, UPLOADED, "extra_params", "valid JSON"),
        ({"prompt": "p", "generate_sound": "maybe"}, UPLOADED, "generate_sound", "bool"),
        ({"model": "sora-2"}, UPLOADED, "prompt", "required"),
    ],
)
def test_refusals_name_the_openai_field(
    fields: dict[str, Any], inputs: Inputs, param: str, words: str
) -> None:
    error = refused(fields, inputs)
    assert error.param == param and error.code == "1007"
    assert words in error.message


def test_the_model_names_and_their_defaults_are_settings() -> None:
    custom = VideosApiSettings(models={"wan": "kling-video-o3-pro"}, default_model="wan")
    made = plan(parsed_request({"prompt": "p", "seconds": 3}), UPLOADED, custom)
    assert made.model.path == "kling-video-o3-pro/image-to-video"
    assert model_name("kling-video-o3-pro/video-edit", custom) == "wan"
    assert model_name("kling-video-o3-std/video-edit", custom) == "kling-video-o3-std/video-edit"


def task(status: TaskStatus, **changes: Any) -> Task:
    values: dict[str, Any] = {
        "id": 2009191190196789249,
        "model": "kling-video-o3-pro/image-to-video",
        "params": {"prompt": "p", "duration": 8, "size": "1280x720"},
        "status": status.value,
        "progress": 0.0,
        "error_code": "",
        "error_message": "",
        "created_at": datetime(2026, 12, 1, 12, 0, 0),
        "finished_at": None,
    }
    values.update(changes)
    return Task(**values)


def test_a_task_is_a_video_in_each_of_its_states() -> None:
    queued = video_of(task(TaskStatus.QUEUED), SETTINGS)
    assert (queued.id, queued.status, queued.progress) == ("video_2009191190196789249", "queued", 0)
    assert (queued.model, queued.seconds, queued.size) == ("sora-2-pro", "8", "1280x720")
    assert queued.created_at == 1796126400 and queued.completed_at is None
    running = video_of(task(TaskStatus.RUNNING, progress=0.999), SETTINGS)
    assert (running.status, running.progress) == ("in_progress", 99)  # 100 only once done
    ended = datetime(2026, 12, 1, 12, 1, 0)
    done = video_of(task(TaskStatus.SUCCESS, progress=1.0, finished_at=ended), SETTINGS)
    assert (done.status, done.progress, done.completed_at, done.error) == (
        "completed",
        100,
        1796126460,
        None,
    )
    failed = video_of(
        task(TaskStatus.FAILED, finished_at=ended, error_code="1013", error_message="bad"),
        SETTINGS,
    )
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error.code, failed.error.message) == ("1013", "bad")
    cancelled = video_of(task(TaskStatus.CANCEL, finished_at=ended), SETTINGS)
    assert cancelled.status == "failed" and cancelled.error is not None
    assert cancelled.error.code == "cancelled"


def test_what_the_engine_chooses_answers_auto() -> None:
    edit = task(TaskStatus.QUEUED, model="kling-video-o3-std/video-edit", params={"prompt": "p"})
    assert (video_of(edit, SETTINGS).seconds, video_of(edit, SETTINGS).size) == ("auto", "auto")
    runninghub = task(TaskStatus.QUEUED, params={"prompt": "p", "duration": 5})
    assert video_of(runninghub, SETTINGS).size == "auto"


def test_an_ended_video_expires_when_its_retention_ends() -> None:
    ended = datetime(2026, 12, 1, 12, 1, 0)
    done = task(TaskStatus.SUCCESS, progress=1.0, finished_at=ended)
    assert video_of(done, SETTINGS, retention_seconds=3600).expires_at == 1796126460 + 3600
    assert video_of(done, SETTINGS).expires_at is None  # kept for ever
    assert video_of(task(TaskStatus.RUNNING), SETTINGS, retention_seconds=3600).expires_at is None
