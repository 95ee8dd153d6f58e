"""Uploads over real HTTP: v2 binary, legacy v1 form, signed links, limits, sniffing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from reelgate.runtime import Runtime
from reelgate.samples import write_sample_image
from tests.conftest import LiveServer

UPLOAD = "/openapi/v2/media/upload/binary"


def test_upload_answers_the_documented_shape_and_a_working_link(
    http: httpx.Client, tmp_path: Path
) -> None:
    image = write_sample_image(tmp_path / "frame.png", width=320, height=240)
    data = image.read_bytes()
    answer = http.post(UPLOAD, files={"file": ("frame.png", data, "image/png")}).json()
    assert answer["code"] == 0
    assert answer["message"] == answer["msg"] == "success"
    assert answer["data"]["type"] == "image"
    assert answer["data"]["fileName"] == f"openapi/{hashlib.sha256(data).hexdigest()}.png"
    assert answer["data"]["size"] == str(len(data))
    link = httpx.get(answer["data"]["download_url"])
    assert link.status_code == 200
    assert link.content == data


def test_same_content_is_stored_once(http: httpx.Client, tmp_path: Path, runtime: Runtime) -> None:
    data = write_sample_image(tmp_path / "a.jpg", width=320, height=240).read_bytes()
    first = http.post(UPLOAD, files={"file": ("a.jpg", data)}).json()["data"]
    second = http.post(UPLOAD, files={"file": ("other-name.jpg", data)}).json()["data"]
    assert first["fileName"] == second["fileName"]
    assert len(list((runtime.settings.resolved_storage_dir() / "openapi").iterdir())) == 1


def test_type_comes_from_the_bytes_not_the_name(http: httpx.Client, tmp_path: Path) -> None:
    jpeg = write_sample_image(tmp_path / "a.jpg", width=320, height=240).read_bytes()
    answer = http.post(UPLOAD, files={"file": ("looks-like.mp4", jpeg)}).json()
    assert answer["data"]["type"] == "image"
    assert answer["data"]["fileName"].endswith(".jpg")
    html = http.post(
        UPLOAD, files={"file": ("photo.png", b"<html><body>not an image</body></html>")}
    ).json()
    assert html["code"] == 1013
    assert "unsupported file type" in html["message"]


def test_upload_over_the_cap_answers_1008(runtime: Runtime, http: httpx.Client) -> None:
    runtime.settings.media.max_upload_bytes = 1000
    answer = http.post(
        UPLOAD, files={"file": ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * 2000)}
    ).json()
    assert answer["code"] == 1008
    assert answer["data"] is None


def test_upload_without_a_file_field_answers_1007(http: httpx.Client) -> None:
    assert http.post(UPLOAD, files={"other": ("a", b"x")}).json()["code"] == 1007


def test_upload_with_a_wrong_key_answers_401(live_server: LiveServer) -> None:
    answer = httpx.post(
        live_server.url + UPLOAD,
        files={"file": ("a.png", b"x")},
        headers={"Authorization": "Bearer nope"},
    )
    assert answer.status_code == 200
    assert answer.json()["code"] == 401
    assert answer.json()["message"].startswith("ApiKey verification failed")


def test_legacy_upload_takes_the_key_in_the_form(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    data = write_sample_image(tmp_path / "a.png", width=320, height=240).read_bytes()
    answer = httpx.post(
        live_server.url + "/task/openapi/upload",
        data={"apiKey": api_key, "fileType": "input"},
        files={"file": ("a.png", data)},
    ).json()
    assert answer["code"] == 0
    assert answer["data"] == {
        "fileName": f"openapi/{hashlib.sha256(data).hexdigest()}.png",
        "fileType": "input",
    }
    wrong = httpx.post(
        live_server.url + "/task/openapi/upload",
        data={"apiKey": "x"},
        files={"file": ("a.png", data)},
    )
    assert wrong.json()["code"] == 802


def test_legacy_upload_is_capped_at_30_mb(
    live_server: LiveServer, api_key: str, runtime: Runtime
) -> None:
    runtime.settings.media.max_legacy_upload_bytes = 100
    answer = httpx.post(
        live_server.url + "/task/openapi/upload",
        data={"apiKey": api_key},
        files={"file": ("a.png", b"\x89PNG" + b"0" * 200)},
    ).json()
    assert (answer["code"], answer["msg"]) == (809, "APIKEY_FILE_SIZE_EXCEEDED")


def test_links_expire_and_cannot_be_forged(
    http: httpx.Client, tmp_path: Path, runtime: Runtime, live_server: LiveServer
) -> None:
    data = write_sample_image(tmp_path / "a.png", width=320, height=240).read_bytes()
    key = http.post(UPLOAD, files={"file": ("a.png", data)}).json()["data"]["fileName"]
    expired = runtime.signer.url(live_server.url, key, 1_000_000)
    assert httpx.get(expired).status_code == 403
    forged = runtime.signer.url(live_server.url, key, 4_000_000_000).replace(
        "signature=", "signature=0"
    )
    assert httpx.get(forged).status_code == 403
    escape = runtime.signer.url(live_server.url, "../reelgate.db", 4_000_000_000)
    assert httpx.get(escape).status_code in (403, 404)
