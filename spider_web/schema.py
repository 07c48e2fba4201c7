"""The OpenAPI schema says what every operation can answer, errors included.

drf-spectacular documents the success answer of each view; the errors come from DRF itself
(authentication, permissions, validation, a missing object, an invalid cursor) and are the
same for every view, so they are added here once, after generation, rather than repeated in
each view's ``extend_schema``. A view that documents its own error keeps it.
"""

from __future__ import annotations

from typing import Any

ERROR = {"type": "object", "description": "what went wrong",
         "properties": {"detail": {"type": "string"}}, "additionalProperties": True}
# A validation error: {field: [messages]} or {"detail": ...}; a few views raise a bare list.
VALIDATION_ERROR = {"description": "the request's fields and what is wrong with each",
                    "oneOf": [{"type": "object", "additionalProperties": True},
                              {"type": "array", "items": {"type": "string"}}]}
BODY_METHODS = {"post", "put", "patch"}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document_errors(result: dict[str, Any], generator: Any, request: Any,
                    public: bool) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOK: add 400/401/403/404 where they can happen."""
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            params = operation.get("parameters", [])
            paged = any(p.get("name") == "cursor" for p in params)
            if method in BODY_METHODS or any(p.get("in") == "query" for p in params):
                responses.setdefault("400", _answer("invalid request", VALIDATION_ERROR))
            responses.setdefault("401", _answer("not logged in (or the token expired)", ERROR))
            responses.setdefault("403", _answer("logged in, but not allowed", ERROR))
            if "{" in path or paged:
                responses.setdefault("404", _answer(
                    "no such project or object for you (or an invalid cursor)", ERROR))
    return result
