"""The dashboard in a real headless Chromium (Playwright), against a real uvicorn with a worker
inside, on the shared Redis: log in, live counts, a failed job retried from the UI, the
confirmation dialog, escaping, forged POSTs, logout, hidden tabs, accessible names and the
keyboard, and screenshots of every page at 1280 and 390 px.

Screenshots go to a temporary folder; with ``REDKEEP_SCREENSHOTS=1`` (``make screenshots``)
they replace the ones in docs/img shown by docs/dashboard.md.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from queue import Queue
from typing import Any

import httpx
import pytest
from tests.support.browser import launch_chromium
from tests.support.redis_server import free_port
from tests.web.server import TOKEN, ServerThread, redis_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img"
FRAGILE = {"broken": True}
STEPS: Queue[threading.Event] = Queue()
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const r = e.getBoundingClientRect();
  const label = e.labels && e.labels[0] && e.labels[0].innerText;
  const name = e.innerText || e.value || e.getAttribute("aria-label") || label || "";
  return {tag: e.tagName, text: name.trim(), visible: r.width > 0 && r.height > 0};
}"""
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def ok(job: Any) -> Any:
    return {"echo": job.payload}


async def steps(job: Any) -> str:
    """Reports 30%, then 70% once the test lets it go on, then finishes when released again."""
    from redkeep.queue.progress import progress

    for value in (30, 70):
        await progress(value)
        await asyncio.to_thread(STEPS.get(timeout=10).wait, 10)
    return "stepped"


def fragile(job: Any) -> str:
    if FRAGILE["broken"]:
        reason = (job.payload or {}).get("reason", f"upstream refused: {XSS}")
        raise RuntimeError(reason)
    return "repaired"


class Dashboard:
    """The service under test and an API client for it (bearer token)."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.url = server.url
        self.api = httpx.Client(base_url=server.url, headers=AUTH, timeout=10)

    def enqueue(self, queue: str, name: str, payload: Any = None, **opts: Any) -> dict[str, Any]:
        r = self.api.post(
            f"/v1/queues/{queue}/jobs", json={"name": name, "payload": payload, **opts}
        )
        assert r.status_code == 201, r.text
        job: dict[str, Any] = r.json()
        return job

    def schedule(self, queue: str, schedule_id: str, **definition: Any) -> None:
        r = self.api.put(f"/v1/queues/{queue}/schedules/{schedule_id}", json=definition)
        assert r.status_code in (200, 201), r.text

    def job(self, queue: str, job_id: str) -> httpx.Response:
        return self.api.get(f"/v1/queues/{queue}/jobs/{job_id}")

    def wait_status(self, queue: str, job_id: str, status: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while (job := self.job(queue, job_id).json())["status"] != status:
            assert time.monotonic() < deadline, f"job {job_id} is {job['status']}, not {status}"
            time.sleep(0.02)
        return job


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


@pytest.fixture
def dash(serve: Callable[..., ServerThread], redis_url: str, prefix: str) -> Iterator[Dashboard]:
    FRAGILE["broken"] = True
    while not STEPS.empty():
        STEPS.get_nowait()
    settings = redis_settings(redis_url, prefix, ui_refresh_interval=0.5)
    d = Dashboard(serve(settings, {"ok": ok, "fragile": fragile, "steps": steps}))
    yield d
    d.api.close()


@pytest.fixture
def new_page(browser: Any, dash: Dashboard) -> Iterator[Callable[..., Any]]:
    """``new_page(width=1280) -> Page`` in a fresh browser context (its own cookies)."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(
            base_url=dash.url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    return new_page()


def _at(path: str) -> re.Pattern[str]:
    """The URL of ``path`` on the dashboard, exactly (not inside a ?next= parameter)."""
    return re.compile(r"^http://127\.0\.0\.1:\d+" + re.escape(path) + "$")


def log_in(page: Any) -> None:
    page.goto("/ui/")
    page.fill("#token", TOKEN)
    page.click("button:has-text('Log in')")
    page.wait_for_url(_at("/ui/"))


