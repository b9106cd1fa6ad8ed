"""The default serializer: JSON via orjson, with type tags for everything else."""

from __future__ import annotations

import binascii
import dataclasses
import enum
from decimal import InvalidOperation
from typing import Any

import orjson
from pydantic import BaseModel

from redkeep.errors import PayloadTooLarge, SerializationError
from redkeep.serialization._exact import count_nones
from redkeep.serialization._tags import (
    COLLECTIONS,
    INT_MAX,
    INT_MIN,
    SIMPLE_DECODERS,
    SIMPLE_ENCODERS,
    describe_orjson_error,
    fields_of,
    type_name,
)
from redkeep.serialization.base import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    TAG,
    TypeRegistry,
    default_registry,
)

__all__ = ["JsonSerializer"]

_TAG_BYTES = TAG.encode()


class _Unsupported(Exception):
    """Internal: raised deep in the walk; each level adds its path segment on the way out."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


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
            _TAG_BYTES in data or count_nones(value, len(data)) != data.count(b"null")
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
            raise SerializationError(describe_orjson_error(prepared, exc)) from None

    def _enc(self, v: Any) -> Any:
        t = type(v)
        if t is str or t is bool or v is None:
            return v
        if t is int:
            return v if INT_MIN <= v <= INT_MAX else {TAG: "int", "v": format(v, "x")}
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
                    raise _Unsupported(f"dict key must be str, got {type_name(k)}")
                t = type(v)
                # Inline checks for the common JSON-native leaves (saves a call per item).
                if t is str or t is bool or v is None:
                    continue
                if t is int and INT_MIN <= v <= INT_MAX:
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
                    raise _Unsupported(f"dict key must be str, got {type_name(k)}")
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
                if t is int and INT_MIN <= v <= INT_MAX:
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
        simple = SIMPLE_ENCODERS.get(t)
        if simple is not None:
            return simple(v)
        name = self.registry.name_of(t)
        if name is not None:
            return {TAG: "obj", "t": name, "v": self._enc_dict_copy(fields_of(v))}
        if t is tuple:
            return self._enc_items("tuple", v)
        if t is set:
            return self._enc_items("set", v)
        if t is frozenset:
            return self._enc_items("fset", v)
        # Subclasses and structured objects, in order of specificity.
        if isinstance(v, enum.Enum):
            return self._enc(v.value)
        for base, enc in SIMPLE_ENCODERS.items():
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
            return self._enc_dict_copy(fields_of(v))
        raise _Unsupported(f"cannot serialize a value of type {type_name(v)}")

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
                f"cannot decode a {type_name(text)}: expected str or bytes holding JSON"
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
            if kind in COLLECTIONS:
                if not isinstance(payload, list):
                    raise TypeError("payload is not an array")
                return COLLECTIONS[kind](self._dec(item) for item in payload)
            if kind == "obj":
                return self._decode_obj(d)
            decode = SIMPLE_DECODERS.get(kind)
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
