"""``redkeep worker module:handlers``: run a worker for the handlers of a user module."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from redkeep.cli._loop import freeze_startup
from redkeep.cli._loop import run as run_loop
from redkeep.cli.exits import ExitCode
from redkeep.config import Settings
from redkeep.errors import RedkeepError, scrub

if TYPE_CHECKING:
    from redkeep.services import Services

__all__ = ["load_handlers", "register", "worker"]

log = logging.getLogger("redkeep.cli")

T = TypeVar("T")


class HandlerSpecError(ValueError):
    """``module:attribute`` does not name a Mapping of handler names to callables."""


def load_handlers(spec: str) -> Mapping[str, Callable[..., Any]]:
    """Import ``module:attribute`` and check it is a Mapping[str, callable]."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise HandlerSpecError(
            f"expected MODULE:ATTRIBUTE (e.g. myapp.jobs:handlers), got {spec!r}"
        )
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the current directory import
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerSpecError(f"cannot import module {module_name!r}: {exc}") from None
    try:
        handlers = getattr(module, attr)
    except AttributeError:
        raise HandlerSpecError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(handlers, Mapping):
        raise HandlerSpecError(
            f"{spec} must be a mapping of handler names to callables, got {type(handlers).__name__}"
        )
    for name, fn in handlers.items():
        if not isinstance(name, str) or not callable(fn):
            raise HandlerSpecError(f"{spec}: entry {name!r} is not a str name with a callable")
    if not handlers:
        raise HandlerSpecError(f"{spec} is empty: no handlers to run")
    return handlers


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {scrub(message)}", err=True)
    return typer.Exit(code)


def _configure_logging(settings: Settings) -> None:
    try:
        from redkeep.logs import configure_logging
    except ImportError:  # pragma: no cover - the logs module ships with redkeep
        logging.basicConfig(level=settings.log_level)
        return
    configure_logging(settings)


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment (exit 2 when invalid), with logging configured."""
    try:
        settings = Settings(**overrides)
    except RedkeepError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    _configure_logging(settings)
    return settings


def _check_exposure(
    settings: Settings, host: str, needs: str, exposes: str, *, uvicorn: bool = False
) -> None:
    """Exit 2 when the server extra (with ``uvicorn``: uvicorn too) that ``needs`` is missing,
    or when binding ``host`` would expose ``exposes`` without a good enough API token."""
    try:
        if uvicorn:
            import uvicorn as _uvicorn  # noqa: F401

        from redkeep.web.app import api_token
        from redkeep.web.security import exposure_problem
    except ImportError as exc:
        raise _fail(
            f"{needs} needs the server extra (pip install 'redkeep[server]'): {exc}",
            ExitCode.USAGE,
        ) from None
    problem = exposure_problem(host, api_token(settings), exposes)
    if problem is not None:
        raise _fail(problem, ExitCode.USAGE)


def _run_until_stopped(main: Coroutine[Any, Any, T], interrupted: T) -> T:
    """Run ``main`` (see :func:`redkeep.cli._loop.run`): a redkeep error exits 1, Ctrl-C
    returns ``interrupted``."""
    try:
        return run_loop(main)
    except RedkeepError as exc:
        raise _fail(f"{type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:
        return interrupted


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket for the probe server, bound here so that a taken port is a clear
    error before the worker starts (uvicorn would exit the process from inside its task)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise _fail(
            f"cannot listen on {host}:{port} for --http-port: {exc.strerror}", ExitCode.USAGE
        ) from None
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def _probe_server(services: Services, sock: socket.socket | None) -> AsyncIterator[None]:
    """Serve /health/live, /health/ready and /metrics on ``sock`` while the body runs."""
    if sock is None:
        yield
        return
    import uvicorn

    from redkeep.web.app import create_probe_app
    from redkeep.web.server import AnnouncingServer

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        create_probe_app(services, bind_host=host),
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    server = AnnouncingServer(
        config, f"worker probes and metrics on http://{host}:{port}", handle_signals=False
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name="redkeep-worker-http")
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()


async def _run(
    settings: Settings,
    handlers: Mapping[str, Callable[..., Any]],
    queues: list[str],
    concurrency: int | None,
    http: socket.socket | None = None,
) -> int:
    """Run the worker until it stops; the number of handler threads still running then."""
    from redkeep.services import create_services

    async with create_services(settings) as services, _probe_server(services, http):
        options: dict[str, Any] = {}
        if concurrency is not None:
            options["concurrency"] = concurrency
        w = services.worker(handlers, queues=queues, **options)
        freeze_startup()
        log.info(
            "worker started: queues=%s handlers=%s backend=%s executor=%s",
            ",".join(queues),
            ",".join(sorted(handlers)),
            services.backend,
            settings.queue_executor,
        )
        await w.run()
        log.info("worker stopped")
        return w.stuck_threads


def worker(
    handlers: Annotated[
        str, typer.Argument(help="Handlers as MODULE:ATTRIBUTE, a Mapping[str, callable].")
    ],
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Queue to work on (repeatable).")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs run at once (default REDKEEP_QUEUE_CONCURRENCY)."),
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(
            "--http-port",
            min=0,
            max=65535,
            envvar="REDKEEP_WORKER_HTTP_PORT",
            help="Serve /health/live, /health/ready and /metrics on this port "
            "(needs redkeep[server]; /metrics needs REDKEEP_API_TOKEN when set).",
        ),
    ] = None,
    http_host: Annotated[
        str,
        typer.Option(
            "--http-host",
            envvar="REDKEEP_WORKER_HTTP_HOST",
            help="Address for --http-port; a non-loopback one needs REDKEEP_API_TOKEN "
            "(16 characters or more), as for `redkeep serve`.",
        ),
    ] = "127.0.0.1",
    executor: Annotated[
        str | None,
        typer.Option(
            help="Where sync handlers run: thread or process (killable on timeout; handlers "
            "importable by name). Default REDKEEP_QUEUE_EXECUTOR.",
        ),
    ] = None,
) -> None:
    """Run a worker for the handlers in a user module until SIGTERM / SIGINT."""
    if executor not in (None, "thread", "process"):
        raise _fail(f"--executor must be 'thread' or 'process', got {executor!r}", 2)
    settings = _settings() if executor is None else _settings(queue_executor=executor)
    if settings.effective_backend == "memory":
        raise _fail(
            "`redkeep worker` needs a shared backend (set REDKEEP_REDIS_URL or Upstash "
            "credentials): in-memory queues live inside one process. With memory backends use "
            "`redkeep serve --worker MODULE:ATTRIBUTE`, which runs the worker in the service.",
            ExitCode.USAGE,
        )
    try:
        loaded = load_handlers(handlers)
    except HandlerSpecError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    http = None
    if http_port is not None:
        _check_exposure(settings, http_host, "--http-port", "the worker's probes", uvicorn=True)
        http = _bind(http_host, http_port)
    stuck = _run_until_stopped(_run(settings, loaded, queue or ["default"], concurrency, http), 0)
    if stuck:
        # The interpreter would wait for those threads forever; their jobs already have an
        # outcome (failed, or released for another worker), so exit without them.
        log.warning("exiting with %d handler threads still running", stuck)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def register(app: typer.Typer) -> None:
    """Add ``redkeep worker`` to the CLI."""
    app.command("worker")(worker)