def test_log_in_by_keyboard_and_watch_counts_change_without_a_reload(
    page: Any, dash: Dashboard
) -> None:
    from playwright.sync_api import expect

    page.goto("/ui/queues/incoming")
    assert "/ui/login?next=/ui/queues/incoming" in page.url
    for _ in range(10):  # from the top of the page to the token field
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "token":
            break
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_url(_at("/ui/queues/incoming"))
    page.goto("/ui/")
    page.evaluate("window.__sameDocument = true")
    for i in range(3):
        dash.enqueue("incoming", "ok", i)
    waiting = page.locator('tr[data-queue="incoming"] td[data-status="waiting"]')
    expect(waiting).to_have_text("3")
    dash.enqueue("incoming", "ok", delay=60)
    expect(page.locator('tr[data-queue="incoming"] td[data-status="delayed"]')).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True  # updated in place, never reloaded
    expect(page.locator("#live-state")).to_contain_text("updated")


def test_the_overview_charts_finished_jobs_and_updates_the_chart_live(
    page: Any, dash: Dashboard
) -> None:
    from playwright.sync_api import expect

    jobs = [dash.enqueue("default", "ok", i) for i in range(2)]
    jobs.append(dash.enqueue("default", "fragile", max_attempts=1))
    for job, status in zip(jobs, ("completed", "completed", "failed"), strict=True):
        dash.wait_status("default", job["id"], status)
    log_in(page)
    page.evaluate("window.__sameDocument = true")
    chart = page.locator('tr[data-queue="default"] svg.chart')
    label = "default: Last 15 minutes: {} completed ({}), 1 failed (0.0011/s)"
    expect(chart).to_have_attribute("aria-label", label.format(2, "0.0022/s"))
    expect(page.get_by_role("img", name=label.format(2, "0.0022/s"))).to_be_visible()
    assert chart.locator("g.bar").count() in (1, 2)  # this minute (and maybe the one before)
    done = dash.enqueue("default", "ok", 3)
    dash.wait_status("default", done["id"], "completed")
    expect(chart).to_have_attribute("aria-label", label.format(3, "0.0033/s"))
    assert page.evaluate("window.__sameDocument") is True


def test_open_a_failed_job_retry_it_and_watch_it_complete(page: Any, dash: Dashboard) -> None:
    from playwright.sync_api import expect

    job = dash.enqueue("default", "fragile", {"order": 7}, max_attempts=1)
    dash.wait_status("default", job["id"], "failed")
    log_in(page)
    page.click('tr[data-queue="default"] td[data-status="failed"] a')
    page.wait_for_url(_at("/ui/queues/default?status=failed"))
    page.click(f'tr[data-job="{job["id"]}"] a')
    expect(page.locator('[data-field="status"]')).to_have_text("failed")
    expect(page.locator('[data-field="error"]')).to_contain_text("RuntimeError")
    expect(page.locator('[data-field="traceback"]')).to_contain_text("in fragile")
    FRAGILE["broken"] = False
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#status")).to_have_text(f"job {job['id']} sent back to waiting")
    expect(page.locator('[data-field="status"]')).to_have_text("completed")
    expect(page.locator('[data-field="result"]')).to_have_text('"repaired"')
    assert dash.job("default", job["id"]).json()["result"] == "repaired"


