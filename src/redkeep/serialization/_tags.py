"""Encoders and decoders of the tagged kinds, and error descriptions."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from redkeep.serialization.base import TAG

# orjson writes ints in [-2**63, 2**64 - 1]; larger ones are tagged.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


def type_name(value: Any) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def fields_of(obj: Any) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _enc_bytes(v: bytes | bytearray | memoryview) -> dict[str, Any]:
    return {TAG: "bytes", "v": base64.b64encode(bytes(v)).decode("ascii")}


def _enc_td(v: timedelta) -> dict[str, Any]:
    return {TAG: "td", "v": [v.days, v.seconds, v.microseconds]}


# Exact-type encoders for leaf values; datetime must precede its base class date.
SIMPLE_ENCODERS: dict[type, Callable[[Any], Any]] = {
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


SIMPLE_DECODERS: dict[str, Callable[[Any], Any]] = {
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

COLLECTIONS: dict[str, Callable[[Any], Any]] = {"set": set, "fset": frozenset, "tuple": tuple}


def describe_orjson_error(prepared: Any, exc: Exception) -> str:
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
