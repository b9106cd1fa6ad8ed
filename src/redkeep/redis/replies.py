"""Replies of Redis commands turned into Python values: ``INFO`` text (:func:`parse_info`),
scored members (:func:`pairs`), a transaction's EXEC result (:func:`transaction_replies`) and
an EVALSHA + WAIT pair (:func:`replicated_reply`). Shared by
:class:`~redkeep.redis.commands.Commands` and the transports; re-exported by
:mod:`redkeep.redis.commands`."""

from __future__ import annotations

from typing import Any

from redkeep.errors import BackendResponseError, ReplicationTimeout

__all__ = ["pairs", "parse_info", "replicated_reply", "transaction_replies"]


def pairs(flat: Any) -> list[tuple[str, float]]:
    """``[m1, s1, m2, s2]`` (or RESP3's already paired list) as ``[(m1, s1), (m2, s2)]``."""
    if not flat:
        return []
    if isinstance(flat[0], list | tuple):
        return [(m, float(s)) for m, s in flat]
    it = iter(flat)
    return [(m, float(s)) for m, s in zip(it, it, strict=True)]


def transaction_replies(replies: list[Any]) -> list[Any]:
    """The EXEC result of ``[MULTI, commands..., EXEC]`` replies; raise when it was aborted."""
    result = replies[-1]
    if isinstance(result, Exception):
        queued = next((r for r in replies[1:-1] if isinstance(r, Exception)), None)
        detail = f" ({queued})" if queued is not None else ""
        raise BackendResponseError(f"{result}{detail}")
    if result is None:
        raise BackendResponseError("EXECABORT the transaction was aborted")
    return list(result)


def replicated_reply(replies: list[Any], replicas: int, timeout: float) -> Any:
    """The script's reply from ``[EVALSHA reply, WAIT reply]``, or :class:`ReplicationTimeout`."""
    reply, acknowledged = replies
    if isinstance(reply, Exception):
        raise reply
    if isinstance(acknowledged, Exception):
        raise acknowledged
    if int(acknowledged) < replicas:
        raise ReplicationTimeout(
            f"WAIT: {acknowledged} of {replicas} replica(s) acknowledged the write within "
            f"{timeout:g} s; it is on the primary and may be lost if the primary fails now "
            "(repeating an idempotent write is safe)",
            int(acknowledged),
            replicas,
        )
    return reply


def _info_value(text: str) -> Any:
    if "=" in text:  # "keys=1,expires=0" -> {"keys": 1, "expires": 0}
        fields = (item.partition("=") for item in text.split(",") if item)
        return {k: _info_value(v) if sep else True for k, sep, v in fields}
    if "," in text:
        return [_info_value(v) for v in text.split(",") if v]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_info(text: Any) -> dict[str, Any]:
    """``INFO`` text as a dict: numbers as int/float, ``k=v,...`` values as dicts."""
    if isinstance(text, dict):  # already parsed (e.g. a proxy's reply)
        return text
    info: dict[str, Any] = {}
    for line in str(text).splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if key == "module":
            info.setdefault("modules", []).append(_info_value(value))
        else:
            info[key] = _info_value(value)
    return info