def test_a_running_job_shows_its_progress_bar_and_timeline_live(page: Any, dash: Dashboard) -> None:
    from playwright.sync_api import expect

    gates = [threading.Event(), threading.Event()]
    for gate in gates:
        STEPS.put(gate)
    job = dash.enqueue("default", "steps")
    dash.wait_status("default", job["id"], "active")
    log_in(page)
    page.goto(f"/ui/queues/default/jobs/{job['id']}")
    page.evaluate("window.__sameDocument = true")
    bar = page.get_by_role("progressbar", name="Progress")
    expect(bar).to_have_attribute("value", "30.0")
    events = page.locator('[data-field="events"] li')
    expect(events).to_have_count(3)
    expect(events.nth(2)).to_contain_text("progress")
    expect(events.nth(2)).to_contain_text("30%")
    gates[0].set()
    expect(bar).to_have_attribute("value", "70.0")
    expect(events.nth(3)).to_contain_text("70%")
    gates[1].set()
    expect(page.locator('[data-field="status"]')).to_have_text("completed")
    expect(events.last).to_contain_text("completed")
    assert [e.get_attribute("data-event") for e in events.all()] == [
        "enqueued", "active", "progress", "progress", "completed"
    ]  # fmt: skip
    assert page.evaluate("window.__sameDocument") is True


def test_pause_and_resume_a_schedule_from_the_schedules_page(page: Any, dash: Dashboard) -> None:
    from playwright.sync_api import expect

    dash.schedule("default", "nightly", name="ok", cron="0 3 * * *", tz="Europe/Paris")
    log_in(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedules").click()
    page.wait_for_url(_at("/ui/schedules"))
    row = page.locator('tr[data-schedule="default/nightly"]')
    expect(row.locator('[data-field="state"]')).to_have_text("active")
    page.get_by_role("button", name="Pause schedule nightly").click()
    expect(page.locator("#status")).to_have_text("schedule nightly paused")
    expect(row.locator('[data-field="state"]')).to_have_text("paused")
    expect(row.locator('[data-field="next"]')).to_have_text("\u2013")
    schedule = dash.api.get("/v1/queues/default/schedules/nightly").json()
    assert schedule["paused"] is True
    page.get_by_role("button", name="Resume schedule nightly").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("schedule nightly resumed")
    expect(row.locator('[data-field="state"]')).to_have_text("active")
    expect(row.locator('[data-field="next"]')).to_contain_text(":00:00")
    assert dash.api.get("/v1/queues/default/schedules/nightly").json()["paused"] is False


def test_schedule_handlers_and_payloads_show_as_text(page: Any, dash: Dashboard) -> None:
    from playwright.sync_api import expect

    dash.schedule("xss", "evil", name=XSS[:60], payload={"html": XSS}, cron="0 3 * * *")
    log_in(page)
    page.goto("/ui/schedules")
    row = page.locator('tr[data-schedule="xss/evil"]')
    expect(row.locator("td").nth(1)).to_contain_text(XSS[:60])
    page.wait_for_timeout(600)  # a live refresh has happened meanwhile
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0


def test_purge_asks_first_and_cancelling_the_dialog_changes_nothing(
    page: Any, dash: Dashboard
) -> None:
    from playwright.sync_api import expect

    for i in range(3):
        job = dash.enqueue("default", "ok", i)
    dash.wait_status("default", job["id"], "completed")
    log_in(page)
    page.goto("/ui/queues/default?status=completed")
    page.get_by_label("Purge finished").select_option("completed")
    page.get_by_role("button", name="Purge").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete every completed job of default?")
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert dash.api.get("/v1/queues/default/counts").json()["counts"]["completed"] == 3
    page.get_by_role("button", name="Purge").click()
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.locator("#status")).to_have_text("3 completed jobs deleted")
    expect(page.locator('.tabs a[data-status="completed"] .count')).to_have_text("0")
    assert dash.api.get("/v1/queues/default/counts").json()["counts"]["completed"] == 0


