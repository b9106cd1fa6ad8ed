"""The hand-written OpenAPI 3.0 description of the HTTP API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from redkeep.web.api import JOB_ID_PATTERN, JOB_STATUSES, MAX_LIST_LIMIT, NAME_PATTERN

__all__ = ["openapi_schema"]

_REF_ERROR = {"$ref": "#/components/responses/Error"}
_REF_JOB = {"$ref": "#/components/schemas/Job"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {str(c): _REF_ERROR for c in codes}
    out["401"] = _REF_ERROR
    out["503"] = _REF_ERROR
    return out


def _path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def openapi_schema(*, max_key_length: int = 1024, version: str = "0.1.0") -> dict[str, Any]:
    """The OpenAPI document (``max_key_length`` mirrors ``cache_max_key_length``)."""
    name = {"type": "string", "pattern": NAME_PATTERN}
    cache_name = _path_param("name", name, "Cache name.")
    queue_name = _path_param("queue", name, "Queue name.")
    key = _path_param(
        "key", {"type": "string", "minLength": 1, "maxLength": max_key_length}, "Cache key."
    )
    job_id = _path_param("job_id", {"type": "string", "pattern": JOB_ID_PATTERN}, "Job id.")
    anything: dict[str, Any] = {"nullable": True}
    entry = {
        "type": "object",
        "required": ["key", "value"],
        "properties": {
            "key": {"type": "string"},
            "value": anything,
            "ttl": {"type": "number", "nullable": True},
        },
    }
    put_body = {
        "type": "object",
        "required": ["value"],
        "additionalProperties": False,
        "properties": {
            "value": anything,
            "ttl": {
                "type": "number",
                "exclusiveMinimum": True,
                "minimum": 0,
                "maximum": 315360000,
                "nullable": True,
            },
        },
    }
    enqueue_body = {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "payload": anything,
            "job_id": {"type": "string", "pattern": JOB_ID_PATTERN, "nullable": True},
            "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
            "delay": {"type": "number", "minimum": 0, "maximum": 31536000, "nullable": True},
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000, "nullable": True},
            "timeout": {
                "type": "number",
                "exclusiveMinimum": True,
                "minimum": 0,
                "maximum": 86400,
                "nullable": True,
            },
        },
    }
    job = {
        "type": "object",
        "required": ["id", "name", "status"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": list(JOB_STATUSES)},
            "payload": anything,
            "result": anything,
        },
    }
    ok_flag = {"type": "object", "properties": {"id": {"type": "string"}}}
    paths: dict[str, Any] = {
        "/health/live": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "The process serves HTTP.")},
            }
        },
        "/health/ready": {
            "get": {
                "summary": "Readiness with a per-component report",
                "security": [],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Health"}, "Ready."),
                    "503": _json({"$ref": "#/components/schemas/Health"}, "Not ready."),
                },
            }
        },
        "/v1/caches/{name}/keys/{key}": {
            "parameters": [cache_name, key],
            "get": {
                "summary": "Read a cache entry",
                "responses": {"200": _json(entry, "The entry."), **_errors(400, 404)},
            },
            "put": {
                "summary": "Write a cache entry",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": put_body}},
                },
                "responses": {
                    "200": _json({"type": "object"}, "Stored."),
                    **_errors(400, 413, 422),
                },
            },
            "delete": {
                "summary": "Delete a cache entry",
                "responses": {"200": _json({"type": "object"}, "Deleted?"), **_errors(400)},
            },
        },
        "/v1/caches/{name}/stats": {
            "parameters": [cache_name],
            "get": {
                "summary": "Cache counters",
                "responses": {"200": _json({"type": "object"}, "Counters."), **_errors(400)},
            },
        },
        "/v1/queues/{queue}/counts": {
            "parameters": [queue_name],
            "get": {
                "summary": "Jobs per status",
                "responses": {"200": _json({"type": "object"}, "Counts."), **_errors(400)},
            },
        },
        "/v1/queues/{queue}/jobs": {
            "parameters": [queue_name],
            "post": {
                "summary": "Enqueue a job",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": enqueue_body}},
                },
                "responses": {"201": _json(_REF_JOB, "The job."), **_errors(400, 413, 422)},
            },
            "get": {
                "summary": "List jobs with one status",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(JOB_STATUSES)},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 1000000},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT},
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["jobs"],
                            "properties": {"jobs": {"type": "array", "items": _REF_JOB}},
                        },
                        "A page of jobs.",
                    ),
                    **_errors(400),
                },
            },
        },
        "/v1/queues/{queue}/jobs/{job_id}": {
            "parameters": [queue_name, job_id],
            "get": {
                "summary": "Read a job",
                "responses": {"200": _json(_REF_JOB, "The job."), **_errors(400, 404)},
            },
        },
        "/v1/queues/{queue}/jobs/{job_id}/cancel": {
            "parameters": [queue_name, job_id],
            "post": {
                "summary": "Cancel a job",
                "responses": {"200": _json(ok_flag, "Cancelled?"), **_errors(400, 404)},
            },
        },
        "/v1/queues/{queue}/jobs/{job_id}/retry": {
            "parameters": [queue_name, job_id],
            "post": {
                "summary": "Retry a failed job",
                "responses": {"200": _json(_REF_JOB, "The job."), **_errors(400, 404, 409)},
            },
        },
        "/v1/export": {
            "get": {
                "summary": "Stream every cache entry and job as a JSON Lines snapshot",
                "parameters": [
                    {"name": "caches", "in": "query", "schema": {"type": "string"}},
                    {"name": "queues", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "Snapshot records, one JSON object per line.",
                        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                    },
                    **_errors(400),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _REF_ERROR,
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "redkeep",
            "version": version,
            "description": "Durable cache and job-queue service on Redis.",
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Job": job,
                "Health": {
                    "type": "object",
                    "required": ["ready", "status", "components"],
                    "properties": {
                        "ready": {"type": "boolean"},
                        "status": {"type": "string"},
                        "components": {"type": "object"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["type", "message"],
                            "properties": {
                                "type": {"type": "string"},
                                "message": {"type": "string"},
                                "field": {"type": "string"},
                            },
                        }
                    },
                },
            },
            "responses": {
                "Error": _json({"$ref": "#/components/schemas/Error"}, "An error."),
            },
        },
    }
