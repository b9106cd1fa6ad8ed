"""Thread safety (16 threads on one SyncServices) and fork safety (a pre-fork services object
and its caches work in the child on connections of its own, and the parent is unaffected)."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from redkeep.sync import SyncServices

THREADS = 16


def run_threads(target: Any) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def wrapped(i: int) -> None:
        try:
            barrier.wait(10)
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def test_sixteen_threads_share_one_services(services: SyncServices) -> None:
    cache = services.cache("threads")
    queue = services.queue("threads")
    per = 50
    job_ids: list[str] = []

    def work(i: int) -> None:
        for k in range(per):
            cache.set(f"{i}:{k}", {"thread": i, "k": k})
            assert cache.get(f"{i}:{k}") == {"thread": i, "k": k}
            assert cache.incr("counter") > 0
        assert cache.get_many([f"{i}:{k}" for k in range(per)]) == {
            f"{i}:{k}": {"thread": i, "k": k} for k in range(per)
        }
        job_ids.extend(queue.enqueue("t", {"thread": i, "n": n}).id for n in range(5))

    assert run_threads(work) == []
    assert cache.get("counter") == THREADS * per
    assert len(set(job_ids)) == THREADS * 5
    assert queue.counts()["waiting"] == THREADS * 5


def test_get_or_set_is_single_flight_across_threads(services: SyncServices) -> None:
    cache = services.cache("flight")
    calls: list[int] = []
    results: list[Any] = []

    def factory() -> dict[str, int]:
        calls.append(threading.get_ident())
        time.sleep(0.3)  # the other threads arrive while this fill runs
        return {"value": 7}

    def work(i: int) -> None:
        results.append(cache.get_or_set("hot", factory, ttl=60))

    assert run_threads(work) == []
    assert len(calls) == 1
    assert results == [{"value": 7}] * THREADS


def test_factory_error_reaches_every_waiting_thread(services: SyncServices) -> None:
    cache = services.cache("flight-error")
    calls: list[int] = []

    def factory() -> Any:
        calls.append(1)
        time.sleep(0.3)
        raise LookupError("source down")

    def work(i: int) -> None:
        cache.get_or_set("hot", factory)

    errors = run_threads(work)
    assert len(errors) == THREADS and all(isinstance(e, LookupError) for e in errors)
    assert len(calls) < THREADS  # waiters shared a fill instead of each calling the factory
    assert cache.has("hot") is False


def test_forked_child_uses_connections_of_its_own(services: SyncServices) -> None:
    cache = services.cache("fork")  # handed out before the fork, used on both sides
    queue = services.queue("fork")
    cache.set("parent", "before fork")
    parent_pid = os.getpid()
    parent_state = services._state
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any test teardown
        code = 1
        try:
            report: dict[str, Any] = {"inherited": cache.get("parent")}
            for k in range(200):  # interleaves with the parent's own traffic below
                cache.set(f"child:{k}", k)
                assert cache.get(f"child:{k}") == k
            report["job"] = queue.enqueue("from_child", {"pid": os.getpid()}).id
            report["fresh_state"] = services._state is not parent_state
            report["own_pid"] = services._state is not None and services._state.pid != parent_pid
            services.close()
            code = 0
        except BaseException as exc:
            report = {"error": repr(exc)}
        os.write(write_fd, json.dumps(report).encode())
        os._exit(code)
    os.close(write_fd)
    for k in range(200):
        cache.set(f"parent:{k}", k)
        assert cache.get(f"parent:{k}") == k
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_fd) as reader:
        report = json.loads(reader.read())
    assert os.WEXITSTATUS(status) == 0, report
    assert report["inherited"] == "before fork"
    assert report["fresh_state"] is True and report["own_pid"] is True
    job = queue.get_job(report["job"])
    assert job is not None and job.payload == {"pid": pid}
    assert cache.get("child:199") == 199
    assert services._state is parent_state  # the parent kept its own connections
    for k in range(50):  # and they still deliver the right replies after the child left
        assert cache.get(f"parent:{k}") == k
