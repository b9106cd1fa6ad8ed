"""Property-based API test: schemathesis generates requests from /openapi.json and sends them to
a real uvicorn server on Redis; no request may get a 5xx, and answers must match the schema.

Bounded: ``MAX_EXAMPLES`` per operation and generation mode (about 500 requests in all).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.web.server import TOKEN, ServerThread, redis_settings

MAX_EXAMPLES = 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNNEGATABLE = {"/metrics", "/health/live", "/health/ready"}
ENDLESS = {"/v1/queues/{queue}/events"}  # Server-Sent Events: tested in tests/web/test_events.py
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _run(server: ServerThread, mode: schemathesis.GenerationMode, checks: list) -> None:
    doc = httpx.get(f"{server.url}/openapi.json", headers=AUTH, timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc)
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ENDLESS and operation.method.upper() == "GET":
            continue
        if mode == schemathesis.GenerationMode.NEGATIVE and operation.path in UNNEGATABLE:
            continue  # no parameters and no body: nothing to make invalid

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.url, headers=AUTH, timeout=10)
            case.validate_response(response, checks=checks, headers=AUTH)

        check()
        tested += 1
    assert tested >= (10 if mode == schemathesis.GenerationMode.POSITIVE else 7)


def test_positive_examples_conform(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    server = serve(redis_settings(redis_url, prefix))
    _run(server, schemathesis.GenerationMode.POSITIVE, CHECKS)


def test_negative_examples_never_5xx(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    server = serve(redis_settings(redis_url, prefix))
    _run(server, schemathesis.GenerationMode.NEGATIVE, [not_a_server_error])