def test_payloads_names_and_errors_show_as_text(page: Any, dash: Dashboard) -> None:
    from playwright.sync_api import expect

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    stored = dash.enqueue("xss", XSS[:60], {"html": XSS}, delay=60)
    failed = dash.enqueue("default", "fragile", {"html": XSS}, max_attempts=1)
    dash.wait_status("default", failed["id"], "failed")
    log_in(page)
    page.goto("/ui/queues/xss?status=delayed")
    expect(page.locator(f'tr[data-job="{stored["id"]}"] td').first).to_have_text(XSS[:60])
    page.goto(f"/ui/queues/xss/jobs/{stored['id']}")
    expect(page.locator('[data-field="payload"]')).to_contain_text(XSS.replace('"', '\\"'))
    page.goto(f"/ui/queues/default/jobs/{failed['id']}")
    expect(page.locator('[data-field="error"]')).to_have_text(
        f"RuntimeError: upstream refused: {XSS}"
    )
    page.wait_for_timeout(600)  # a live refresh of the job region has happened meanwhile
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.scripts.length") == 1  # only the dashboard's own script
    assert page.locator("main img").count() == 0
    assert dialogs == []


def test_forged_posts_change_nothing(
    page: Any, new_page: Callable[..., Any], dash: Dashboard
) -> None:
    job = dash.enqueue("victim", "ok", delay=60)
    target = f"{dash.url}/ui/queues/victim/jobs/{job['id']}/delete"
    log_in(page)
    # A script on the dashboard's own page that does not know the CSRF token.
    status = page.evaluate(
        """async (url) => (await fetch(url, {method: "POST", credentials: "same-origin",
               headers: {"Content-Type": "application/json"}, body: "{}"})).status""",
        target,
    )
    assert status == 403
    # A page of another origin, in the same browser (the session cookie is there): a form that
    # posts itself, and a no-cors fetch.
    attacker = _serve_once(
        f"""<!doctype html><form id="f" method="post" action="{target}">
        <input name="x" value="1"></form>
        <script>fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include",
          body: "{{}}"}}).finally(() => document.getElementById("f").submit());</script>"""
    )
    page.goto(attacker)
    page.wait_for_url(target)
    assert '"unsupported_media_type"' in page.content() or '"cross_origin"' in page.content()
    assert dash.job("victim", job["id"]).json()["status"] == "delayed"


def test_log_out(page: Any, dash: Dashboard) -> None:
    log_in(page)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(_at("/ui/login"))
    page.goto("/ui/workers")
    assert "/ui/login?next=/ui/workers" in page.url
    cookies = [c for c in page.context.cookies() if c["name"] == "redkeep_session"]
    assert cookies == []


def test_live_updates_stop_while_the_tab_is_hidden(page: Any, dash: Dashboard) -> None:
    """Headless Chromium keeps every tab visible, so the page is made to report itself hidden
    through the properties and the event that a real tab switch changes."""
    log_in(page)
    seen: list[float] = []

    def count(request: Any) -> None:
        if "x-redkeep-fragment" in request.headers:
            seen.append(time.monotonic())

    page.on("request", count)
    page.wait_for_timeout(1300)
    assert len(seen) >= 2, "no live updates while visible"

    def visibility(hidden: bool) -> None:
        page.evaluate(
            """(hidden) => {
                 Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
                 Object.defineProperty(document, "visibilityState", {configurable: true,
                   get: () => hidden ? "hidden" : "visible"});
                 document.dispatchEvent(new Event("visibilitychange"));
               }""",
            hidden,
        )

    visibility(True)
    page.wait_for_timeout(200)  # a refresh already in flight may finish
    seen.clear()
    page.wait_for_timeout(1500)  # three intervals
    assert seen == [], "live updates went on in a hidden tab"
    visibility(False)
    page.wait_for_timeout(300)
    assert seen, "live updates did not resume when the tab came back"


def test_every_control_has_a_name_and_the_keyboard_reaches_it(page: Any, dash: Dashboard) -> None:
    job = dash.enqueue("default", "fragile", max_attempts=1)
    dash.wait_status("default", job["id"], "failed")
    dash.schedule("default", "nightly", name="ok", cron="0 3 * * *")
    page.goto("/ui/login")
    pages = ["/ui/login"]
    _check_names(page, "/ui/login")
    log_in(page)
    for path in (
        "/ui/",
        "/ui/queues/default?status=failed",
        f"/ui/queues/default/jobs/{job['id']}",
        "/ui/workers",
        "/ui/schedules",
    ):
        page.goto(path)
        pages.append(path)
        _check_names(page, path)
        # Tab through the page: every stop is a visible control with a name.
        page.evaluate("document.activeElement && document.activeElement.blur()")
        for _ in range(40):
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUSED)
            if focused is None:
                break
            assert focused["text"], f"{path}: a focusable {focused['tag']} without a name"
            assert focused["visible"] or focused["tag"] == "A", (
                f"{path}: focus on a hidden {focused}"
            )
    assert len(pages) == 6


