"""Settings from the environment: validation messages, aliases, backend resolution, secrecy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from redkeep.config import Settings, redact_url
from redkeep.errors import ConfigError, scrub

PASSWORD = "s3cr3t-pa55word"
TOKEN = "upstash-token-Zx81"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Start every test from an environment without redkeep or Upstash variables."""
    for name in list(os.environ):
        if name.upper().startswith(("REDKEEP_", "UPSTASH_")):
            monkeypatch.delenv(name)
    yield monkeypatch


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def problems_of(monkeypatch: pytest.MonkeyPatch, **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(monkeypatch, **env)
    return info.value


def test_defaults_resolve_to_memory_backend(clean_env: pytest.MonkeyPatch) -> None:
    s = load(clean_env)
    assert s.backend == "auto" and s.effective_backend == "memory"
    assert s.max_payload_bytes == 4 * 1024 * 1024
    assert s.redis_url is None and s.upstash_url is None


def test_every_bad_variable_is_listed_by_env_name_with_reason(
    clean_env: pytest.MonkeyPatch,
) -> None:
    err = problems_of(
        clean_env,
        REDKEEP_COMMAND_TIMEOUT="-1",
        REDKEEP_MAX_CONNECTIONS="many",
        REDKEEP_BACKEND="mongo",
        REDKEEP_KEY_PREFIX="a b",
        REDKEEP_LOG_FORMAT="xml",
    )
    assert set(err.problems) == {
        "REDKEEP_COMMAND_TIMEOUT",
        "REDKEEP_MAX_CONNECTIONS",
        "REDKEEP_BACKEND",
        "REDKEEP_KEY_PREFIX",
        "REDKEEP_LOG_FORMAT",
    }
    assert err.problems["REDKEEP_COMMAND_TIMEOUT"] == "input should be greater than 0 (got '-1')"
    assert "valid integer" in err.problems["REDKEEP_MAX_CONNECTIONS"]
    assert "(got 'many')" in err.problems["REDKEEP_MAX_CONNECTIONS"]
    assert "'redis'" in err.problems["REDKEEP_BACKEND"]
    assert "whitespace" in err.problems["REDKEEP_KEY_PREFIX"]
    message = str(err)
    assert message.startswith("invalid redkeep settings (5 problem(s)):")
    assert "  REDKEEP_COMMAND_TIMEOUT: input should be greater than 0 (got '-1')" in message
    assert isinstance(err, ValueError)


def test_log_level_is_case_insensitive(clean_env: pytest.MonkeyPatch) -> None:
    assert load(clean_env, REDKEEP_LOG_LEVEL="debug").log_level == "DEBUG"


def test_upstash_aliases_are_read_and_named_in_errors(clean_env: pytest.MonkeyPatch) -> None:
    s = load(
        clean_env, UPSTASH_REDIS_REST_URL="https://eu1.upstash.io/", UPSTASH_REDIS_REST_TOKEN=TOKEN
    )
    assert s.upstash_url == "https://eu1.upstash.io"
    assert s.upstash_token is not None and s.upstash_token.get_secret_value() == TOKEN
    assert s.effective_backend == "upstash"

    clean_env.delenv("UPSTASH_REDIS_REST_URL")
    err = problems_of(clean_env, UPSTASH_REDIS_REST_URL="ftp://eu1.upstash.io")
    assert list(err.problems) == ["UPSTASH_REDIS_REST_URL"]
    assert "https://" in err.problems["UPSTASH_REDIS_REST_URL"]


def test_redkeep_names_for_upstash_work_too(clean_env: pytest.MonkeyPatch) -> None:
    s = load(clean_env, REDKEEP_UPSTASH_URL="http://127.0.0.1:8079", REDKEEP_UPSTASH_TOKEN=TOKEN)
    assert s.effective_backend == "upstash"
    err = problems_of(clean_env, REDKEEP_UPSTASH_URL="nope")
    assert "REDKEEP_UPSTASH_URL" in err.problems


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "memory"),
        ({"REDKEEP_REDIS_URL": "redis://127.0.0.1:6379/0"}, "redis"),
        ({"REDKEEP_UPSTASH_URL": "https://x.io", "REDKEEP_UPSTASH_TOKEN": TOKEN}, "upstash"),
        ({"REDKEEP_UPSTASH_URL": "https://x.io"}, "memory"),  # no token: not usable
        (
            {
                "REDKEEP_REDIS_URL": "redis://127.0.0.1:6379/0",
                "REDKEEP_UPSTASH_URL": "https://x.io",
                "REDKEEP_UPSTASH_TOKEN": TOKEN,
            },
            "redis",
        ),
        ({"REDKEEP_BACKEND": "memory", "REDKEEP_REDIS_URL": "redis://127.0.0.1"}, "memory"),
        ({"REDKEEP_REDIS_URL": ""}, "memory"),
    ],
)
def test_backend_auto_resolution(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    assert load(clean_env, **env).effective_backend == expected


def test_explicit_backend_requires_its_credentials(clean_env: pytest.MonkeyPatch) -> None:
    err = problems_of(clean_env, REDKEEP_BACKEND="redis")
    assert err.problems == {"REDKEEP_REDIS_URL": "required when REDKEEP_BACKEND=redis"}
    clean_env.setenv("REDKEEP_BACKEND", "upstash")
    err = problems_of(clean_env, REDKEEP_UPSTASH_TOKEN=TOKEN)
    assert set(err.problems) == {"REDKEEP_UPSTASH_URL"}


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{PASSWORD}@127.0.0.1:6379",
        f"redis://user:{PASSWORD}@127.0.0.1:notaport",
        PASSWORD,  # a bare password pasted into the URL variable
    ],
)
def test_bad_redis_url_errors_never_show_the_password(
    clean_env: pytest.MonkeyPatch, url: str
) -> None:
    err = problems_of(clean_env, REDKEEP_REDIS_URL=url)
    assert "REDKEEP_REDIS_URL" in err.problems
    assert PASSWORD not in str(err)
    assert PASSWORD not in repr(err)
    assert PASSWORD not in str(err.problems)


