"""``redkeep worker module:handlers``: run a worker for the handlers of a user module."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer

from redkeep.cli._loop import freeze_startup
from redkeep.cli._loop import run as run_loop
from redkeep.config import Settings
from redkeep.errors import RedkeepError, scrub

__all__ = ["load_handlers", "register", "worker"]

log = logging.getLogger("redkeep.cli")


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


async def _run(
    settings: Settings,
    handlers: Mapping[str, Callable[..., Any]],
    queues: list[str],
    concurrency: int | None,
) -> None:
    from redkeep.services import create_services

    async with create_services(settings) as services:
        options: dict[str, Any] = {}
        if concurrency is not None:
            options["concurrency"] = concurrency
        w = services.worker(handlers, queues=queues, **options)
        freeze_startup()
        log.info(
            "worker started: queues=%s handlers=%s backend=%s",
            ",".join(queues),
            ",".join(sorted(handlers)),
            services.backend,
        )
        await w.run()
        log.info("worker stopped")


def worker_settings(settings: Settings) -> Settings:
    """``settings`` for a worker process: no busy-polling unless ``REDKEEP_BUSY_POLL`` is set.

    A worker's loop has handlers to run while a command is in flight, so spinning would only
    take their CPU (measured: lower throughput and a longer latency tail).
    """
    if "busy_poll" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"busy_poll": 0.0})


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
) -> None:
    """Run a worker for the handlers in a user module until SIGTERM / SIGINT."""
    try:
        settings = Settings()
    except RedkeepError as exc:
        raise _fail(str(exc), 2) from None
    _configure_logging(settings)
    settings = worker_settings(settings)
    if settings.effective_backend == "memory":
        raise _fail(
            "`redkeep worker` needs a shared backend (set REDKEEP_REDIS_URL or Upstash "
            "credentials): in-memory queues live inside one process. With memory backends use "
            "`redkeep serve --worker MODULE:ATTRIBUTE`, which runs the worker in the service.",
            2,
        )
    try:
        loaded = load_handlers(handlers)
    except HandlerSpecError as exc:
        raise _fail(str(exc), 2) from None
    try:
        run_loop(_run(settings, loaded, queue or ["default"], concurrency))
    except RedkeepError as exc:
        raise _fail(f"{type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add ``redkeep worker`` to the CLI."""
    app.command("worker")(worker)