def _check_names(page: Any, path: str) -> None:
    """Every interactive node of Chromium's accessibility tree has a name."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    roles = {"button", "link", "textbox", "combobox", "checkbox", "searchbox", "menuitem"}
    unnamed = [
        n["role"]["value"]
        for n in nodes
        if not n.get("ignored")
        and n.get("role", {}).get("value") in roles
        and not (n.get("name") or {}).get("value", "").strip()
    ]
    assert unnamed == [], f"{path}: controls without an accessible name: {unnamed}"


def test_screenshots_of_every_page_at_1280_and_390_px(
    new_page: Callable[..., Any], dash: Dashboard, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    out = DOCS_IMG if os.environ.get("REDKEEP_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    failed = dash.enqueue(
        "default",
        "fragile",
        {"order": 1042, "amount": "19.99", "reason": "payment gateway timed out after 30 s"},
        max_attempts=1,
    )
    for i in range(4):
        dash.enqueue("default", "ok", {"n": i})
    for queue, n in (("emails", 12), ("reports", 3), ("thumbnails", 40)):
        for i in range(n):
            dash.enqueue(queue, "render" if queue == "thumbnails" else "send", {"n": i},
                         delay=3600 if i % 4 == 0 else None)  # fmt: skip
    dash.wait_status("default", failed["id"], "failed")
    deadline = time.monotonic() + 10
    while dash.api.get("/v1/workers").json()["workers"][0]["processed"] < 5:  # its next beat
        assert time.monotonic() < deadline
        time.sleep(0.1)
    dash.schedule("reports", "nightly-sales", name="send", payload={"report": "sales"},
                  cron="0 3 * * *", tz="Europe/Paris")  # fmt: skip
    dash.schedule("emails", "digest", name="send", every=3600)
    r = dash.api.put("/v1/queues/emails/rate-limit", json={"max_jobs": 10, "per_seconds": 1})
    assert r.status_code == 200, r.text
    r = dash.api.put("/v1/queues/thumbnails/group-limit", json={"concurrency": 2})
    assert r.status_code == 200, r.text
    dash.schedule("thumbnails", "cleanup", name="render", every=900)
    dash.api.post("/v1/queues/thumbnails/schedules/cleanup/pause")
    dash.api.put("/v1/caches/sessions/keys/user-1", json={"value": {"name": "Ada"}})
    for key in ("user-1", "user-1", "user-1", "user-2"):
        dash.api.get(f"/v1/caches/sessions/keys/{key}")
    shots = {
        "login": "/ui/login",
        "overview": "/ui/",
        "queue": "/ui/queues/default?status=failed",
        "job": f"/ui/queues/default/jobs/{failed['id']}",
        "workers": "/ui/workers",
        "schedules": "/ui/schedules",
    }
    for width in (1280, 390):
        page = new_page(width=width, height=800)
        for name, path in shots.items():
            if name == "overview":
                log_in(page)
            page.goto(path)
            expect(page.locator("main h1")).to_be_visible()
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{name} at {width} px is {overflow} px wide"
            page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
    for name in shots:
        for width in (1280, 390):
            assert (out / f"{name}-{width}.png").stat().st_size > 5000


def _serve_once(body: str) -> str:
    """Serve ``body`` as an HTML page on another loopback port (another origin) for this test;
    the server thread stops by itself after one page."""
    page = body.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)

    def once() -> None:
        server.handle_request()
        server.server_close()

    threading.Thread(target=once, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"