def test_secrets_never_in_repr_str_or_redacted(clean_env: pytest.MonkeyPatch) -> None:
    s = load(
        clean_env,
        REDKEEP_REDIS_URL=f"redis://app:{PASSWORD}@127.0.0.1:6379/0",
        REDKEEP_UPSTASH_URL="https://x.io",
        REDKEEP_UPSTASH_TOKEN=TOKEN,
        REDKEEP_API_TOKEN="api-token-Qq72",
    )
    for text in (repr(s), str(s), str(s.redacted()), s.model_dump_json()):
        assert PASSWORD not in text
        assert TOKEN not in text
        assert "api-token-Qq72" not in text
    red = s.redacted()
    assert red["redis_url"] == "redis://app:***@127.0.0.1:6379/0"
    assert red["upstash_token"] == "***" and red["api_token"] == "***"
    assert red["upstash_url"] == "https://x.io"
    assert set(red) == set(Settings.model_fields)
    assert s.redis_url_redacted == "redis://app:***@127.0.0.1:6379/0"


def test_loaded_secrets_are_registered_for_scrubbing(clean_env: pytest.MonkeyPatch) -> None:
    load(
        clean_env,
        REDKEEP_REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:6379/0",
        REDKEEP_UPSTASH_TOKEN=TOKEN,
    )
    assert scrub(f"login with {PASSWORD} and {TOKEN}") == "login with *** and ***"


def test_empty_tokens_mean_unset(clean_env: pytest.MonkeyPatch) -> None:
    s = load(clean_env, REDKEEP_API_TOKEN="", REDKEEP_UPSTASH_TOKEN="")
    assert s.api_token is None and s.upstash_token is None


def test_keyword_arguments_override_and_validate() -> None:
    assert Settings(_env_file=None, command_timeout=0.5).command_timeout == 0.5  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as info:
        Settings(_env_file=None, queue_concurrency=0)  # type: ignore[call-arg]
    assert "REDKEEP_QUEUE_CONCURRENCY" in info.value.problems


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, None),
        ("", ""),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user:pw@127.0.0.1:6379/1", "redis://user:***@127.0.0.1:6379/1"),
        ("redis://:pw@127.0.0.1/0", "redis://:***@127.0.0.1/0"),
        ("redis://tokenonly@127.0.0.1", "redis://***@127.0.0.1"),
        ("rediss://u:p@[::1]:6380/0", "rediss://u:***@[::1]:6380/0"),
        ("redis://u:p@host:notaport", "redis://u:***@host:notaport"),
        ("redis://127.0.0.1/0?password=pw&db=2", "redis://127.0.0.1/0?password=***&db=2"),
        ("redis://[::1", "redis://[::1"),  # unparseable, but nothing secret in it
        # Unencoded / # ? in a password move the "@" out of the parsed host part.
        ("redis://:s3c/retPW@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://app:pa#ss@h:6379/0", "redis://app:***@h:6379/0"),
        ("redis://app:p?w/x#y@h", "redis://app:***@h"),
        ("https://default:AXtoken@eu1.upstash.io", "https://default:***@eu1.upstash.io"),
        ("https://x.upstash.io/?_token=AXtoken", "https://x.upstash.io/?_token=***"),
        ("bare-secret-without-scheme", "***"),
    ],
)
def test_redact_url(url: str | None, expected: str | None) -> None:
    assert redact_url(url) == expected


def test_dotenv_file_is_read_and_environment_wins(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("REDKEEP_KEY_PREFIX=fromfile\nREDKEEP_COMMAND_TIMEOUT=7\n")
    clean_env.chdir(tmp_path)
    clean_env.setenv("REDKEEP_COMMAND_TIMEOUT", "3")
    s = Settings()
    assert s.key_prefix == "fromfile"
    assert s.command_timeout == 3.0
