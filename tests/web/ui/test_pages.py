"""What the dashboard's pages show and what its actions do, against the shared Redis (HTTP
level; the browser tests drive the same pages in Chromium)."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.queue.conftest import running, wait_status

from redkeep.queue.job import JobStatus
from redkeep.queue.limits import GroupLimit, RateLimit
from redkeep.queue.redis import RedisJobQueue
from redkeep.web.ui import data
from redkeep.web.ui.limits import limits_text


def _rows(page: str, attribute: str) -> list[str]:
    return re.findall(rf'<tr {attribute}="([^"]+)"', page)


def _count(page: str, queue: str, status: str) -> str:
    row = page.split(f'<tr data-queue="{queue}">', 1)[1].split("</tr>", 1)[0]
    cell = row.split(f'data-status="{status}">', 1)[1].split("</td>", 1)[0]
    return re.sub(r"<[^>]+>", "", cell).strip()


async def test_overview_lists_every_queue_with_its_counts(ui_app: Any, prefix: str) -> None:
    ui = await ui_app()
    await ui.login()
    # Written by another process: this service never opened these queues.
    other = RedisJobQueue(ui.services.client, "billing", key_prefix=prefix)  # type: ignore[arg-type]
    for _ in range(3):
        await other.enqueue("charge")
    await other.enqueue("charge", delay=60)
    await ui.services.queue("emails").enqueue("send")
    page = (await ui.http.get("/ui/")).text
    assert _rows(page, "data-queue") == ["billing", "emails"]
    assert _count(page, "billing", "waiting") == "3"
    assert _count(page, "billing", "delayed") == "1"
    assert _count(page, "billing", "failed") == "0"
    assert _count(page, "emails", "waiting") == "1"
    fragment = (await ui.http.get("/ui/", headers={"X-Redkeep-Fragment": "queues"})).text
    assert not fragment.lstrip().startswith("<!doctype") and "<table" in fragment
    assert _count(fragment, "billing", "waiting") == "3"
    # an unknown block name gets the whole page, not an arbitrary block
    full = (await ui.http.get("/ui/", headers={"X-Redkeep-Fragment": "content"})).text
    assert full.startswith("<!doctype html>")


async def test_overview_shows_caches_with_hit_ratio_and_breaker(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    cache = ui.services.cache("sessions")
    await cache.set("a", 1)
    for key in ("a", "a", "a", "missing"):
        await cache.get(key)
    page = (await ui.http.get("/ui/")).text
    row = page.split('<tr data-cache="sessions">', 1)[1].split("</tr>", 1)[0]
    assert "75.0%" in row and 'value="0.750"' in row
    assert 'class="badge b-closed">closed<' in page


async def test_queue_page_pages_through_a_status(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("bulk")
    jobs = [await q.enqueue("n", i) for i in range(30)]
    first = (await ui.http.get("/ui/queues/bulk?limit=12")).text
    assert _rows(first, "data-job") == [j.id for j in jobs[:12]]
    assert "1\u201312 of 30" in first and 'offset=12&amp;limit=12" rel="next"' in first
    last = (await ui.http.get("/ui/queues/bulk?limit=12&offset=24")).text
    assert _rows(last, "data-job") == [j.id for j in jobs[24:]]
    assert 'rel="next"' not in last and 'offset=12&amp;limit=12" rel="prev"' in last


async def test_queue_page_filters_by_handler_name_and_finds_a_job_by_id(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("mixed")
    jobs = [await q.enqueue("even" if i % 2 == 0 else "odd", i) for i in range(10)]
    page = (await ui.http.get("/ui/queues/mixed?name=odd&limit=3")).text
    assert _rows(page, "data-job") == [jobs[i].id for i in (1, 3, 5)]
    assert 'name=odd&amp;offset=6&amp;limit=3" rel="next"' in page
    rest = (await ui.http.get("/ui/queues/mixed?name=odd&limit=3&offset=6")).text
    assert _rows(rest, "data-job") == [jobs[i].id for i in (7, 9)]
    r = await ui.http.get(f"/ui/queues/mixed?job={jobs[4].id}")
    assert r.status_code == 303 and r.headers["location"] == f"/ui/queues/mixed/jobs/{jobs[4].id}"
    missing = await ui.http.get("/ui/queues/mixed?job=no-such-job")
    assert missing.status_code == 200 and "No job with id “no-such-job”" in missing.text


async def test_a_name_search_looks_through_a_bounded_number_of_jobs(
    ui_app: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(data, "NAME_SCAN_LIMIT", 8)
    ui = await ui_app()
    q = ui.services.queue("scan")
    for i in range(20):
        await q.enqueue("rare" if i in (3, 15) else "common", i)
    page = await data.job_page(ui.services, "scan", JobStatus.WAITING, 0, 5, "rare")
    assert [j.payload for j in page.jobs] == [3]
    assert page.next_offset == 8 and page.scanned == 8
    assert page.notes == ["looked through 8 waiting jobs; the search goes on from job 9"]
    page = await data.job_page(ui.services, "scan", JobStatus.WAITING, 8, 5, "rare")
    assert [j.payload for j in page.jobs] == [15] and page.next_offset == 16
    page = await data.job_page(ui.services, "scan", JobStatus.WAITING, 16, 5, "rare")
    assert page.jobs == [] and page.next_offset is None


async def test_job_page_shows_everything_escaped(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("xss")
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"

    def fail(job: Any) -> None:
        raise ValueError(evil)

    job = await q.enqueue(evil[:40], {"html": evil}, max_attempts=1)
    async with running(q, {evil[:40]: fail}):
        await wait_status(q, job.id, "failed")
    for path in (f"/ui/queues/xss/jobs/{job.id}", "/ui/queues/xss?status=failed"):
        page = (await ui.http.get(path)).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert html.escape("<script>alert(1)</script>", quote=False) in page
    detail = (await ui.http.get(f"/ui/queues/xss/jobs/{job.id}")).text
    assert "ValueError" in detail and "Traceback (most recent call last)" in detail
    assert 'data-action="/ui/queues/xss/jobs/' + job.id + '/retry"' in detail


async def test_job_actions_retry_cancel_delete(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("acts")
    flaky = {"fail": True}

    def work(job: Any) -> str:
        if flaky["fail"]:
            raise RuntimeError("not yet")
        return "ok"

    failed = await q.enqueue("work", max_attempts=1)
    async with running(q, {"work": work}):
        await wait_status(q, failed.id, "failed")
        flaky["fail"] = False
        r = await ui.act(f"/ui/queues/acts/jobs/{failed.id}/retry")
        assert r.status_code == 200 and r.json()["redirect"] is None
        done = await wait_status(q, failed.id, "completed")
        assert done.result == "ok"
    r = await ui.act(f"/ui/queues/acts/jobs/{failed.id}/retry")
    assert (
        r.status_code == 409 and "only failed jobs can be retried" in r.json()["error"]["message"]
    )
    later = await q.enqueue("work", delay=60)
    assert (await ui.act(f"/ui/queues/acts/jobs/{later.id}/cancel")).status_code == 200
    assert (await q.get_job(later.id)).status == "cancelled"  # type: ignore[union-attr]
    assert (await ui.act(f"/ui/queues/acts/jobs/{later.id}/cancel")).status_code == 409
    r = await ui.act(f"/ui/queues/acts/jobs/{later.id}/delete")
    assert r.json() == {
        "message": f"job {later.id} deleted",
        "redirect": "/ui/queues/acts?status=cancelled",
    }
    assert await q.get_job(later.id) is None
    assert (await ui.act(f"/ui/queues/acts/jobs/{later.id}/delete")).status_code == 404
    assert (await ui.act(f"/ui/queues/acts/jobs/{later.id}/explode")).status_code == 400


async def test_retry_all_failed_and_purge(ui_app: Any, monkeypatch: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("bulkops")
    jobs = [await q.enqueue("boom", i, max_attempts=1) for i in range(5)]
    async with running(q, {"boom": lambda job: 1 / 0}):
        for job in jobs:
            await wait_status(q, job.id, "failed")
    monkeypatch.setattr(data, "RETRY_ALL_LIMIT", 3)
    r = await ui.act("/ui/queues/bulkops/retry-failed")
    assert r.json()["message"] == "3 failed jobs sent back to waiting; more remain: retry again"
    r = await ui.act("/ui/queues/bulkops/retry-failed")
    assert r.json()["message"] == "2 failed jobs sent back to waiting"
    assert (await q.counts())["waiting"] == 5
    await ui.act("/ui/queues/bulkops/retry-failed")
    async with running(q, {"boom": lambda job: "fine"}):
        for job in jobs:
            await wait_status(q, job.id, "completed")
    r = await ui.act("/ui/queues/bulkops/purge", {"status": "completed"})
    assert r.json()["message"] == "5 completed jobs deleted"
    assert (await q.counts())["completed"] == 0
    r = await ui.act("/ui/queues/bulkops/purge", {"status": "waiting"})
    assert r.status_code == 422


async def test_unknown_jobs_and_bad_names_get_an_error_page(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    r = await ui.http.get("/ui/queues/q/jobs/nope")
    assert r.status_code == 404 and "no job &#39;nope&#39; in queue &#39;q&#39;" in r.text
    assert r.headers["content-type"].startswith("text/html")
    r = await ui.http.get("/ui/queues/-bad/jobs/x")
    assert r.status_code == 400 and "not valid" in r.text
    r = await ui.http.get("/ui/queues/q?status=lost")
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    r = await ui.http.get("/ui/queues/q/jobs/nope", headers={"X-Redkeep-Fragment": "job"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "job_not_found"


async def test_while_redis_is_down_the_overview_still_shows_caches_and_the_problem(
    ui_app: Any, redis_server_factory: Any, prefix: str
) -> None:
    redis = redis_server_factory()
    ui = await ui_app(
        redis_url=redis.url,
        command_timeout=0.5,
        retry_attempts=0,
        breaker_failure_threshold=1,
    )
    await ui.login()
    await ui.services.queue("jobs").enqueue("x")
    cache = ui.services.cache("sessions")
    await cache.set("k", 1)
    redis.stop()
    assert await cache.get("k") in (1, None)  # from the fallback: no error reaches the caller
    r = await ui.http.get("/ui/")
    assert r.status_code == 200
    assert 'role="alert">Part of this page could not be read' in r.text
    assert '<tr data-cache="sessions">' in r.text and "b-open" in r.text


async def test_pause_and_resume_a_queue(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("pausing")
    await q.enqueue("x")
    assert "Pause queue" in (await ui.http.get("/ui/queues/pausing")).text
    r = await ui.act("/ui/queues/pausing/pause")
    assert r.json()["message"] == "queue pausing paused" and await q.is_paused()
    assert "Resume queue" in (await ui.http.get("/ui/queues/pausing")).text
    assert 'class="badge s-paused">paused<' in (await ui.http.get("/ui/")).text
    r = await ui.act("/ui/queues/pausing/resume")
    assert r.json()["message"] == "queue pausing resumed" and not await q.is_paused()


async def test_the_overview_charts_completed_and_failed_jobs_of_the_last_15_minutes(
    ui_app: Any,
) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("charted")
    await ui.services.queue("idle").enqueue("x")

    def work(job: Any) -> str:
        if job.payload == "bad":
            raise RuntimeError("no")
        return "ok"

    jobs = [await q.enqueue("work", p, max_attempts=1) for p in ("a", "b", "c", "bad")]
    async with running(q, {"work": work}):
        for job in jobs:
            await wait_status(q, job.id, "failed" if job.payload == "bad" else "completed")
    page = (await ui.http.get("/ui/")).text
    assert "Last 15 minutes" in page and ">State<" in page and "running" in page
    row = page.split('<tr data-queue="charted">', 1)[1].split("</tr>", 1)[0]
    chart = row.split('<svg class="chart"', 1)[1].split("</svg>", 1)[0]
    label = "charted: Last 15 minutes: 3 completed (0.0033/s), 1 failed (0.0011/s)"
    assert f'role="img" aria-label="{label}"' in chart and f"<title>{label}</title>" in chart
    pattern = r'<g class="bar" data-minute="(\d+)" data-completed="(\d+)" data-failed="(\d+)">'
    bars = re.findall(pattern, chart)
    # the minutes with finished jobs: the current one (the last, 14), maybe the one before too
    assert [m for m, _, _ in bars] in (["14"], ["13", "14"], ["13"])
    assert sum(int(c) for _, c, _ in bars) == 3 and sum(int(f) for _, _, f in bars) == 1
    assert "3 done" in row and "1 failed" in row
    idle = page.split('<tr data-queue="idle">', 1)[1].split("</tr>", 1)[0]
    assert 'aria-label="idle: Last 15 minutes: 0 completed (0/s), 0 failed (0/s)"' in idle
    # the live region carries the chart too
    fragment = (await ui.http.get("/ui/", headers={"X-Redkeep-Fragment": "queues"})).text
    assert f'aria-label="{label}"' in fragment


async def test_the_overview_has_room_for_limits(ui_app: Any, monkeypatch: Any) -> None:
    """Rate and group limits come with another issue; given them, the overview shows them."""
    ui = await ui_app()
    await ui.login()
    await ui.services.queue("limited").enqueue("x")
    rows_of = data.queue_rows

    async def with_limits(services: Any) -> Any:
        rows, total, problem = await rows_of(services)
        for row in rows:
            row.paused, row.limits = True, "10 jobs/s"
        return rows, total, problem

    monkeypatch.setattr(data, "queue_rows", with_limits)
    page = (await ui.http.get("/ui/")).text
    assert 'class="badge s-paused">paused<' in page and "10 jobs/s" in page


def test_limits_read_as_words() -> None:
    assert limits_text(None, None) is None
    assert limits_text(RateLimit(50, 1.0), None) == "50 jobs/s"
    assert limits_text(RateLimit(100, 900.0), GroupLimit(2, RateLimit(10, 60.0))) == (
        "100 jobs / 15 min; per group: 2 running, 10 jobs / 1 min"
    )
    assert limits_text(None, GroupLimit(3, None)) == "per group: 3 running"
    assert limits_text(None, GroupLimit(None, RateLimit(5, 0.5))) == "per group: 5 jobs / 0.5 s"


async def test_the_overview_and_queue_page_show_the_rate_and_group_limits(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("throttled")
    await q.enqueue("x")
    await q.set_rate_limit(50, 1)
    await q.set_group_limit(concurrency=2)
    page = (await ui.http.get("/ui/")).text
    row = page.split('<tr data-queue="throttled">', 1)[1].split("</tr>", 1)[0]
    assert '<td data-label="limits">50 jobs/s; per group: 2 running</td>' in row
    queue_page = (await ui.http.get("/ui/queues/throttled")).text
    assert "Limits: 50 jobs/s; per group: 2 running</span>" in queue_page
    await q.set_rate_limit(None)
    await q.set_group_limit()
    row = (await ui.http.get("/ui/")).text.split('<tr data-queue="throttled">', 1)[1]
    assert '<td data-label="limits"></td>' in row.split("</tr>", 1)[0]
