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
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import gc
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from itertools import compress
from operator import countOf
from typing import Any, Protocol, TypeVar, runtime_checkable

import orjson
from pydantic import BaseModel

from redkeep.errors import PayloadTooLarge, SerializationError

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

TAG = "__rk__"
"""Key that marks a tagged (non-JSON-native) value in the encoded text."""
_TAG_BYTES = TAG.encode()

DEFAULT_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""Default payload limit, the same as ``Settings.max_payload_bytes``."""

# orjson writes ints in [-2**63, 2**64 - 1]; larger ones are tagged.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

T = TypeVar("T", bound=type)


@runtime_checkable
class Serializer(Protocol):
    """Turns values into UTF-8 text and back. Implementations raise :class:`SerializationError`."""

    def dumps(self, value: Any) -> str:
        """Encode ``value``; raises ``PayloadTooLarge`` over the size limit."""
        ...

    def loads(self, text: str | bytes) -> Any:
        """Decode text produced by :meth:`dumps`."""
        ...


class TypeRegistry:
    """Classes (dataclasses or pydantic models) that decode back into instances, by name."""

    def __init__(self) -> None:
        self._by_class: dict[type, str] = {}
        self._by_name: dict[str, type] = {}

    def register(self, cls: T, name: str | None = None) -> T:
        """Register ``cls`` under ``name`` (default ``module.QualName``); usable as a decorator."""
        if not isinstance(cls, type) or not (
            dataclasses.is_dataclass(cls) or issubclass(cls, BaseModel)
        ):
            raise SerializationError(
                f"register() needs a dataclass or pydantic model class, got {cls!r}"
            )
        key = name or f"{cls.__module__}.{cls.__qualname__}"
        other = self._by_name.get(key)
        if other is not None and other is not cls:
            raise SerializationError(f"type name {key!r} is already registered for {other!r}")
        self._by_class[cls] = key
        self._by_name[key] = cls
        return cls

    def name_of(self, cls: type) -> str | None:
        """The registered name of ``cls``, or None."""
        return self._by_class.get(cls)

    def lookup(self, name: str) -> type | None:
        """The class registered under ``name``, or None."""
        return self._by_name.get(name)


default_registry = TypeRegistry()
"""Registry used by the module-level functions and by serializers built without one."""


def register(cls: T, name: str | None = None) -> T:
    """Register ``cls`` in :data:`default_registry` (also usable as a class decorator)."""
    return default_registry.register(cls, name)


class _Unsupported(Exception):
    """Internal: raised deep in the walk; each level adds its path segment on the way out."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


_NoneType = type(None)
_LEAVES = frozenset({str, int, float, bool, _NoneType})
_NODES = _LEAVES | {dict, list}
_is_container = frozenset({dict, list}).__contains__
_SMALL_PAYLOAD = 2048  # below this, a plain loop beats the per-level C calls


_SCALARS = frozenset({str, int, float, bool})


def _count_nones(v: Any, size: int) -> int:
    """How many ``None`` values ``v`` holds if it is made only of JSON-native types, else -1.

    ``size`` is the length of its orjson encoding and picks the faster of two equal checks.
    """
    t = type(v)
    if t is dict or t is list:
        return _count_nones_loop(v) if size < _SMALL_PAYLOAD else _count_nones_levels(v)
    if t in _SCALARS:
        return 0
    return 1 if v is None else -1


def _count_nones_loop(
    v: Any, scalars: frozenset[type] = _SCALARS, type: type = type, dict: type = dict
) -> int:
    # Builtins bound as defaults are local lookups: this loop runs on every small dumps().
    n = 0
    for x in v.values() if type(v) is dict else v:
        if type(x) in scalars:
            continue
        if x is None:
            n += 1
        elif type(x) is dict or type(x) is list:
            m = _count_nones_loop(x)
            if m < 0:
                return -1
            n += m
        else:
            return -1
    return n


def _count_nones_levels(v: Any) -> int:
    # Breadth-first, one level at a time, with the per-item work done in C: get_referents
    # yields the items of lists and the keys and values of dicts.
    level = [v]
    n = 0
    while level:
        children = gc.get_referents(*level)
        types = set(map(type, children))
        if not types <= _NODES:
            return -1
        if _NoneType in types:
            n += countOf(children, None)
        if dict not in types and list not in types:
            break
        level = list(compress(children, map(_is_container, map(type, children))))
    return n


