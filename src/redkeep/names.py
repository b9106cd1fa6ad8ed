"""The one naming rule for caches and queues, shared by the Python API, HTTP and the CLI.

A name is 1 to :data:`MAX_NAME_LENGTH` characters from ``A-Z a-z 0-9 _ . -`` and starts with a
letter, a digit or ``_``. The rule keeps every name usable everywhere: inside Redis keys (no
``:``, braces or glob characters), as one URL path segment (no ``/``, and never ``.`` or
``..``, which HTTP clients collapse) and as a CLI argument (never an option-like ``-x``).
Validation uses ``fullmatch``: a trailing newline is a bad name, not a new one.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from redkeep.errors import InvalidName

__all__ = [
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "NAME_RE",
    "NAME_RULE",
    "check_name",
    "is_valid_name",
]

MAX_NAME_LENGTH = 100
NAME_PATTERN = f"^[A-Za-z0-9_][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}$"
"""The rule as a regular expression (for JSON Schema / OpenAPI, where ``$`` means the end)."""
NAME_RULE = (
    f"1-{MAX_NAME_LENGTH} characters from A-Z a-z 0-9 _ . -, starting with a letter, digit or _"
)
NAME_RE = re.compile(NAME_PATTERN[1:-1])
"""The rule compiled without anchors: use ``NAME_RE.fullmatch(text)``."""


def is_valid_name(name: object) -> TypeGuard[str]:
    """True when ``name`` is a str that follows the rule."""
    return type(name) is str and NAME_RE.fullmatch(name) is not None


def check_name(name: object, kind: str = "name") -> str:
    """Return ``name`` when it follows the rule, else raise :class:`InvalidName` saying why.

    ``kind`` words the message (``"cache name"``, ``"queue name"``).
    """
    if is_valid_name(name):
        return name
    raise InvalidName(f"invalid {kind} {name!r}: use {NAME_RULE}")
