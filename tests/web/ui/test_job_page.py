"""The job page's progress bar and event timeline (HTTP level, shared Redis; the browser test
watches them update live)."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

from tests.queue.conftest import running, wait_status, wait_until

from redkeep.queue.progress import progress
from redkeep.web.ui.timeline import MAX_TIMELINE, TimelineCache


def _events(page: str) -> list[str]:
    return re.findall(r'<li data-event="([a-z]+)">', page)


async def test_progress_bar_and_timeline_of_a_running_then_finished_job(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("progressing")
    release = asyncio.Event()

    async def work(job: Any) -> str:
        await progress(40)
        await release.wait()
        return "done"

    job = await q.enqueue("work")
    path = f"/ui/queues/progressing/jobs/{job.id}"
    async with running(q, {"work": work}):

        async def reported() -> bool:
            found = await q.get_job(job.id)
            return found is not None and found.progress == 40

        await wait_until(reported)
        page = (await ui.http.get(path)).text
        assert '<progress id="job-progress" max="100" value="40.0"' in page
        assert '<label for="job-progress">Progress</label>' in page
        assert _events(page) == ["enqueued", "active", "progress"]
        assert '<span class="muted">40%</span>' in page
        active = (await ui.http.get("/ui/queues/progressing?status=active")).text
        row = active.split(f'<tr data-job="{job.id}">', 1)[1].split("</tr>", 1)[0]
        assert f'<progress max="100" value="40.0" aria-label="progress of job {job.id}">' in row
        release.set()
        await wait_status(q, job.id, "completed")
    fragment = (await ui.http.get(path, headers={"X-Redkeep-Fragment": "job"})).text
    assert _events(fragment) == ["enqueued", "active", "progress", "completed"]
    assert 'value="40.0"' in fragment


async def test_a_json_progress_value_shows_as_escaped_text(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("jsonprogress")
    value = {"rows": 5000, "note": "<script>alert(1)</script>"}

    async def work(job: Any) -> None:
        await progress(value)

    job = await q.enqueue("work")
    async with running(q, {"work": work}):
        await wait_status(q, job.id, "completed")
    page = (await ui.http.get(f"/ui/queues/jsonprogress/jobs/{job.id}")).text
    assert "<script>alert" not in page
    shown = page.split('data-field="progress">', 1)[1].split("</code>", 1)[0]
    assert html.unescape(shown) == '{"rows":5000,"note":"<script>alert(1)</script>"}'
    assert "<progress" not in page


async def test_failed_attempts_and_a_manual_retry_read_in_the_timeline(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("retried")

    def boom(job: Any) -> None:
        raise RuntimeError("no")

    job = await q.enqueue("boom", max_attempts=1)
    async with running(q, {"boom": boom}):
        await wait_status(q, job.id, "failed")
    page = (await ui.http.get(f"/ui/queues/retried/jobs/{job.id}")).text
    assert _events(page) == ["enqueued", "active", "failed"]
    assert "for good" in page
    await q.retry(job.id)
    page = (await ui.http.get(f"/ui/queues/retried/jobs/{job.id}")).text
    assert _events(page) == ["enqueued", "active", "failed", "waiting"]
    assert "from failed" in page


async def test_a_job_without_events_says_so(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("quiet")
    await q.set_events(False)
    job = await q.enqueue("x")
    page = (await ui.http.get(f"/ui/queues/quiet/jobs/{job.id}")).text
    assert "No events of this job in the queue's event log" in page
    assert "<progress" not in page


async def test_the_timeline_is_read_again_only_when_the_job_changed(ui_app: Any) -> None:
    ui = await ui_app()
    q = ui.services.queue("cached")
    job = await q.enqueue("x", delay=60)
    scans: list[str] = []
    real = q.job_events

    async def counted(job_id: str, limit: int = 200) -> Any:
        scans.append(job_id)
        assert limit == MAX_TIMELINE
        return await real(job_id, limit)

    q.job_events = counted  # type: ignore[method-assign]  # counts calls, reads the real log
    cache = TimelineCache(size=1)
    first = await cache.rows(q, job)
    assert [r.event for r in first] == ["enqueued", "delayed"]
    again = await q.get_job(job.id)
    assert again is not None and await cache.rows(q, again) == first and len(scans) == 1
    await q.cancel(job.id)
    cancelled = await q.get_job(job.id)
    assert cancelled is not None
    assert [r.event for r in await cache.rows(q, cancelled)][-1] == "cancelled"
    assert len(scans) == 2
    other = await q.enqueue("y")
    await cache.rows(q, other)  # the cache holds one job: the first is dropped
    await cache.rows(q, cancelled)
    assert len(scans) == 4


async def test_the_job_page_shows_the_group_of_a_grouped_job(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("grouped")
    grouped = await q.enqueue("x", group="tenant-42")
    plain = await q.enqueue("x")
    page = (await ui.http.get(f"/ui/queues/grouped/jobs/{grouped.id}")).text
    assert '<dd data-field="group">tenant-42</dd>' in page
    assert (
        'data-field="group"' not in (await ui.http.get(f"/ui/queues/grouped/jobs/{plain.id}")).text
    )
