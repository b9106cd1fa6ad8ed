"""What every serializer shares: the :class:`Serializer` protocol, the tag key and the registry
of classes that decode back into instances."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from redkeep.errors import SerializationError

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "TAG",
    "Serializer",
    "TypeRegistry",
    "default_registry",
    "register",
]

TAG = "__rk__"
"""Key that marks a tagged (non-JSON-native) value in the encoded text."""

DEFAULT_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""Default payload limit, the same as ``Settings.max_payload_bytes``."""

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
