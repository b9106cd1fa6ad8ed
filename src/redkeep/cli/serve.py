"""``redkeep serve``: the HTTP service (FastAPI on uvicorn), with a worker inside by default.

Without ``--worker`` the service runs the example handlers of :mod:`redkeep.examples` on the
``examples`` queue (memory or Redis alike), so that the README's first job completes at once;
a queue of their own keeps them away from real jobs. ``--worker MODULE:ATTRIBUTE`` runs your
handlers instead (on ``default`` unless ``--queue``), ``--no-worker`` none.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer

from redkeep.cli.exits import ExitCode
from redkeep.cli.worker import (
    HandlerSpecError,
    _check_exposure,
    _fail,
    _run_until_stopped,
    _settings,
    load_handlers,
)
from redkeep.config import Settings

__all__ = ["EXAMPLES_QUEUE", "EXAMPLE_HANDLERS", "register", "serve"]

log = logging.getLogger("redkeep.cli")

EXAMPLE_HANDLERS = "redkeep.examples:handlers"
EXAMPLES_QUEUE = "examples"


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    worker: Annotated[
        str | None,
        typer.Option(
            help="Run a worker for MODULE:ATTRIBUTE handlers inside the service. Default: the "
            f"example handlers ({EXAMPLE_HANDLERS}) on the {EXAMPLES_QUEUE!r} queue.",
        ),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            help=f"Queue the worker serves (repeatable; default 'default', {EXAMPLES_QUEUE!r} "
            "for the example handlers).",
        ),
    ] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run no worker.")] = False,
) -> None:
    """Serve the HTTP API, /health and /metrics."""
    settings = _settings()
    _check_exposure(settings, host, "redkeep serve", "the service")
    handlers = None
    if not no_worker:
        try:
            handlers = load_handlers(worker or EXAMPLE_HANDLERS)
        except HandlerSpecError as exc:
            raise _fail(str(exc), ExitCode.USAGE) from None
        if worker is None and not queue:
            queue = [EXAMPLES_QUEUE]

    started = _run_until_stopped(_serve(settings, host, port, handlers, queue), True)
    if not started:
        raise typer.Exit(ExitCode.ERROR)


async def _serve(
    settings: Settings,
    host: str,
    port: int,
    handlers: Mapping[str, Callable[..., Any]] | None,
    queues: list[str] | None,
) -> bool:
    """Start the services (strict startup errors surface here, before listening), then serve
    until SIGTERM / SIGINT; True when the server started."""
    import uvicorn

    from redkeep.services import create_services
    from redkeep.web.app import create_app
    from redkeep.web.server import AnnouncingServer

    async with create_services(settings) as services:
        app = create_app(services, worker_handlers=handlers, worker_queues=queues, bind_host=host)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=max(1, int(settings.queue_grace_period) + 1),
        )
        detail = f"backend {services.backend}"
        if handlers:
            detail += (
                f", worker for {','.join(sorted(handlers))} on queue(s) "
                f"{','.join(queues or ['default'])}"
            )
        else:
            detail += ", no worker"
        server = AnnouncingServer(config, f"serving on http://{host}:{port} ({detail})")
        # uvicorn re-raises the SIGTERM/SIGINT it handled once it has shut down; a no-op
        # handler lets the services close and the process exit 0 instead of dying by signal.
        previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            await server.serve()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return bool(server.started)


def _ignore(signum: int, frame: object) -> None:
    """Signal handler that does nothing (uvicorn already handled the signal)."""


def register(app: typer.Typer) -> None:
    """Add ``redkeep serve`` to the CLI."""
    app.command("serve")(serve)
