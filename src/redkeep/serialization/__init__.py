"""Value serialization for cache entries and job payloads: JSON text via orjson, never pickle.

The wire format is plain JSON (UTF-8 ``str``, so values travel over Upstash REST unchanged).
JSON-native values (``None``, ``bool``, ``int`` within 64 bits, finite ``float``, ``str``,
``list`` and ``dict`` with ``str`` keys) are written as themselves. Every other supported value
becomes a *tagged* object ``{"__rk__": "<kind>", "v": <payload>}``:

=========================  ==========  =============================================
value                      kind        payload
=========================  ==========  =============================================
int beyond 64 bits         ``int``     hexadecimal text (no 4300-digit limit)
NaN, +inf, -inf            ``float``   ``"nan"``, ``"inf"``, ``"-inf"``
datetime                   ``dt``      ISO 8601; naive stays naive, aware keeps its offset
date / time                ``date``    ISO 8601 (``time`` uses kind ``time``)
timedelta                  ``td``      ``[days, seconds, microseconds]``
UUID / Decimal             ``uuid``    text (``Decimal`` uses kind ``dec``)
bytes, bytearray           ``bytes``   base64 text (decodes as ``bytes``)
set / frozenset / tuple    ``set``     list of items (``fset`` / ``tuple``)
dict with a ``"__rk__"``   ``esc``     the dict itself, so user data is never mistaken
key                                    for a tag
registered class           ``obj``     ``{"__rk__": "obj", "t": name, "v": {fields}}``
=========================  ==========  =============================================

Non-finite floats round-trip exactly through the ``float`` tag (JSON has no NaN). Dataclasses
and pydantic models encode as dicts of their fields; :func:`register` a class to decode it back
into an instance (an unregistered reader gets the dict). Enum members encode as their value;
subclasses of ``str``/``int``/``float``/``dict``/``list`` as the base type, named tuples as tuples.

Speed: ``dumps`` first calls ``orjson.dumps`` and then checks that orjson was exact, i.e. the
value held only JSON-native types (orjson would silently turn tuples into lists, UUIDs and
datetimes into strings and NaN into null) and no dict used the tag key. The check looks at the
types of each container's items (a short loop for small values, C-level calls per nesting level
for large ones) and compares the number of ``None`` values with the ``null`` tokens in the text.
Only when it fails is the value walked and tagged (copy-on-write) and encoded again. Decoding is
``orjson.loads`` plus, only when the text contains the tag marker (a substring check), one
in-place pass that rebuilds tagged values. ``bench/serialization_bench.py`` measures both.

Layout: :mod:`.base` (protocol, tag, registry), :mod:`.json` (:class:`JsonSerializer`),
``_exact`` (the fast-path check) and ``_tags`` (encoders and decoders of each kind).
"""

from __future__ import annotations

from typing import Any

from redkeep.serialization.base import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    TAG,
    Serializer,
    TypeRegistry,
    default_registry,
    register,
)
from redkeep.serialization.json import JsonSerializer

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "TAG",
    "JsonSerializer",
    "Serializer",
    "TypeRegistry",
    "default_registry",
    "dumps",
    "loads",
    "register",
]

_default = JsonSerializer()


def dumps(value: Any) -> str:
    """Encode ``value`` with the default :class:`JsonSerializer` (4 MiB limit)."""
    return _default.dumps(value)


def loads(text: str | bytes) -> Any:
    """Decode text produced by :func:`dumps`."""
    return _default.loads(text)
