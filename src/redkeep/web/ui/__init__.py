"""The web dashboard at ``/ui``: queues, jobs, workers and caches, in a browser.

Server-rendered pages (Jinja2 templates in ``templates/``) with one small script and one
stylesheet (``static/``), shipped in the package: no build step, no Node, nothing fetched from
another host. Listed in :data:`redkeep.web.app.ROUTERS` like the API's groups of routes, but
its routes answer HTML and stay out of the OpenAPI document.

- :mod:`~redkeep.web.ui.session`: login with the API token, session cookies, CSRF tokens.
- :mod:`~redkeep.web.ui.guard`: the session gate of pages and actions, error pages.
- :mod:`~redkeep.web.ui.pages`: overview, queue, job, workers, login (GET).
- :mod:`~redkeep.web.ui.actions`: retry, cancel, delete, retry all failed, purge, logout (POST).
- :mod:`~redkeep.web.ui.data`: what the pages show, read without scanning job keys.
- :mod:`~redkeep.web.ui.render`: templates, security headers, static files.

The bearer-token middleware lets ``/ui`` through (a browser cannot send the header); the
dashboard checks its own session instead. ``REDKEEP_UI_ENABLED=false`` turns it off.
"""

from __future__ import annotations

from fastapi import APIRouter

from redkeep.web.errors import error_response

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
try:
    from redkeep.web.ui import actions, pages
except ImportError as exc:  # Jinja2 missing: the API still serves, /ui says what to install
    missing = f"the dashboard needs Jinja2 (pip install 'redkeep[server]'): {exc}"

    @router.api_route("/ui{rest:path}", methods=["GET", "POST"])
    async def unavailable() -> object:
        return error_response(404, "not_found", missing)
else:
    router.include_router(pages.router, prefix="/ui")
    router.include_router(actions.router, prefix="/ui")
