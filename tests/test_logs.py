"""configure_logging: text and JSON lines, levels, idempotence, and secret scrubbing."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from redkeep.config import Settings
from redkeep.errors import register_secret
from redkeep.logs import ScrubFilter, configure_logging

PASSWORD = "log-pw-Rt55"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    rk = logging.getLogger("redkeep")
    handlers, root_level, rk_level = list(root.handlers), root.level, rk.level
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(root_level)
    rk.setLevel(rk_level)


def setup(fmt: str = "text", level: str = "INFO") -> io.StringIO:
    stream = io.StringIO()
    settings = Settings(_env_file=None, log_format=fmt, log_level=level)  # type: ignore[call-arg]
    configure_logging(settings, stream=stream)
    return stream


def test_text_format_line() -> None:
    stream = setup("text")
    logging.getLogger("redkeep.queue").info("job %s done in %.1fs", "abc", 1.25)
    line = stream.getvalue().strip()
    assert line.endswith("INFO    redkeep.queue: job abc done in 1.2s")
    assert line[:4].isdigit()  # starts with the timestamp


def test_json_format_lines_with_extras_and_exceptions() -> None:
    stream = setup("json")
    log = logging.getLogger("redkeep.cache")
    log.warning("fallback active", extra={"backend": "redis", "count": 3})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    first, second = (json.loads(x) for x in stream.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "redkeep.cache"
    assert first["message"] == "fallback active"
    assert first["backend"] == "redis" and first["count"] == 3
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc"]


def test_levels_apply_to_redkeep_loggers() -> None:
    stream = setup("text", "WARNING")
    logging.getLogger("redkeep.x").info("hidden")
    logging.getLogger("redkeep.x").warning("shown")
    assert "hidden" not in stream.getvalue() and "shown" in stream.getvalue()

    stream = setup("text", "DEBUG")
    logging.getLogger("redkeep.x").debug("debug shown")
    logging.getLogger("someotherlib").info("third-party info stays quiet")
    assert "debug shown" in stream.getvalue()
    assert "third-party" not in stream.getvalue()


def test_configuring_twice_does_not_duplicate_output() -> None:
    setup("text")
    factory = logging.getLogRecordFactory()
    stream = setup("json")
    assert logging.getLogRecordFactory() is factory  # wrapped once, not twice
    logging.getLogger("redkeep").warning("once")
    assert len(stream.getvalue().splitlines()) == 1
    marked = [h for h in logging.getLogger().handlers if getattr(h, "_redkeep_handler", False)]
    assert len(marked) == 1


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_scrubbed_from_messages_args_and_tracebacks(fmt: str) -> None:
    register_secret("registered-secret-Vb3")
    stream = setup(fmt)
    log = logging.getLogger("redkeep.redis")
    log.warning("connecting to redis://app:%s@127.0.0.1:6379/0", PASSWORD)
    log.warning("header Authorization: Bearer tok.EN-value")
    log.warning("value %s", "registered-secret-Vb3")
    log.warning("extra carries it", extra={"url": f"redis://:{PASSWORD}@h:1"})
    try:
        raise ConnectionError(f"cannot auth with redis://u:{PASSWORD}@h:1")
    except ConnectionError:
        log.exception("failure")
    out = stream.getvalue()
    assert PASSWORD not in out
    assert "tok.EN-value" not in out
    assert "registered-secret-Vb3" not in out
    assert "redis://***@127.0.0.1:6379/0" in out
    assert "Bearer ***" in out


def test_scrub_filter_reaches_other_handlers_on_the_same_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup("text")
    with caplog.at_level(logging.INFO, logger="redkeep"):
        logging.getLogger("redkeep.y").info("redis://u:%s@h:1", PASSWORD)
    assert PASSWORD not in caplog.text


def test_scrub_filter_tolerates_bad_format_args() -> None:
    record = logging.LogRecord("redkeep", logging.INFO, __file__, 1, "%d", ("x",), None)
    assert ScrubFilter().filter(record) is True
