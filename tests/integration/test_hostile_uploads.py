"""Uploads read as they arrive: the key before the file, the cap on every chunk, nothing left
behind by a refusal; and signed links that answer HEAD and never let a browser guess a type."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import httpx
import pytest

from reelgate.api.forms import MAX_BEFORE_FILE, MAX_FIELD_BYTES, MAX_PARTS
from reelgate.config import MediaSettings, Settings
from reelgate.runtime import Runtime
from reelgate.samples import write_sample_image
from tests.conftest import LiveServer, make_settings
from tests.rawhttp import (
    MB,
    Answer,
    Connection,
    boundary,
    chunked,
    filler,
    form,
    form_end,
    form_part,
)

UPLOAD = "/openapi/v2/media/upload/binary"
LEGACY = "/task/openapi/upload"
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    media = MediaSettings(max_upload_bytes=MB, max_legacy_upload_bytes=MB)
    return make_settings(tmp_path / "data", db_url, media=media)


def leftovers(runtime: Runtime) -> list[Path]:
    """Files in storage: partial uploads (``.upload-*``) and stored ones alike."""
    return [p for p in runtime.settings.resolved_storage_dir().rglob("*") if p.is_file()]


def form_headers(bound: str, key: str | None = None, **more: str) -> dict[str, str]:
    headers = {"Content-Type": f"multipart/form-data; boundary={bound}", **more}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def post_form(port: int, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    with Connection(port) as conn:
        return conn.request("POST", path, body, headers)


def png(tmp_path: Path) -> bytes:
    return write_sample_image(tmp_path / "a.png", width=320, height=240).read_bytes()


def test_a_file_over_the_cap_is_refused_as_it_arrives_and_leaves_nothing(
    live_server: LiveServer, api_key: str, runtime: Runtime
) -> None:
    bound = boundary()
    with Connection(live_server.port) as conn:
        conn.send_head(
            "POST", UPLOAD, form_headers(bound, api_key, **{"Transfer-Encoding": "chunked"})
        )
        head = form_part(bound, "file", PNG_HEAD, "big.png")
        sender = conn.send_in_background(chunked([head, *filler(40 * MB), form_end(bound)]))
        answer = conn.read_answer().json()
        conn.stop_sending()
        sender.join()
    assert (answer["code"], answer["data"]) == (1008, None)
    assert answer["message"].endswith("uploads are limited to 1 MB")
    assert sender.sent < 20 * MB
    assert leftovers(runtime) == []


def test_an_upload_within_the_cap_is_stored_without_being_spooled_whole(
    live_server: LiveServer, api_key: str, runtime: Runtime, tmp_path: Path
) -> None:
    data = png(tmp_path)
    bound = boundary()
    body = form(bound, {"note": "x"}, {"file": ("a.png", data)})
    # Chunked, in small pieces: the parser meets boundaries split across chunks.
    pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    with Connection(live_server.port) as conn:
        conn.send_head(
            "POST", UPLOAD, form_headers(bound, api_key, **{"Transfer-Encoding": "chunked"})
        )
        conn.send_in_background(chunked(pieces)).join()
        answer = conn.read_answer().json()
    assert answer["code"] == 0, answer
    assert answer["data"]["fileName"] == f"openapi/{hashlib.sha256(data).hexdigest()}.png"
    assert [path.name for path in leftovers(runtime)] == [Path(answer["data"]["fileName"]).name]


def test_the_first_file_part_is_the_upload(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    data = png(tmp_path)
    bound = boundary()
    body = (
        form_part(bound, "other", b"not stored", "x.bin")
        + b"\r\n"
        + form_part(bound, "file", data, "a.png")
        + b"\r\n"
        + form_part(bound, "file", b"second", "b.png")
        + form_end(bound)
    )
    answer = post_form(live_server.port, UPLOAD, body, form_headers(bound, api_key)).json()
    assert answer["data"]["size"] == str(len(data))


def test_a_v2_upload_key_is_refused_before_the_form_is_read(live_server: LiveServer) -> None:
    bound = boundary()
    headers = form_headers(bound, "nope", **{"Content-Length": str(MB), "Expect": "100-continue"})
    with Connection(live_server.port) as conn:
        conn.send_head("POST", UPLOAD, headers)  # waits for "100 Continue": it never comes
        answer = conn.read_answer()
        assert (answer.json()["code"], answer.headers["connection"]) == (401, "close")


def test_a_legacy_key_field_is_checked_the_moment_it_arrives(
    live_server: LiveServer, runtime: Runtime
) -> None:
    runtime.settings.media.max_legacy_upload_bytes = 20 * MB
    bound = boundary()
    first = form_part(bound, "apiKey", b"wrong") + b"\r\n" + form_part(bound, "file", b"", "a.png")
    with Connection(live_server.port) as conn:
        # Declares a large file, sends only the key field: the answer comes before the file.
        conn.send_head("POST", LEGACY, form_headers(bound, **{"Content-Length": str(20 * MB)}))
        conn.sock.sendall(first)
        answer = conn.read_answer()
        assert answer.json()["code"] == 802
        assert answer.json()["errorMessage"].endswith("unknown API key")
        assert answer.headers["connection"] == "close"


def test_a_legacy_file_before_any_key_is_refused_unread(
    live_server: LiveServer, runtime: Runtime
) -> None:
    runtime.settings.media.max_legacy_upload_bytes = 20 * MB
    bound = boundary()
    with Connection(live_server.port) as conn:
        conn.send_head("POST", LEGACY, form_headers(bound, **{"Content-Length": str(20 * MB)}))
        conn.sock.sendall(form_part(bound, "file", PNG_HEAD, "a.png"))
        answer = conn.read_answer().json()
    assert answer["code"] == 802
    assert "no API key was sent before the file" in answer["errorMessage"]
    assert leftovers(runtime) == []


def test_a_legacy_upload_takes_the_bearer_header(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    bound = boundary()
    body = form(bound, {"fileType": "image"}, {"file": ("a.png", png(tmp_path))})
    answer = post_form(live_server.port, LEGACY, body, form_headers(bound, api_key)).json()
    assert answer["code"] == 0, answer
    assert answer["data"]["fileType"] == "image"
    # A key field, when there is one, is the key (as for every v1 endpoint).
    body = form(bound, {"apiKey": "wrong"}, {"file": ("a.png", png(tmp_path))})
    assert (
        post_form(live_server.port, LEGACY, body, form_headers(bound, api_key)).json()["code"]
        == 802
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            lambda b: form(b, {f"f{n}": "x" for n in range(MAX_PARTS + 1)}, {}),
            f"a form has at most {MAX_PARTS} parts",
        ),
        (
            lambda b: form(b, {"note": "x" * (MAX_FIELD_BYTES + 1)}, {}),
            f"form field 'note' is longer than {MAX_FIELD_BYTES} bytes",
        ),
        (
            lambda b: b"\r\n" + b"x" * (MAX_BEFORE_FILE + 10) + form(b, {}, {}),
            f"a form carries at most {MAX_BEFORE_FILE} bytes before its file",
        ),
        (
            lambda b: form_part(b, "file", PNG_HEAD + b"0" * 1000, "a.png"),
            "it ended in the file",
        ),
        (lambda b: b"--" + b.encode() + b"\r\nno headers at all\r\n\r\n", "multipart/form-data"),
    ],
)
def test_broken_forms_are_refused_with_1007(
    live_server: LiveServer, api_key: str, runtime: Runtime, body: object, message: str
) -> None:
    bound = boundary()
    assert callable(body)
    answer = post_form(live_server.port, UPLOAD, body(bound), form_headers(bound, api_key))
    assert (answer.status, answer.json()["code"]) == (200, 1007), answer.body
    assert message in answer.json()["message"]
    assert leftovers(runtime) == []


# -- signed links --------------------------------------------------------------------------


def test_head_answers_like_get_without_the_file(http: httpx.Client, tmp_path: Path) -> None:
    data = png(tmp_path)
    link = http.post(UPLOAD, files={"file": ("a.png", data)}).json()["data"]["download_url"]
    got = httpx.get(link)
    head = httpx.head(link)
    assert (head.status_code, head.content) == (200, b"")
    for name in ("content-length", "content-type", "accept-ranges", "etag", "last-modified"):
        assert head.headers[name] == got.headers[name], name
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["content-type"] == "image/png"
    assert head.headers["accept-ranges"] == "bytes"
    assert got.headers["x-content-type-options"] == head.headers["x-content-type-options"]
    assert got.headers["x-content-type-options"] == "nosniff"
    part = httpx.get(link, headers={"Range": "bytes=0-7"})
    assert (part.status_code, part.content) == (206, data[:8])
    refused = httpx.head(link.replace("signature=", "signature=0"))
    assert (refused.status_code, refused.content) == (403, b"")


def test_a_file_of_an_unknown_type_is_served_as_bytes_to_save(
    runtime: Runtime, live_server: LiveServer, tmp_path: Path
) -> None:
    page = tmp_path / "page.html"
    page.write_text("<script>alert(1)</script>")
    runtime.storage.put_file("results/page.html", page)
    answer = httpx.get(runtime.signer.url(live_server.url, "results/page.html", 4_000_000_000))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"].startswith("attachment;")
    assert answer.headers["x-content-type-options"] == "nosniff"


def wait_until_idle(live_server: LiveServer) -> None:
    """Until the server has no request left in hand."""
    deadline = time.monotonic() + 30
    while live_server.server.server_state.tasks or live_server.server.server_state.connections:
        assert time.monotonic() < deadline, "the server kept the request"
        time.sleep(0.02)


@pytest.mark.parametrize("path", [UPLOAD, "/openapi/v2/kling-video-o3-pro/image-to-video"])
def test_a_client_leaving_mid_body_leaves_no_file_and_no_error(
    live_server: LiveServer,
    api_key: str,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    bound = boundary()
    with Connection(live_server.port) as conn:
        conn.send_head("POST", path, form_headers(bound, api_key, **{"Content-Length": str(MB)}))
        conn.sock.sendall(form_part(bound, "file", PNG_HEAD + b"0" * 100_000, "a.png"))
    wait_until_idle(live_server)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert leftovers(runtime) == []