def _type_name(value: Any) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class JsonSerializer:
    """The default :class:`Serializer`: JSON via orjson with type tags (see module docs)."""

    def __init__(
        self,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        *,
        registry: TypeRegistry | None = None,
    ) -> None:
        if not isinstance(max_payload_bytes, int) or max_payload_bytes <= 0:
            raise SerializationError(
                f"max_payload_bytes must be a positive int (got {max_payload_bytes!r})"
            )
        self.max_payload_bytes = max_payload_bytes
        self.registry = registry if registry is not None else default_registry

    @classmethod
    def from_settings(cls, settings: Any) -> JsonSerializer:
        """A serializer using ``settings.max_payload_bytes``."""
        return cls(int(settings.max_payload_bytes))

    # -- encoding --------------------------------------------------------------------------------
    def dumps(self, value: Any) -> str:
        """Encode ``value`` as JSON text; see the module docs for supported types."""
        # Fast path: orjson alone is exact when the value holds only JSON-native types, no
        # dict uses the tag key, and no float is NaN/inf (orjson writes those as null, so the
        # text would hold more nulls than the value holds Nones). Otherwise walk and tag.
        try:
            data: bytes | None = orjson.dumps(value)
        except orjson.JSONEncodeError:
            data = None
        if data is not None and (
            _TAG_BYTES in data or _count_nones(value, len(data)) != data.count(b"null")
        ):
            data = None
        if data is None:
            data = self._dumps_tagged(value)
        if len(data) > self.max_payload_bytes:
            raise PayloadTooLarge(len(data), self.max_payload_bytes)
        return data.decode()

    def _dumps_tagged(self, value: Any) -> bytes:
        try:
            prepared = self._enc(value)
        except _Unsupported as exc:
            where = "value" + "".join(reversed(exc.path))
            raise SerializationError(f"{exc.message} at {where}") from None
        except RecursionError:
            raise SerializationError(
                "value is nested too deeply or contains a reference cycle"
            ) from None
        try:
            return orjson.dumps(prepared)
        except orjson.JSONEncodeError as exc:
            raise SerializationError(_describe_orjson_error(prepared, exc)) from None

    def _enc(self, v: Any) -> Any:
        t = type(v)
        if t is str or t is bool or v is None:
            return v
        if t is int:
            return v if _INT_MIN <= v <= _INT_MAX else {TAG: "int", "v": format(v, "x")}
        if t is float:
            return v if v - v == 0.0 else {TAG: "float", "v": repr(v)}
        if t is dict:
            return self._enc_dict(v)
        if t is list:
            return self._enc_list(v)
        return self._enc_other(v)

    def _enc_dict(self, d: dict[Any, Any]) -> Any:
        if TAG in d:
            return {TAG: "esc", "v": self._enc_dict_copy(d)}
        out: dict[str, Any] | None = None
        k: Any = None
        try:
            for k, v in d.items():
                if type(k) is not str and not isinstance(k, str):
                    raise _Unsupported(f"dict key must be str, got {_type_name(k)}")
                t = type(v)
                # Inline checks for the common JSON-native leaves (saves a call per item).
                if t is str or t is bool or v is None:
                    continue
                if t is int and _INT_MIN <= v <= _INT_MAX:
                    continue
                if t is float and v - v == 0.0:
                    continue
                nv = self._enc(v)
                if nv is not v:
                    if out is None:
                        out = dict(d)
                    out[k] = nv
        except _Unsupported as exc:
            exc.path.append(f"[{k!r}]")
            raise
        return d if out is None else out

    def _enc_dict_copy(self, d: dict[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        k: Any = None
        try:
            for k, v in d.items():
                if not isinstance(k, str):
                    raise _Unsupported(f"dict key must be str, got {_type_name(k)}")
                out[k if type(k) is str else str.__str__(k)] = self._enc(v)
        except _Unsupported as exc:
            exc.path.append(f"[{k!r}]")
            raise
        return out

    def _enc_list(self, items: list[Any]) -> list[Any]:
        out: list[Any] | None = None
        i = 0
        try:
            for i, v in enumerate(items):
                t = type(v)
                if t is str or t is bool or v is None:
                    continue
                if t is int and _INT_MIN <= v <= _INT_MAX:
                    continue
                if t is float and v - v == 0.0:
                    continue
                nv = self._enc(v)
                if nv is not v:
                    if out is None:
                        out = list(items)
                    out[i] = nv
        except _Unsupported as exc:
            exc.path.append(f"[{i}]")
            raise
        return items if out is None else out

    def _enc_items(self, kind: str, items: Any) -> dict[str, Any]:
        out: list[Any] = []
        try:
            for v in items:
                out.append(self._enc(v))
        except _Unsupported as exc:
            exc.path.append(f"[{len(out)}]" if kind == "tuple" else "{...}")
            raise
        return {TAG: kind, "v": out}

    def _enc_other(self, v: Any) -> Any:
        t = type(v)
        simple = _SIMPLE_ENCODERS.get(t)
        if simple is not None:
            return simple(v)
        name = self.registry.name_of(t)
        if name is not None:
            return {TAG: "obj", "t": name, "v": self._enc_dict_copy(_fields_of(v))}
        if t is tuple:
            return self._enc_items("tuple", v)
        if t is set:
            return self._enc_items("set", v)
        if t is frozenset:
            return self._enc_items("fset", v)
        # Subclasses and structured objects, in order of specificity.
        if isinstance(v, enum.Enum):
            return self._enc(v.value)
        for base, enc in _SIMPLE_ENCODERS.items():
            if isinstance(v, base):
                return enc(v)
        if isinstance(v, int):
            return self._enc(int(v))
        if isinstance(v, float):
            return self._enc(float(v))
        if isinstance(v, str):
            return str(v)
        if isinstance(v, dict):
            return self._enc_dict(dict(v))
        if isinstance(v, list):
            return self._enc_list(list(v))
        if isinstance(v, tuple):
            return self._enc_items("tuple", v)
        if isinstance(v, frozenset):
            return self._enc_items("fset", v)
        if isinstance(v, set):
            return self._enc_items("set", v)
        if (dataclasses.is_dataclass(v) and not isinstance(v, type)) or isinstance(v, BaseModel):
            return self._enc_dict_copy(_fields_of(v))
        raise _Unsupported(f"cannot serialize a value of type {_type_name(v)}")

    # -- decoding --------------------------------------------------------------------------------
    def loads(self, text: str | bytes) -> Any:
        """Decode text produced by :meth:`dumps` (``bytes`` holding UTF-8 are accepted too)."""
        if isinstance(text, str):
            tagged = TAG in text
        elif isinstance(text, bytes | bytearray | memoryview):
            text = bytes(text)
            tagged = _TAG_BYTES in text
        else:
            raise SerializationError(
                f"cannot decode a {_type_name(text)}: expected str or bytes holding JSON"
            )
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(
                f"cannot decode stored value: not valid JSON ({exc})"
            ) from None
        if not tagged:
            return value
        try:
            return self._dec(value)
        except SerializationError:
            raise
        except RecursionError:
            raise SerializationError("cannot decode stored value: nested too deeply") from None

    def _dec(self, v: Any) -> Any:
        # The tree comes fresh from orjson.loads, so it is safe to rebuild it in place.
        t = type(v)
        if t is dict:
            if TAG in v:
                return self._untag(v)
            for k, item in v.items():
                ti = type(item)
                if ti is dict or ti is list:
                    v[k] = self._dec(item)
        elif t is list:
            for i, item in enumerate(v):
                ti = type(item)
                if ti is dict or ti is list:
                    v[i] = self._dec(item)
        return v

    def _untag(self, d: dict[str, Any]) -> Any:
        kind = d[TAG]
        payload = d.get("v")
        try:
            if kind == "esc":
                if not isinstance(payload, dict):
                    raise TypeError("payload is not an object")
                for k, item in payload.items():
                    payload[k] = self._dec(item)
                return payload
            if kind in _COLLECTIONS:
                if not isinstance(payload, list):
                    raise TypeError("payload is not an array")
                return _COLLECTIONS[kind](self._dec(item) for item in payload)
            if kind == "obj":
                return self._decode_obj(d)
            decode = _SIMPLE_DECODERS.get(kind)
            if decode is None:
                raise SerializationError(f"cannot decode stored value: unknown type tag {kind!r}")
            return decode(payload)
        except (TypeError, ValueError, OverflowError, InvalidOperation, binascii.Error) as exc:
            if isinstance(exc, SerializationError):
                raise
            raise SerializationError(
                f"cannot decode stored value: malformed {kind!r} tag ({exc})"
            ) from None

    def _decode_obj(self, d: dict[str, Any]) -> Any:
        name, payload = d.get("t"), d.get("v")
        if not isinstance(name, str) or not isinstance(payload, dict):
            raise TypeError("needs a type name and an object of fields")
        fields = {k: self._dec(item) for k, item in payload.items()}
        cls = self.registry.lookup(name)
        if cls is None:
            return fields  # unregistered here: the fields are the best we can give
        if issubclass(cls, BaseModel):
            return cls.model_validate(fields)
        init = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        obj = cls(**{k: val for k, val in fields.items() if k in init})
        for k, val in fields.items():
            if k not in init:
                object.__setattr__(obj, k, val)
        return obj


def _fields_of(obj: Any) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _enc_bytes(v: bytes | bytearray | memoryview) -> dict[str, Any]:
    return {TAG: "bytes", "v": base64.b64encode(bytes(v)).decode("ascii")}


def _enc_td(v: timedelta) -> dict[str, Any]:
    return {TAG: "td", "v": [v.days, v.seconds, v.microseconds]}


# Exact-type encoders for leaf values; datetime must precede its base class date.
_SIMPLE_ENCODERS: dict[type, Callable[[Any], Any]] = {
    datetime: lambda v: {TAG: "dt", "v": v.isoformat()},
    date: lambda v: {TAG: "date", "v": v.isoformat()},
    time: lambda v: {TAG: "time", "v": v.isoformat()},
    timedelta: _enc_td,
    uuid.UUID: lambda v: {TAG: "uuid", "v": str(v)},
    Decimal: lambda v: {TAG: "dec", "v": str(v)},
    bytes: _enc_bytes,
    bytearray: _enc_bytes,
    memoryview: _enc_bytes,
}


def _dec_int(v: Any) -> int:
    if not isinstance(v, str):
        raise TypeError("payload is not text")
    return int(v, 16)


def _dec_float(v: Any) -> float:
    if v not in ("nan", "inf", "-inf"):
        raise ValueError(f"not a non-finite float: {v!r}")
    return float(v)


def _dec_td(v: Any) -> timedelta:
    days, seconds, micros = v
    return timedelta(days=days, seconds=seconds, microseconds=micros)


def _text(fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    def decode(v: Any) -> Any:
        if not isinstance(v, str):
            raise TypeError("payload is not text")
        return fn(v)

    return decode


_SIMPLE_DECODERS: dict[str, Callable[[Any], Any]] = {
    "int": _dec_int,
    "float": _dec_float,
    "dt": _text(datetime.fromisoformat),
    "date": _text(date.fromisoformat),
    "time": _text(time.fromisoformat),
    "td": _dec_td,
    "uuid": _text(uuid.UUID),
    "dec": _text(Decimal),
    "bytes": _text(lambda s: base64.b64decode(s.encode("ascii"), validate=True)),
}

_COLLECTIONS: dict[str, Callable[[Any], Any]] = {"set": set, "fset": frozenset, "tuple": tuple}


def _describe_orjson_error(prepared: Any, exc: Exception) -> str:
    """Explain an orjson failure, locating a bad string when that was the cause."""
    where = _find_bad_str(prepared, "value")
    if where is not None:
        return f"cannot serialize a str that is not valid UTF-8 (lone surrogate) at {where}"
    return f"cannot serialize value: {exc}"


def _find_bad_str(v: Any, path: str) -> str | None:
    if isinstance(v, str):
        try:
            v.encode()
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(v, dict):
        for k, item in v.items():
            found = _find_bad_str(k, f"{path}[{k!r}]") or _find_bad_str(item, f"{path}[{k!r}]")
            if found:
                return found
    if isinstance(v, list):
        for i, item in enumerate(v):
            found = _find_bad_str(item, f"{path}[{i}]")
            if found:
                return found
    return None


_default = JsonSerializer()


def dumps(value: Any) -> str:
    """Encode ``value`` with the default :class:`JsonSerializer` (4 MiB limit)."""
    return _default.dumps(value)


def loads(text: str | bytes) -> Any:
    """Decode text produced by :func:`dumps`."""
    return _default.loads(text)
