"""The checks and messages behind :class:`~redkeep.config.Settings`: URL validation (Redis and
Upstash URLs, their passwords registered as secrets before anything can fail), URL redaction
for logs and output, and the :class:`~redkeep.errors.ConfigError` that names every bad
``REDKEEP_*`` variable at once."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from redkeep.errors import ConfigError, register_secret

__all__ = [
    "check_redis_url",
    "check_upstash_url",
    "invalid_settings",
    "redact_url",
    "settings_problems",
]


def redact_url(url: str | None) -> str | None:
    """``url`` with its credentials replaced by ``***``: the user-info password (or a lone
    user/token) and query parameters such as ``password=`` or ``token=``.

    Works on URLs that do not parse too: a password with an unencoded ``/``, ``#`` or ``?``
    moves the ``@`` out of the parsed host part, so everything between ``://`` and the *last*
    ``@`` counts as user-info. A value without ``://`` may be a pasted bare secret: ``***``.
    """
    if not url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    userinfo, at, host = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        keep_user = colon and not any(c in user for c in "/?#")
        rest = (f"{user}:***@" if keep_user else "***@") + host
    return f"{scheme}://" + _QUERY_SECRET.sub(r"\1***", rest)


_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:password|passwd|pass|pwd|token|_token|access_token|auth|secret|key"
    r"|sentinel_password)=)[^&#;]*"
)


def _register_password(url: str) -> str:
    """Remember the password (or lone user/token) of ``url`` as a secret, however the URL is
    written, so that every later message is scrubbed of it; returns the user-info."""
    userinfo = url.partition("://")[2].rpartition("@")[0]
    register_secret(userinfo.partition(":")[2] or userinfo)
    return userinfo


def check_redis_url(url: str) -> None:
    """ValueError (the reason) unless ``url`` is a valid ``REDKEEP_REDIS_URL``."""
    # Remember the password before anything can fail: every later message (including this
    # check's) is scrubbed of it.
    _register_password(url)
    from redkeep.redis.urls import parse_url

    try:
        parse_url(url)  # every option checked; registers the passwords as secrets
    except ConfigError as exc:
        raise ValueError(exc.problems.get("REDKEEP_REDIS_URL", str(exc))) from None


def check_upstash_url(value: str) -> str:
    """``value`` without a trailing ``/``, or ValueError (the reason) unless it is a valid
    Upstash REST URL."""
    # As for REDKEEP_REDIS_URL: remember the password first, and never let a URL parser
    # quote a piece of it (httpx would say "Invalid port: '<start of the password>'").
    userinfo = _register_password(value)
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with https:// (or http:// for a local emulator)")
    from redkeep.redis.urls import UNENCODED_PASSWORD

    if any(c in userinfo for c in "/?#"):
        raise ValueError(UNENCODED_PASSWORD)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("is not a valid URL (check its host and port)") from None
    if not parts.hostname:
        raise ValueError("has no host name")
    return value.rstrip("/")


def invalid_settings(problems: dict[str, str], counted: bool = False) -> ConfigError:
    """The error naming every bad variable, one line each: for values that do not parse
    (``counted``: the message says how many), or that each parse but do not go together."""
    lines = "\n".join(f"  {name}: {reason}" for name, reason in problems.items())
    count = f" ({len(problems)} problem(s))" if counted else ""
    return ConfigError(f"invalid redkeep settings{count}:\n{lines}", problems)


def _env_name(field: str, model: type[BaseSettings]) -> str:
    info = model.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        names = [c for c in alias.choices if isinstance(c, str)]
        # Name the variable the user actually set (e.g. UPSTASH_REDIS_REST_URL).
        present = {k.upper() for k in os.environ}
        for name in names:
            if name.upper() in present:
                return name
        if names:
            return names[0]
    return f"{_prefix(model)}{field.upper()}"


def settings_problems(exc: ValidationError, model: type[BaseSettings]) -> dict[str, str]:
    """One reason per environment variable (as the user named it) for the errors of ``exc``,
    raised by validating ``model``; values of secrets and URLs are masked."""
    problems: dict[str, str] = {}
    aliases = {
        choice.upper(): field
        for field, info in model.model_fields.items()
        if isinstance(info.validation_alias, AliasChoices)
        for choice in info.validation_alias.choices
        if isinstance(choice, str)
    }
    for err in exc.errors():
        loc = err.get("loc") or ("?",)
        field = str(loc[0])
        if field.upper() in aliases:
            name = _env_name(aliases[field.upper()], model)
        elif field.upper().startswith(_prefix(model)) or field.startswith("UPSTASH_"):
            name = field
        else:
            name = _env_name(field, model)
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        reason = reason[0].lower() + reason[1:] if reason else reason
        if "input" in err and err.get("type") != "missing":
            shown = err["input"]
            if isinstance(shown, SecretStr) or name.endswith(("TOKEN", "URL")):
                text = str(shown)
                # A value without a scheme may be a bare password pasted into the URL variable.
                secret = name.endswith("TOKEN") or "://" not in text
                shown = "***" if secret else redact_url(text)
            reason = f"{reason} (got {shown!r})"
        problems[name] = problems[name] + "; " + reason if name in problems else reason
    return problems


def _prefix(model: type[BaseSettings]) -> str:
    return model.model_config.get("env_prefix") or ""
