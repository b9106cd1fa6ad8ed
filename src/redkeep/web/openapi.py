"""The OpenAPI document of the HTTP service, served at ``/openapi.json``.

FastAPI generates it from the same route declarations, parameter types and pydantic models
that validate requests (see :mod:`redkeep.web.routing`), so the schema cannot drift from the
validation. This module only adds what FastAPI cannot know: the bearer-token security scheme,
and redkeep's error body in place of FastAPI's own validation-error shape, which the service
never sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["openapi_document"]

_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app`` (built once, then cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            default = responses.get("422", {})
            if "HTTPValidationError" in str(default):
                del responses["422"]
    components = doc.setdefault("components", {})
    schemas = components.get("schemas", {})
    for name in _FASTAPI_ONLY:
        schemas.pop(name, None)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    doc["security"] = [{"bearer": []}]
    app.openapi_schema = doc
    return doc
