"""The SDK checks requests with the server's own wire models (contract §2, §3): the same verdict
on every case, before anything is uploaded or sent."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reelgate import wire
from reelgate.client import REQUEST_MODELS, RequestValidationError
from reelgate.client._models import parse_request
from reelgate.core.catalogue import CATALOGUE

URL = "https://example.com/a.png"
I2V = {"prompt": "a street", "firstImageUrl": URL}
EDIT = {"prompt": "sepia", "videoUrl": "https://example.com/a.mp4"}

CASES: list[tuple[str, dict[str, Any]]] = [
    ("i2v", I2V),
    ("i2v", {**I2V, "lastImageUrl": URL, "duration": 15, "sound": False}),
    ("i2v", {**I2V, "lastImageUrl": None}),
    ("i2v", {**I2V, "duration": 2}),
    ("i2v", {**I2V, "duration": 16}),
    ("i2v", {**I2V, "duration": "5"}),
    ("i2v", {**I2V, "duration": 5.0}),
    ("i2v", {**I2V, "sound": "true"}),
    ("i2v", {**I2V, "prompt": ""}),
    ("i2v", {**I2V, "prompt": "x" * 2500}),
    ("i2v", {**I2V, "prompt": "x" * 2501}),
    ("i2v", {**I2V, "prompt": 5}),
    ("i2v", {"prompt": "a"}),
    ("i2v", {**I2V, "firstImageUrl": ""}),
    ("i2v", {**I2V, "shotType": "random"}),
    ("i2v", {**I2V, "multiShot": True}),
    ("i2v", {**I2V, "multiShot": True, "shotType": "intelligence"}),
    ("i2v", {**I2V, "multiShot": True, "multiPrompt": ["a", "b", "c"], "duration": 9}),
    ("i2v", {**I2V, "multiShot": True, "multiPrompt": ["a"] * 7, "duration": 15}),
    ("i2v", {**I2V, "multiShot": True, "multiPrompt": [{"prompt": "a", "duration": "2"}]}),
    ("i2v", {**I2V, "multiShot": True, "multiPrompt": [{"prompt": "a", "duration": "5"}]}),
    ("i2v", {**I2V, "multiShot": True, "multiPrompt": [{"prompt": "a", "duration": 4}, "b"]}),
    ("i2v", {**I2V, "multiShot": True, "multiPrompt": [{"prompt": "a", "duration": 5}, "b"]}),
    ("i2v", {**I2V, "multiShot": True, "multiPrompt": [{"prompt": "a", "duration": "x"}]}),
    ("i2v", {**I2V, "multiShot": True, "multiPrompt": [{"prompt": "a", "duration": 0}, "b"]}),
    ("i2v", {**I2V, "multiShot": False, "multiPrompt": [{"prompt": "a", "duration": 99}]}),
    ("edit", EDIT),
    ("edit", {**EDIT, "imageUrls": [URL] * 4, "keepOriginalSound": False}),
    ("edit", {**EDIT, "imageUrls": [URL] * 5}),
    ("edit", {**EDIT, "imageUrls": [""]}),
    ("edit", {**EDIT, "keepOriginalSound": 1}),
    ("edit", {"prompt": "sepia"}),
]


def server_accepts(path: str, body: dict[str, Any]) -> bool:
    try:
        CATALOGUE[path].request_type.from_wire(body)
    except (ValidationError, ValueError):
        return False
    return True


def client_accepts(path: str, body: dict[str, Any]) -> bool:
    try:
        parse_request(REQUEST_MODELS[path], body)
    except RequestValidationError:
        return False
    return True


@pytest.mark.parametrize("tier", ["pro", "std"])
@pytest.mark.parametrize(("family", "body"), CASES)
def test_client_and_server_agree(tier: str, family: str, body: dict[str, Any]) -> None:
    path = f"kling-video-o3-{tier}/{'image-to-video' if family == 'i2v' else 'video-edit'}"
    assert client_accepts(path, body) == server_accepts(path, body), body


def test_the_sdk_knows_every_kling_o3_model_of_the_catalogue() -> None:
    assert set(REQUEST_MODELS) == set(CATALOGUE)


@pytest.mark.parametrize("generic", wire.MODEL_REQUESTS)
def test_sdk_and_server_models_are_one_class(generic: type[wire.ModelRequest]) -> None:
    """Defined once: both are the wire's class, parametrised only by what a media field holds."""
    sdk, server = REQUEST_MODELS[generic.model_path], CATALOGUE[generic.model_path].request_type
    assert issubclass(sdk, generic) and issubclass(server, generic)
    assert sdk.model_fields.keys() == server.model_fields.keys()


def test_elements_are_pro_only() -> None:
    body = {**I2V, "elementList": ["el-1"]}
    assert client_accepts("kling-video-o3-pro/image-to-video", body)
    assert not client_accepts("kling-video-o3-std/image-to-video", body)  # typo-proof: refused


def test_payloads_use_wire_names_and_leave_empty_fields_out() -> None:
    model = REQUEST_MODELS["kling-video-o3-pro/image-to-video"]
    request = parse_request(
        model,
        {
            "prompt": "p",
            "first_image_url": URL,
            "multi_shot": True,
            "multi_prompt": [{"prompt": "a", "duration": 5}],
        },
    )
    assert request.to_payload() == {
        "prompt": "p",
        "firstImageUrl": URL,
        "duration": 5,
        "sound": True,
        "multiShot": True,
        "multiPrompt": [{"prompt": "a", "duration": 5}],
    }
