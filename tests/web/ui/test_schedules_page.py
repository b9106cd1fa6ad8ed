"""The dashboard's schedules page and its pause/resume actions (HTTP level, shared Redis; the
browser test drives them in Chromium)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

from redkeep.queue.redis import RedisJobQueue

XSS = "<script>window.__xss = 1</script>"


def _row(page: str, queue: str, schedule_id: str) -> str:
    return page.split(f'<tr data-schedule="{queue}/{schedule_id}">', 1)[1].split("</tr>", 1)[0]


async def test_schedules_of_every_queue_with_next_run_last_job_and_state(
    ui_app: Any, prefix: str
) -> None:
    ui = await ui_app()
    await ui.login()
    reports = ui.services.queue("reports")
    await reports.schedule("nightly", "build", {"kind": "daily"}, cron="0 3 * * *",
                           tz="Europe/Paris")  # fmt: skip
    # created by another process: this service never opened the queue
    other = RedisJobQueue(ui.services.client, "mail", key_prefix=prefix)  # type: ignore[arg-type]
    await other.schedule("digest", "send", every=7200)
    await other.schedule("ping", "send", every=45)
    await other.pause_schedule("ping")
    page = (await ui.http.get("/ui/schedules")).text
    assert re.findall(r'<tr data-schedule="([^"]+)">', page) == [
        "mail/digest", "mail/ping", "reports/nightly"
    ]  # fmt: skip
    nightly = _row(page, "reports", "nightly")
    assert "<code>cron 0 3 * * *</code>" in nightly and "Europe/Paris" in nightly
    found = await reports.get_schedule("nightly")
    assert found is not None and found.next_run_at is not None
    shown = datetime.fromtimestamp(found.next_run_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f">{shown}</time>" in nightly
    assert "active" in nightly and 'aria-label="Pause schedule nightly"' in nightly
    assert "none yet" in nightly and "{&#34;kind&#34;:&#34;daily&#34;}" in nightly
    assert "<code>every 2 h</code>" in _row(page, "mail", "digest")
    ping = _row(page, "mail", "ping")
    assert "<code>every 45 s</code>" in ping and 'class="badge s-paused">paused<' in ping
    assert 'aria-label="Resume schedule ping"' in ping
    one = (await ui.http.get("/ui/schedules?queue=mail")).text
    assert re.findall(r'<tr data-schedule="([^"]+)">', one) == ["mail/digest", "mail/ping"]
    assert '<a href="/ui/schedules?queue=mail">' in (await ui.http.get("/ui/queues/mail")).text
    overview = (await ui.http.get("/ui/")).text
    assert '<a href="/ui/schedules">Schedules</a>' in overview  # in the main navigation
    fragment = await ui.http.get("/ui/schedules", headers={"X-Redkeep-Fragment": "schedules"})
    assert not fragment.text.lstrip().startswith("<!doctype") and "mail/digest" in fragment.text


async def test_the_last_job_links_to_the_job_a_tick_enqueued(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("ticking")
    await q.schedule("soon", "tick", every=1, start_at=0)
    for _ in range(50):
        await q.fire_schedules("test-worker")
        found = await q.get_schedule("soon")
        if found is not None and found.last_job_id:
            break
    assert found is not None and found.last_job_id
    row = _row((await ui.http.get("/ui/schedules")).text, "ticking", "soon")
    assert f'href="/ui/queues/ticking/jobs/{found.last_job_id}"' in row


async def test_pause_and_resume_a_schedule(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("sched")
    await q.schedule("hourly", "work", cron="0 * * * *")
    r = await ui.act("/ui/queues/sched/schedules/hourly/pause")
    assert r.status_code == 200 and r.json()["message"] == "schedule hourly paused"
    found = await q.get_schedule("hourly")
    assert found is not None and found.paused and found.next_run_at is None
    r = await ui.act("/ui/queues/sched/schedules/hourly/resume")
    assert r.json()["message"] == "schedule hourly resumed"
    found = await q.get_schedule("hourly")
    assert found is not None and not found.paused and found.next_run_at is not None
    r = await ui.act("/ui/queues/sched/schedules/missing/pause")
    assert r.status_code == 404 and r.json()["error"]["type"] == "schedule_not_found"
    # without the CSRF token nothing changes
    r = await ui.act("/ui/queues/sched/schedules/hourly/pause", **{"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    found = await q.get_schedule("hourly")
    assert found is not None and not found.paused


async def test_handler_names_and_payloads_show_as_text(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    q = ui.services.queue("xss")
    await q.schedule("evil", XSS, {"html": XSS}, every=60)
    page = (await ui.http.get("/ui/schedules")).text
    assert "<script>window" not in page
    assert html.escape(XSS, quote=False) in page
    r = await ui.http.get("/ui/schedules", params={"queue": XSS})
    assert r.status_code == 400 and "<script>window" not in r.text


async def test_no_schedules_says_how_to_make_one(ui_app: Any) -> None:
    ui = await ui_app()
    await ui.login()
    await ui.services.queue("plain").enqueue("x")
    page = (await ui.http.get("/ui/schedules?queue=plain")).text
    assert "No schedules in plain" in page
