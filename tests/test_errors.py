"""The exception tree, transient classification and secret scrubbing of redkeep.errors."""

from __future__ import annotations

import uuid

import pytest

from redkeep import errors
from redkeep.errors import (
    BackendAuthError,
    BackendError,
    BackendResponseError,
    BackendTimeout,
    BackendUnavailable,
    CircuitOpen,
    ConfigError,
    InvalidJob,
    InvalidKey,
    InvalidName,
    JobError,
    JobNotFound,
    LeaseLost,
    OutboxCorrupted,
    OutboxError,
    OutboxFull,
    OutcomeUnknown,
    PayloadTooLarge,
    QueueFull,
    RedkeepError,
    ReplicationTimeout,
    SerializationError,
    StartupError,
    is_transient,
    register_secret,
    scrub,
)

TREE: dict[type[Exception], type[Exception]] = {
    ConfigError: RedkeepError,
    SerializationError: RedkeepError,
    PayloadTooLarge: SerializationError,
    InvalidKey: RedkeepError,
    BackendError: RedkeepError,
    BackendUnavailable: BackendError,
    BackendTimeout: BackendError,
    BackendAuthError: BackendError,
    BackendResponseError: BackendError,
    OutcomeUnknown: BackendUnavailable,
    ReplicationTimeout: BackendError,
    CircuitOpen: RedkeepError,
    JobError: RedkeepError,
    InvalidJob: JobError,
    JobNotFound: JobError,
    LeaseLost: JobError,
    OutboxError: RedkeepError,
    OutboxCorrupted: OutboxError,
    OutboxFull: OutboxError,
    QueueFull: JobError,
    InvalidName: RedkeepError,
    StartupError: RedkeepError,
}


@pytest.mark.parametrize(("cls", "parent"), TREE.items(), ids=lambda c: c.__name__)
def test_tree_shape(cls: type[Exception], parent: type[Exception]) -> None:
    assert cls.__bases__[0] is parent
    assert issubclass(cls, RedkeepError)
    assert cls.__doc__


def test_every_exported_exception_is_in_the_tree() -> None:
    exported = {
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type) and getattr(errors, name) is not RedkeepError
    }
    assert exported == set(TREE)


def test_value_and_key_error_compatibility() -> None:
    # Callers that catch the builtin categories keep working.
    assert issubclass(ConfigError, ValueError)
    assert issubclass(SerializationError, ValueError)
    assert issubclass(InvalidKey, ValueError)
    assert issubclass(JobNotFound, KeyError)
    # Callers that handle an outage (HTTP 503) handle a full outbox the same way.
    assert issubclass(OutboxFull, BackendUnavailable)
    assert str(JobNotFound("no job 'abc'")) == "no job 'abc'"  # not KeyError's repr quoting
    assert str(JobNotFound()) == "job not found"


def test_structured_attributes() -> None:
    err = ConfigError("bad", {"REDKEEP_X": "why"})
    assert err.problems == {"REDKEEP_X": "why"}
    assert ConfigError("bad").problems == {}
    big = PayloadTooLarge(5000, 4096)
    assert (big.size, big.limit) == (5000, 4096)
    assert str(big) == "encoded payload is 5000 bytes, over the limit of 4096 bytes"
    opened = CircuitOpen("redis", 1.234)
    assert opened.name == "redis" and opened.retry_after == 1.234
    assert str(opened) == "circuit 'redis' is open; retry in 1.23s"


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (BackendUnavailable("connection refused"), True),
        (BackendTimeout("timed out"), True),
        (CircuitOpen("x", 1.0), True),
        (OutboxFull("full", jobs=1, max_jobs=1, size=10, max_bytes=100), True),
        (BackendResponseError("LOADING Redis is loading the dataset in memory"), True),
        (BackendResponseError("BUSY Redis is busy running a script"), True),
        (BackendResponseError("TRYAGAIN Multiple keys request during rehashing"), True),
        (BackendResponseError("CLUSTERDOWN The cluster is down"), True),
        (BackendResponseError("MASTERDOWN Link with MASTER is down"), True),
        (BackendResponseError("WRONGTYPE Operation against a key"), False),
        (BackendResponseError("OOM command not allowed"), False),
        (BackendAuthError("WRONGPASS invalid username-password pair"), False),
        (SerializationError("bad"), False),
        (ConfigError("bad"), False),
        (JobNotFound("x"), False),
        (ConnectionError("builtin, not translated"), False),
        (TimeoutError("builtin, not translated"), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Error connecting to redis://user:hunter2@127.0.0.1:6379/0",
            "Error connecting to redis://***@127.0.0.1:6379/0",
        ),
        (
            "rediss://:pw@host:6380 and https://t:x@h.io",
            "rediss://***@host:6380 and https://***@h.io",
        ),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("Authorization: Bearer abc.DEF-123_x=", "Authorization: Bearer ***"),
        ("authorization: bearer abc", "authorization: bearer ***"),
        ("AUTH hunter2", "AUTH ***"),
        # AUTH may carry user and password, so the word after it goes too.
        ("Command AUTH hunter2 failed", "Command AUTH ***"),
        ("AUTH app hunter2", "AUTH ***"),
        ("HELLO 3 AUTH app hunter2", "HELLO 3 AUTH ***"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_scrub_removes_url_passwords_tokens_and_auth_args(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_scrub_removes_registered_secrets_longest_first() -> None:
    short = f"tok{uuid.uuid4().hex[:6]}"
    long = f"{short}-extended"
    register_secret(short)
    register_secret(long)
    out = scrub(f"got {long} then {short}")
    assert out == "got *** then ***"
    assert short not in out


def test_register_secret_ignores_empty_and_tiny_values() -> None:
    register_secret(None)
    register_secret("")
    register_secret("ab")  # too short: would mangle ordinary text
    assert scrub("ab cd") == "ab cd"
