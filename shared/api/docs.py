"""What the OpenAPI document says beyond the routes' models: the error shape every 4xx/5xx answer has, and
the media types of binary and text responses (so generated clients and schemathesis see the real contract)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorResponse(BaseModel):
    """Every error: `{"detail": ...}` (a message, or for a broker failure the run id with it)."""

    detail: Any


ERROR_CODES = {
    400: "bad input (file, field or value named in detail)",
    401: "missing or wrong bearer token",
    404: "unknown run, job, sweep or artifact",
    409: "the run is not in a state that allows this (a stage not finished)",
    410: "an output the record listed is no longer on disk",
    413: "upload over the size limit",
    415: "not multipart/form-data or JSON",
    422: "bad option or missing ground truth",
    503: "task broker unreachable",
    507: "the data root cannot be written (disk full, read-only)",
}
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse, "description": text}
                                           for code, text in ERROR_CODES.items()}  # fmt: skip


# what an artifact is served as (by its name's extension)
ARTIFACT_TYPES = ("application/octet-stream", "application/json", "text/plain", "text/csv", "image/png", "video/mp4")


def binary(*media_types: str, description: str = "file") -> dict[int | str, dict[str, Any]]:
    content = {media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in media_types}
    return {200: {"content": content, "description": description}}


MULTIPART_OR_JSON = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}},
                           "additionalProperties": {"type": "string"}},
            },
            "application/json": {"schema": {"type": "object", "required": ["path"],
                                            "properties": {"path": {"type": "string"}}}},
        },
    }
}  # fmt: skip
MULTIPART_FILE = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}}}}},
    }
}  # fmt: skip
