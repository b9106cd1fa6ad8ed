"""``redkeep serve``: the HTTP service (Starlette on uvicorn), optionally with a worker inside."""

from __future__ import annotations

import ipaddress
import logging
import signal
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer

from redkeep.cli._loop import run as run_loop
from redkeep.cli.worker import HandlerSpecError, _configure_logging, _fail, load_handlers
from redkeep.config import Settings
from redkeep.errors import RedkeepError

__all__ = ["EXAMPLE_HANDLERS", "is_loopback", "register", "serve"]

log = logging.getLogger("redkeep.cli")

EXAMPLE_HANDLERS = "redkeep.examples:handlers"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    worker: Annotated[
        str | None,
        typer.Option(
            help="Run a worker for MODULE:ATTRIBUTE handlers inside the service. Default: the "
            f"example handlers ({EXAMPLE_HANDLERS}) on memory backends, none on Redis.",
        ),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Queue the worker serves (repeatable)."),
    ] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run no worker.")] = False,
) -> None:
    """Serve the HTTP API, /health and /metrics."""
    try:
        settings = Settings()
    except RedkeepError as exc:
        raise _fail(str(exc), 2) from None
    _configure_logging(settings)
    try:
        from redkeep.web.app import api_token
    except ImportError as exc:
        raise _fail(
            f"redkeep serve needs the server extra (pip install 'redkeep[server]'): {exc}", 2
        ) from None

    if not is_loopback(host) and api_token(settings) is None:
        raise _fail(
            f"refusing to listen on non-loopback address {host!r} without an API token: "
            "set REDKEEP_API_TOKEN (or use --host 127.0.0.1)",
            2,
        )
    spec = worker
    if spec is None and not no_worker and settings.effective_backend == "memory":
        spec = EXAMPLE_HANDLERS
    handlers = None
    if spec is not None and not no_worker:
        try:
            handlers = load_handlers(spec)
        except HandlerSpecError as exc:
            raise _fail(str(exc), 2) from None

    try:
        started = run_loop(_serve(settings, host, port, handlers, queue))
    except RedkeepError as exc:
        raise _fail(f"{type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:
        return
    if not started:
        raise typer.Exit(1)


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
        app = create_app(services, worker_handlers=handlers, worker_queues=queues)
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
            detail += f", worker for {','.join(sorted(handlers))}"
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
