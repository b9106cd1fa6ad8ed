"""The fast path's check that orjson alone encoded a value exactly (see the package docs).

orjson silently turns tuples into lists, UUIDs and datetimes into strings and NaN into null. A
value made only of JSON-native types encodes exactly, and the number of ``None`` values in it
then equals the number of ``null`` tokens in the text (a NaN written as null breaks the count).
"""

from __future__ import annotations

import gc
from itertools import compress
from operator import countOf
from typing import Any

__all__ = ["count_nones"]

_NoneType = type(None)
_LEAVES = frozenset({str, int, float, bool, _NoneType})
_NODES = _LEAVES | {dict, list}
_is_container = frozenset({dict, list}).__contains__
_SMALL_PAYLOAD = 2048  # below this, a plain loop beats the per-level C calls
_SCALARS = frozenset({str, int, float, bool})


def count_nones(v: Any, size: int) -> int:
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
