"""Django responses as cache values without pickle: what the cache middleware and
``cache_page`` store.

An ``HttpResponse`` is stored as a :class:`CachedResponse` (a registered dataclass, so the JSON
serializer tags it exactly) holding what pickling it would keep: status, reason, charset,
headers, body and cookies. Reading it back builds an equivalent ``HttpResponse``. Streaming and
file responses are not data and stay refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.cookies import Morsel
from typing import Any

from django.http import HttpResponse

from redkeep.serialization import register

__all__ = ["CachedResponse", "from_cache", "to_cache"]


@dataclass(frozen=True)
class CachedResponse:
    """The stored form of a Django ``HttpResponse``."""

    status: int
    reason: str | None
    charset: str | None
    headers: list[list[str]]
    content: bytes
    cookies: list[list[Any]]
    """``[key, value, coded_value, {attribute: value}]`` per cookie."""


register(CachedResponse, "redkeep.contrib.django.CachedResponse")


def to_cache(value: Any) -> Any:
    """``value``, or its :class:`CachedResponse` when it is an ``HttpResponse``."""
    if not isinstance(value, HttpResponse):
        return value
    return CachedResponse(
        status=value.status_code,
        reason=value._reason_phrase,  # None unless set explicitly: derived from the status
        charset=value._charset,
        headers=[[name, text] for name, text in value.headers.items()],
        content=value.content,
        cookies=[
            [m.key, m.value, m.coded_value, {k: v for k, v in m.items() if v != ""}]
            for m in value.cookies.values()
        ],
    )


def from_cache(value: Any) -> Any:
    """``value``, or the ``HttpResponse`` a :class:`CachedResponse` stands for."""
    if type(value) is not CachedResponse:
        return value
    response = HttpResponse(
        value.content, status=value.status, reason=value.reason, charset=value.charset
    )
    for name, text in value.headers:
        response.headers[name] = text
    for key, text, coded, attributes in value.cookies:
        morsel: Morsel[str] = Morsel()
        morsel.set(key, text, coded)
        morsel.update(attributes)
        response.cookies[key] = morsel
    return response
