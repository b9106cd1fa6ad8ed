"""Sentinel specifics of the reference transport: why no primary could be found.

redis-py's ``Sentinel.master_for`` raises one ``MasterNotFoundError`` whether no sentinel
answered or every sentinel that answered knows no such service. The two call for different
fixes, so :func:`explain_no_primary` asks the sentinels and says which it is: an unreachable
sentinel set stays a transient connection error (sentinels restart; the startup backoff keeps
trying), an unknown service name is a non-transient :class:`~redkeep.errors.BackendResponseError`
naming ``REDKEEP_REDIS_URL`` (waiting does not fix a typo).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis import exceptions as rx
from redis.asyncio.sentinel import MasterNotFoundError

from redkeep.errors import BackendResponseError
from redkeep.redis.urls import RedisTarget

__all__ = ["explain_no_primary"]


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def explain_no_primary(
    sentinel: Any, target: RedisTarget, exc: MasterNotFoundError
) -> MasterNotFoundError:
    """The error to report for ``exc``; raises :class:`BackendResponseError` when the
    sentinels answer but none knows ``target.service``."""
    answers: list[Any] = []
    for client in sentinel.sentinels:
        try:
            async with asyncio.timeout(2):
                answers.append(
                    await client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", target.service
                    )
                )
        except (rx.RedisError, OSError, TimeoutError):
            continue
    where = ", ".join(_address(h, p) for h, p in target.hosts)
    if not answers:
        error = MasterNotFoundError(
            f"no sentinel of REDKEEP_REDIS_URL answered ({where}): no primary for service "
            f"{target.service!r}"
        )
        error.__context__ = exc.__context__
        return error
    if all(answer is None for answer in answers):
        raise BackendResponseError(
            f"ERR the sentinels of REDKEEP_REDIS_URL ({where}) know no service named "
            f"{target.service!r}"
        )
    return MasterNotFoundError(
        f"the sentinels of REDKEEP_REDIS_URL ({where}) have no reachable primary for service "
        f"{target.service!r} right now ({exc})"
    )
