"""``/openapi.json`` documents every call: its body, its typed answer, its security, and the
documented examples, so clients can be generated, tried from ``/docs`` and fuzzed from it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from openapi_spec_validator import validate
from starlette.routing import BaseRoute

from reelgate.api.app import create_app
from reelgate.runtime import Runtime
from reelgate.wire import MODEL_REQUESTS
from reelgate.wire.requests import SEED_IMAGE_TO_VIDEO, SEED_VIDEO_EDIT
from tests.conftest import LiveServer, make_settings

#: The committed document: a change of the API shows up as a change of this file in review.
COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    """The app on the embedded default: the document does not depend on the database."""
    runtime = Runtime.open(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))
    yield create_app(runtime=runtime)
    runtime.close()


@pytest.fixture
def document(app: FastAPI) -> dict[str, Any]:
    schema: dict[str, Any] = app.openapi()
    return schema


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    """Every endpoint, through included routers (FastAPI keeps them as wrappers)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def test_every_route_is_documented(app: FastAPI, document: dict[str, Any]) -> None:
    documented = {(m, p) for m, p, _ in operations(document)}
    routes = [r for r in api_routes(app.routes) if r.include_in_schema]
    assert len(routes) >= 19
    for route in routes:
        for method in (route.methods or set()) - {"HEAD"}:
            assert (method, route.path_format) in documented, f"{method} {route.path}"


def test_every_operation_has_a_typed_answer_and_every_post_a_body(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        answer = operation["responses"]["200"]
        assert answer.get("content"), f"{method} {path}: no 200 content"
        for media in answer["content"].values():
            assert media.get("schema"), f"{method} {path}: untyped 200 answer"
        assert "422" not in operation["responses"], f"{method} {path} documents a 422"
        if method == "POST":
            body = operation.get("requestBody", {}).get("content")
            assert body, f"{method} {path}: no request body"


def test_model_endpoints_take_their_wire_model(document: dict[str, Any]) -> None:
    for model in MODEL_REQUESTS:
        for prefix in ("/openapi/v2/", "/openapi/v2/price-preview/"):
            operation = document["paths"][prefix + model.model_path]["post"]
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{model.__name__}"}
    schemas = document["components"]["schemas"]
    assert "elementList" in schemas["KlingO3ProImageToVideo"]["properties"]
    assert "elementList" not in schemas["KlingO3StdImageToVideo"]["properties"]
    assert schemas["KlingO3ProImageToVideo"]["properties"]["duration"]["maximum"] == 15


def test_the_documented_examples_are_shown(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("KlingO3ProImageToVideo", "KlingO3StdImageToVideo"):
        assert schemas[name]["examples"] == [SEED_IMAGE_TO_VIDEO]
    for name in ("KlingO3ProVideoEdit", "KlingO3StdVideoEdit"):
        assert schemas[name]["examples"] == [SEED_VIDEO_EDIT]


def test_the_api_key_is_a_declared_security_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    query = document["paths"]["/openapi/v2/query"]["post"]
    assert query["security"] == [{"ApiKey": []}]
    assert "1004" in query["description"]


def test_the_seed_examples_are_accepted_by_the_server(
    http: httpx.Client, document: dict[str, Any]
) -> None:
    """What /docs offers to try is a request the server takes."""
    i2v = http.post("/openapi/v2/kling-video-o3-pro/image-to-video", json=SEED_IMAGE_TO_VIDEO)
    edit = http.post("/openapi/v2/kling-video-o3-std/video-edit", json=SEED_VIDEO_EDIT)
    assert i2v.json()["errorCode"] == "" and edit.json()["errorCode"] == ""


def test_docs_render_the_document(live_server: LiveServer) -> None:
    docs = httpx.get(f"{live_server.url}/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    served = httpx.get(f"{live_server.url}/openapi.json").json()
    assert "/openapi/v2/query" in served["paths"]


def test_the_committed_document_is_current(document: dict[str, Any]) -> None:
    current = json.dumps(document, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if not COMMITTED.exists() or COMMITTED.read_text() != current:
        COMMITTED.write_text(current)
        pytest.fail(f"{COMMITTED} was out of date and has been rewritten: review and commit it")
