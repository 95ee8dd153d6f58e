"""Values too long to store are refused with 1007 and nothing is stored, never silently cut."""

from __future__ import annotations

import io

import httpx

from reelgate.runtime import Runtime
from reelgate.samples import sample_image
from reelgate.store.tables import Task, Upload

I2V = "/openapi/v2/kling-video-o3-std/image-to-video"
BODY = {"prompt": "a lantern street", "firstImageUrl": "https://example.com/a.png"}


def count(runtime: Runtime, table: type[Task] | type[Upload]) -> int:
    with runtime.db.read() as session:
        return session.query(table).count()


def test_an_idempotency_key_of_200_characters_is_kept_whole(http: httpx.Client) -> None:
    key = "k" * 199 + "!"
    first = http.post(I2V, json=BODY, headers={"Idempotency-Key": key}).json()
    other = http.post(I2V, json=BODY, headers={"Idempotency-Key": "k" * 199 + "?"}).json()
    again = http.post(I2V, json=BODY, headers={"Idempotency-Key": key}).json()
    assert first["taskId"] == again["taskId"] != other["taskId"]


def test_a_longer_idempotency_key_is_refused(http: httpx.Client, runtime: Runtime) -> None:
    answer = http.post(I2V, json=BODY, headers={"Idempotency-Key": "k" * 201}).json()
    assert (answer["status"], answer["errorCode"]) == ("FAILED", "1007")
    assert "Idempotency-Key" in answer["errorMessage"] and "200" in answer["errorMessage"]
    assert count(runtime, Task) == 0


def test_a_file_name_too_long_to_store_is_refused(http: httpx.Client, runtime: Runtime) -> None:
    buffer = io.BytesIO()
    sample_image(320, 240).save(buffer, format="PNG")
    name = "n" * 297 + ".png"
    answer = http.post(
        "/openapi/v2/media/upload/binary", files={"file": (name, buffer.getvalue(), "image/png")}
    ).json()
    assert answer["code"] == 1007 and "300" in answer["message"]
    assert count(runtime, Upload) == 0
    stored = http.post(
        "/openapi/v2/media/upload/binary",
        files={"file": (name[1:], buffer.getvalue(), "image/png")},
    ).json()
    assert stored["code"] == 0
    assert count(runtime, Upload) == 1
