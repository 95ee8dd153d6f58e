"""Declaring request bodies that reelgate reads itself, and the app's OpenAPI document.

RunningHub's endpoints take their JSON leniently (any content type, an empty body as ``{}``) and
check the key before the body, so routes read bodies themselves instead of letting FastAPI parse
them. ``json_body``/``multipart_body`` put the same wire model the route validates with into the
operation, and ``openapi`` moves the schemas into ``components`` where generators expect them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_REF = "#/components/schemas/{model}"
_SCHEMAS = "x-reelgate-schemas"
#: What every call that takes a key may answer instead of its result (``reelgate.limiting``).
_RATE_LIMITED = {
    "description": "Rate limited (`1003`): nothing was done. Retry after `Retry-After` seconds. "
    "The body has the path's usual error shape; on v2 task paths it is the task object with "
    "the `taskId` asked about and `status: null` (never `FAILED`).",
    "headers": {
        "Retry-After": {
            "description": "Seconds until the key's window frees up.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def json_body(model: type[BaseModel], description: str = "") -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body validated by ``model``."""
    schema = model.model_json_schema(by_alias=True, ref_template=_REF)
    definitions = schema.pop("$defs", {})
    body: dict[str, Any] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
    }
    if description:
        body["description"] = description
    return {"requestBody": body, _SCHEMAS: {model.__name__: schema, **definitions}}


def multipart_body(fields: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    """``openapi_extra`` documenting a ``multipart/form-data`` body."""
    schema = {"type": "object", "properties": fields, "required": required}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


def binary_response(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """``responses`` for an endpoint whose 200 answer is a file, not JSON."""
    content = {media_type: {"schema": {"type": "string", "format": "binary"}}}
    return {200: {"description": description, "content": content}}


def error_codes(*codes: str) -> str:
    """A line listing the contract's error codes an endpoint can answer with."""
    from reelgate.core.errors import V2_MESSAGES

    lines = [f"- `{code}`: {V2_MESSAGES.get(code, '')}" for code in codes]
    return "\n\nBusiness errors travel in the body with HTTP 200:\n\n" + "\n".join(lines)


def install(app: FastAPI) -> None:
    """Build the document once, with every declared body schema under ``components``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                schemas.update(operation.pop(_SCHEMAS, {}))
                # FastAPI documents a 422 for routes with parameters; reelgate never answers
                # one (RunningHub's errors travel with HTTP 200, bad paths are 404).
                operation.get("responses", {}).pop("422", None)
                if operation.get("security"):
                    operation.setdefault("responses", {})["429"] = _RATE_LIMITED
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
