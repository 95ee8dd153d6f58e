"""Hostile request bodies over real HTTP: caps checked before and while reading, keyless v1
bodies, nesting, and wrong methods, each answered in its path family's shape, never a 5xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reelgate.api.bodycap import DRAIN_BYTES, FORM_OVERHEAD
from reelgate.config import HttpSettings, MediaSettings, Settings
from reelgate.core.errors import InvalidParameters
from reelgate.runtime import Runtime
from reelgate.service import Service
from reelgate.store import repo
from tests.conftest import LiveServer, make_settings
from tests.rawhttp import MB, Answer, Connection, chunked, filler

I2V = "/openapi/v2/kling-video-o3-pro/image-to-video"
PRICE = "/openapi/v2/price-preview/kling-video-o3-pro/image-to-video"
STATUS = "/task/openapi/status"
UPLOAD = "/openapi/v2/media/upload/binary"
LEGACY = "/task/openapi/upload"
GOOD = {"prompt": "a lantern street", "firstImageUrl": "https://example.com/first.png"}
#: Small caps, so that the tests send little; the defaults are in docs/operations.md.
MODEL_CAP = 256 * 1024
JSON_CAP = 64 * 1024
KEYLESS_CAP = 4 * 1024


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(
        tmp_path / "data",
        db_url,
        media=MediaSettings(max_upload_bytes=MB, max_legacy_upload_bytes=MB),
        http=HttpSettings(
            max_model_json_bytes=MODEL_CAP,
            max_json_bytes=JSON_CAP,
            max_keyless_json_bytes=KEYLESS_CAP,
        ),
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def v2_error(answer: Answer) -> str:
    body = answer.json()
    assert answer.status == 200 and body["status"] == "FAILED", body
    return str(body["errorCode"])


def v1_error(answer: Answer) -> tuple[int, str]:
    body = answer.json()
    assert answer.status == 200 and body["data"] is None, body
    return int(body["code"]), str(body["errorMessage"])


def submit(conn: Connection, key: str, body: dict[str, Any] | None = None) -> Answer:
    return conn.request("POST", I2V, json.dumps(body or GOOD).encode(), bearer(key))


# -- caps --------------------------------------------------------------------------------------


#: Past the cap by more than is read and dropped to keep a connection: closed at once.
OVER = DRAIN_BYTES + 1


@pytest.mark.parametrize(
    ("path", "declared", "keyed", "expected"),
    [
        (STATUS, JSON_CAP + OVER, False, ("v1", 301)),
        (I2V, MODEL_CAP + OVER, True, ("v2", "1007")),
        (PRICE, MODEL_CAP + OVER, True, ("price", "1007")),
        (UPLOAD, MB + FORM_OVERHEAD + OVER, True, ("upload", 1008)),
        (LEGACY, MB + FORM_OVERHEAD + OVER, False, ("v1", 809)),
        ("/healthz", JSON_CAP + OVER, False, ("plain", "1007")),
    ],
)
def test_a_declared_length_over_the_cap_is_refused_before_a_byte_is_read(
    live_server: LiveServer,
    api_key: str,
    path: str,
    declared: int,
    keyed: bool,
    expected: tuple[str, Any],
) -> None:
    family, code = expected
    with Connection(live_server.port) as conn:
        headers = {"Content-Length": str(declared), **(bearer(api_key) if keyed else {})}
        conn.send_head("POST", path, headers)  # and not one byte of the body
        answer = conn.read_answer()
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_server()
    assert "x-reelgate-version" in answer.headers
    body = answer.json()
    if family == "v1":
        assert (answer.status, body["code"]) == (200, code)
    elif family == "v2":
        assert v2_error(answer) == code
    elif family == "price":
        assert (answer.status, body["errorCode"]) == (200, code)
    elif family == "upload":
        assert (answer.status, body["code"], body["data"]) == (200, code, None)
    else:
        assert (answer.status, body["error"]) == (400, code)


def test_a_chunked_body_is_refused_past_the_cap_and_a_short_rest_is_dropped(
    live_server: LiveServer, api_key: str
) -> None:
    with Connection(live_server.port) as conn:
        conn.send_head("POST", I2V, {"Transfer-Encoding": "chunked", **bearer(api_key)})
        conn.send_in_background(chunked(filler(MODEL_CAP + 300_000, 64 * 1024))).join()
        answer = conn.read_answer()
        assert v2_error(answer) == "1007"
        assert "larger than 262144 bytes" in answer.json()["errorMessage"]
        # The rest was read and dropped: the same connection takes the next request.
        assert "connection" not in answer.headers
        assert submit(conn, api_key).json()["status"] == "QUEUED"


def test_a_long_chunked_body_is_not_read_to_its_end(live_server: LiveServer, api_key: str) -> None:
    with Connection(live_server.port) as conn:
        conn.send_head("POST", I2V, {"Transfer-Encoding": "chunked", **bearer(api_key)})
        sender = conn.send_in_background(chunked(filler(64 * MB)))
        answer = conn.read_answer()
        assert v2_error(answer) == "1007"
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_server()
        conn.stop_sending()
        sender.join()
    # The cap, what is dropped to keep a connection, and the sockets' buffers: far from all.
    assert sender.sent < 32 * MB
    with Connection(live_server.port) as conn:
        assert submit(conn, api_key).json()["status"] == "QUEUED"


# -- keys before bodies --------------------------------------------------------------------


def test_a_v1_body_without_a_valid_bearer_header_is_held_to_the_keyless_cap(
    live_server: LiveServer, api_key: str
) -> None:
    body = json.dumps({"apiKey": api_key, "taskId": "1", "padding": "x" * KEYLESS_CAP}).encode()
    with Connection(live_server.port) as conn:
        code, message = v1_error(conn.request("POST", STATUS, body))
        assert code == 301
        assert "without a valid key in an Authorization: Bearer header" in message
        refused = conn.request("POST", STATUS, body, bearer("not-a-key"))
        assert v1_error(refused)[0] == 301
        # The same body after a valid header: read, and answered about the task.
        assert v1_error(conn.request("POST", STATUS, body, bearer(api_key)))[0] == 807


def test_a_v1_bearer_header_is_checked_before_the_body(
    live_server: LiveServer, api_key: str
) -> None:
    with Connection(live_server.port) as conn:
        answer = conn.request("POST", STATUS, b'{"taskId": "1"}', bearer(api_key))
        assert v1_error(answer)[0] == 807  # the header's key, no key in the body
        answer = conn.request("POST", STATUS, b'{"taskId": "1"}', bearer("nope"))
        assert v1_error(answer)[1].endswith("unknown API key")
        # The body's key still wins over a wrong header, as documented.
        body = json.dumps({"apiKey": api_key, "taskId": "1"}).encode()
        assert v1_error(conn.request("POST", STATUS, body, bearer("nope")))[0] == 807


def test_a_v2_key_is_refused_before_the_body_is_read(live_server: LiveServer) -> None:
    # The client waits for "100 Continue" before it sends the body: it gets the refusal instead.
    with Connection(live_server.port) as conn:
        headers = {"Content-Length": str(MODEL_CAP), "Expect": "100-continue", **bearer("nope")}
        conn.send_head("POST", I2V, headers)
        answer = conn.read_answer()
        assert v2_error(answer) == "1002"
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_server()


# -- nesting -------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [33, 5000, 100_000])
def test_deep_json_is_refused_and_the_connection_stays_usable(
    live_server: LiveServer, api_key: str, depth: int
) -> None:
    deep = json.dumps({**GOOD, "elementList": ["x"]})[:-1] + f', "extra": {nested(depth)}}}'
    with Connection(live_server.port) as conn:
        body = deep.encode()
        if len(body) <= MODEL_CAP:
            answer = conn.request("POST", I2V, body, bearer(api_key))
            assert v2_error(answer) == "1007"
            assert "nested deeper than 32 levels" in answer.json()["errorMessage"]
            price = conn.request("POST", PRICE, body, bearer(api_key)).json()
            assert price["errorCode"] == "1007"
        v1 = json.dumps({"apiKey": api_key})[:-1] + f', "taskId": {nested(min(depth, 1000))}}}'
        answer = conn.request("POST", STATUS, v1.encode())
        assert v1_error(answer) == (
            301,
            "Invalid parameters, please check your input: the request body is nested deeper "
            "than 32 levels",
        )
        assert "connection" not in answer.headers
        assert submit(conn, api_key).json()["status"] == "QUEUED"


def test_json_at_the_depth_limit_is_parsed(live_server: LiveServer, api_key: str) -> None:
    body = json.dumps({**GOOD, "somethingNew": json.loads(nested(31))}).encode()
    with Connection(live_server.port) as conn:
        assert submit(conn, api_key, json.loads(body)).json()["status"] == "QUEUED"


def test_a_number_too_long_to_parse_is_invalid_json(live_server: LiveServer, api_key: str) -> None:
    body = b'{"prompt": "a", "firstImageUrl": "https://e/x.png", "duration": 1' + b"0" * 5000 + b"}"
    with Connection(live_server.port) as conn:
        answer = conn.request("POST", I2V, body, bearer(api_key))
        assert v2_error(answer) == "1007"
        assert "not valid JSON" in answer.json()["errorMessage"]


# -- wrong methods -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", I2V, ("v2", "1009")),
        ("PUT", "/openapi/v2/acme/video", ("v2", "1009")),
        ("GET", "/openapi/v2/query", ("v2", "1009")),
        ("GET", PRICE, ("price", "1009")),
        ("POST", "/openapi/v2/queue/status", ("v1", 412)),
        ("GET", "/task/openapi/status", ("v1", 412)),
        ("GET", "/task/openapi/cancel", ("v1", 412)),
        ("DELETE", "/task/openapi/outputs", ("v1", 412)),
        ("GET", "/uc/openapi/accountStatus", ("v1", 412)),
        ("GET", LEGACY, ("v1", 412)),
        ("GET", UPLOAD, ("upload", 1009)),
        ("POST", "/files/openapi/x.png", ("plain", 405)),
        ("POST", "/healthz", ("plain", 405)),
        ("PATCH", "/nothing/here", ("plain", 404)),
    ],
)
def test_every_wrong_method_is_answered_in_its_family_with_a_final_code(
    live_server: LiveServer, api_key: str, method: str, path: str, expected: tuple[str, Any]
) -> None:
    family, code = expected
    with Connection(live_server.port) as conn:
        answer = conn.request(method, path, b"", bearer(api_key))
    body = answer.json()
    if family == "v1":
        assert (answer.status, body["code"], body["msg"]) == (200, code, "TOKEN_INVALID")
        assert "not supported" in body["errorMessage"]
    elif family == "v2":
        assert v2_error(answer) == code
    elif family == "price":
        assert (answer.status, body["errorCode"]) == (200, code)
    elif family == "upload":
        assert (answer.status, body["code"]) == (200, code)
    else:
        assert (answer.status, body["error"]) == (code, str(code))
        if code == 405:
            assert answer.headers["allow"]


# -- what is stored ------------------------------------------------------------------------


def stored_params(runtime: Runtime, task_id: str) -> dict[str, Any]:
    with runtime.db.read() as session:
        task = repo.get_task(session, int(task_id))
        assert task is not None
        return dict(task.params)


def test_only_the_models_fields_are_stored(
    live_server: LiveServer, api_key: str, runtime: Runtime
) -> None:
    body = {
        **GOOD,
        "somethingNew": "x" * 100_000,
        "elementList": ["el-1", {"id": 2, "name": "a hat"}],
        "multiPrompt": ["a", {"prompt": "b", "duration": "2"}],
    }
    with Connection(live_server.port) as conn:
        task = submit(conn, api_key, body).json()
    assert task["status"] == "QUEUED", task
    params = stored_params(runtime, task["taskId"])
    assert "somethingNew" not in params
    assert params["elementList"] == ["el-1", {"id": 2, "name": "a hat"}]
    assert len(json.dumps(params)) < 1000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"firstImageUrl": "https://example.com/" + "a" * 2048}, "a URL is at most 2048"),
        ({"multiPrompt": ["a"] * 7}, "multiPrompt has at most 6 items, got 7"),
        ({"multiPrompt": ["a" * 2501]}, "at most 2500 characters"),
        ({"multiPrompt": [{"prompt": "a", "duration": "1" * 9}]}, "multiPrompt.0"),
        ({"elementList": ["e"] * 8}, "elementList List should have at most 7 items"),
        ({"elementList": ["e" * 257]}, "an element id is at most 256 characters"),
        ({"elementList": [{"id": {"deeper": 1}}]}, "element field 'id' must be a string"),
        ({"elementList": [{str(n): n for n in range(9)}]}, "at most 8 fields"),
    ],
)
def test_oversized_fields_are_refused_not_stored(
    live_server: LiveServer, api_key: str, change: dict[str, Any], message: str
) -> None:
    with Connection(live_server.port) as conn:
        answer = submit(conn, api_key, {**GOOD, **change})
    assert v2_error(answer) == "1007"
    assert message in answer.json()["errorMessage"]


def test_a_data_uri_may_be_longer_than_a_url(live_server: LiveServer, api_key: str) -> None:
    uri = "data:image/png;base64," + "A" * 100_000
    with Connection(live_server.port) as conn:
        assert submit(conn, api_key, {**GOOD, "firstImageUrl": uri}).json()["status"] == "QUEUED"


def test_a_short_body_over_the_cap_is_dropped_and_the_connection_kept(
    live_server: LiveServer, api_key: str
) -> None:
    with Connection(live_server.port) as conn:
        answer = conn.request("POST", I2V, b" " * (MODEL_CAP + 1), bearer(api_key))
        assert v2_error(answer) == "1007"
        assert "connection" not in answer.headers
        assert submit(conn, api_key).json()["status"] == "QUEUED"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"x": json.loads(nested(40))}, "nested deeper than 32 levels"),
        ({"prompt": "x" * MODEL_CAP}, f"larger than {MODEL_CAP} bytes"),
    ],
)
def test_a_passed_through_body_is_held_to_the_same_bounds(
    runtime: Runtime, body: dict[str, Any], message: str
) -> None:
    # Checked by the service itself, before the upstream is asked for a price.
    runtime.settings.routes = {"acme/*": "upstream"}
    with pytest.raises(InvalidParameters, match=message):
        Service(runtime).price("acme/video", body)
