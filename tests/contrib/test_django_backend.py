"""RedkeepCache beyond Django's suite: native async methods, fallback during an outage, OPTIONS,
single-flight get_or_set, ``enqueue_on_commit`` on a real SQLite database, and the core never
importing Django."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test.utils import override_settings

from redkeep.contrib.django import RedkeepCache, enqueue_on_commit, sync_services
from redkeep.sync import AsyncContextError
from tests.support.django_suite import backend_params, remove_keys, setup_django

URL = setup_django()


@pytest.fixture(autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    remove_keys(URL)


def test_sync_and_async_methods_share_the_keys() -> None:
    cache = caches["default"]
    assert isinstance(cache, RedkeepCache)
    cache.set("shared", {"n": 1}, 60)

    async def main() -> dict[str, Any]:
        with pytest.raises(AsyncContextError):  # the sync API refuses a running loop...
            cache.services.cache("django").get("x")
        seen = {"get": await cache.aget("shared")}  # ...the async methods run natively on it
        await cache.aset("from_async", [1, 2], 60)
        seen["add"] = await cache.aadd("from_async", 3)
        seen["many"] = await cache.aget_many(["shared", "from_async", "nope"])
        await cache.aset("n", 41)
        seen["incr"] = await cache.aincr("n")
        seen["decr"] = await cache.adecr("n", 2)
        seen["touch"] = await cache.atouch("n", 0)  # zero timeout: expires now
        seen["has_n"] = await cache.ahas_key("n")
        seen["gos"] = await cache.aget_or_set("gos", lambda: "made")
        await cache.aset_many({"a": 1, "b": 2})
        await cache.adelete_many(["a"])
        seen["deleted"] = await cache.adelete("b")
        with pytest.raises(ValueError, match="not found"):
            await cache.aincr("missing")
        return seen

    seen = asyncio.run(main())
    assert seen == {
        "get": {"n": 1},
        "add": False,
        "many": {"shared": {"n": 1}, "from_async": [1, 2]},
        "incr": 42,
        "decr": 40,
        "touch": True,
        "has_n": False,
        "gos": "made",
        "deleted": True,
    }
    assert cache.get("from_async") == [1, 2] and cache.get("gos") == "made"


def test_async_services_close_with_their_loop() -> None:
    cache = caches["default"]
    shared = cache._shared

    async def main() -> Any:
        await cache.aset("k", 1)
        return asyncio.get_running_loop()

    loop_services_before = len(shared.lifetimes)
    asyncio.run(main())  # asyncio.run shuts down async generators, which closes the services
    assert len(shared.lifetimes) == loop_services_before
    assert len(shared.loops) == 0


def test_timeouts_follow_django() -> None:
    cache = caches["default"]
    cache.set("forever", 1, None)
    assert cache.services.cache("django").ttl(cache.make_key("forever")) is None
    cache.set("soon", 1, 30)
    ttl = cache.services.cache("django").ttl(cache.make_key("soon"))
    assert ttl is not None and 25 < ttl <= 30
    cache.set("default", 1)  # TIMEOUT default: 300 s
    ttl = cache.services.cache("django").ttl(cache.make_key("default"))
    assert ttl is not None and 295 < ttl <= 300
    cache.set("negative", 1, -5)
    assert cache.has_key("negative") is False


def test_get_or_set_with_a_callable_is_single_flight_across_threads() -> None:
    cache = caches["default"]
    calls: list[int] = []
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def factory() -> str:
        calls.append(1)
        time.sleep(0.3)
        return "expensive"

    def work() -> None:
        barrier.wait(10)
        results.append(cache.get_or_set("hot", factory, 60))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == ["expensive"] * 8
    assert len(calls) == 1


def test_fallback_keeps_django_working_while_redis_is_down(redis_server_factory: Any) -> None:
    server = redis_server_factory()
    params = backend_params(server.url, connect_timeout=0.5, command_timeout=0.5, retry_attempts=0)
    with override_settings(CACHES={"default": params}):
        cache = caches["default"]
        cache.set("k", "v")
        server.stop()
        cache.set("during", "outage")  # no error reaches the view
        assert cache.get("during") == "outage"
        assert cache.services.cache("django").mode == "fallback"


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown RedkeepCache option 'colour'"):
        RedkeepCache(URL, {"OPTIONS": {"colour": "blue"}})
    with pytest.raises(ImproperlyConfigured, match="COMMAND_TIMEOUT: input should be greater"):
        RedkeepCache(URL, {"OPTIONS": {"command_timeout": -1}})
    with pytest.raises(ImproperlyConfigured, match="one Redis URL"):
        RedkeepCache([URL, URL], {})
    RedkeepCache(URL, {"OPTIONS": {"MAX_ENTRIES": 10}})  # Django's cull options are ignored


def test_backends_with_the_same_config_share_services() -> None:
    params = backend_params(URL)
    a = RedkeepCache(URL, dict(params))
    b = RedkeepCache(URL, dict(params))
    assert a.services is b.services
    assert sync_services() is caches["default"].services


# -- enqueue_on_commit (real SQLite database) ---------------------------------------------------
@pytest.fixture
def table() -> Iterator[str]:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT)")
    yield "orders"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE orders")


def _insert(item: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO orders (item) VALUES (%s)", [item])


def test_enqueue_on_commit_enqueues_after_commit(table: str) -> None:
    queue = sync_services().queue("orders")
    enqueued: list[Any] = []
    with transaction.atomic():
        _insert("book")
        enqueue_on_commit("orders", "ship", {"item": "book"}, on_enqueued=enqueued.append)
        assert enqueued == [] and queue.counts()["waiting"] == 0  # not before the commit
    assert len(enqueued) == 1
    job = queue.get_job(enqueued[0].id)
    assert job is not None and job.name == "ship" and job.payload == {"item": "book"}


def test_enqueue_on_commit_never_enqueues_on_rollback(table: str) -> None:
    queue = sync_services().queue("orders-rb")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        _insert("lamp")
        enqueue_on_commit(queue, "ship", {"item": "lamp"})
        raise Abort
    with transaction.atomic():
        with pytest.raises(Abort), transaction.atomic():  # a rolled-back savepoint
            enqueue_on_commit(queue, "ship", {"item": "inner"})
            raise Abort
        enqueue_on_commit(queue, "ship", {"item": "outer"})
    assert [j.payload for j in queue.list_jobs("waiting")] == [{"item": "outer"}]
    with connection.cursor() as cursor:
        cursor.execute("SELECT item FROM orders")
        assert cursor.fetchall() == []


def test_enqueue_on_commit_outside_a_transaction_is_immediate(table: str) -> None:
    queue = sync_services().queue("orders-now")
    enqueue_on_commit(queue, "ship", job_id="order-7")
    enqueue_on_commit(queue, "ship", job_id="order-7")  # idempotent with a job_id
    assert queue.counts()["waiting"] == 1


def test_the_core_never_imports_django() -> None:
    code = (
        "import sys, redkeep, redkeep.sync, redkeep.cli, redkeep.web.app; "
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- HttpResponse values (cache_page, cache middleware) without pickle -------------------------
def test_http_response_round_trips_without_pickle() -> None:
    from django.http import HttpResponse, StreamingHttpResponse

    from redkeep.errors import SerializationError

    cache = caches["default"]
    response = HttpResponse(b"\x00binary body", status=418, reason="Short and stout")
    response["X-Custom"] = "yes"
    response.set_cookie("session", "abc", max_age=60, httponly=True, samesite="Lax")
    cache.set("page", response, 60)
    stored = cache.services.cache("django").get(cache.make_key("page"))
    assert type(stored).__name__ == "CachedResponse"  # a tagged dataclass, not a pickle
    back = cache.get("page")
    assert isinstance(back, HttpResponse)
    assert (back.status_code, back.reason_phrase, back.content) == (
        418,
        "Short and stout",
        b"\x00binary body",
    )
    assert back["X-Custom"] == "yes" and back["Content-Type"] == response["Content-Type"]
    assert back.cookies == response.cookies
    assert cache.get_many(["page"])["page"].content == b"\x00binary body"
    with pytest.raises(SerializationError):
        cache.set("stream", StreamingHttpResponse(iter([b"x"])))


def test_cache_page_serves_the_second_request_from_redis() -> None:
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.views.decorators.cache import cache_page

    calls: list[int] = []

    @cache_page(60)
    def view(request: Any) -> HttpResponse:
        calls.append(1)
        return HttpResponse(f"rendered {len(calls)}")

    first = view(RequestFactory().get("/page/"))
    second = view(RequestFactory().get("/page/"))
    assert first.content == second.content == b"rendered 1"
    assert len(calls) == 1
