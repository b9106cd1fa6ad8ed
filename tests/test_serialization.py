"""Round-trip, tagging and error behaviour of redkeep.serialization."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import redkeep
from redkeep import serialization
from redkeep.errors import PayloadTooLarge, SerializationError
from redkeep.serialization import (
    TAG,
    JsonSerializer,
    Serializer,
    TypeRegistry,
    _exact,
    dumps,
    loads,
)


def same(a: Any, b: Any) -> bool:
    """Exact equality: same types all the way down, NaN equals NaN, -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, datetime | time):
        return a == b and a.isoformat() == b.isoformat()
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


offsets = st.integers(min_value=-23 * 3600 - 3599, max_value=23 * 3600 + 3599).map(
    lambda s: timezone(timedelta(seconds=s))
)
naive_or_aware = st.one_of(st.datetimes(), st.datetimes(timezones=offsets))
hashables = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=10),
    st.uuids(),
    st.dates(),
    st.binary(max_size=10),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**200) | st.integers(max_value=-(2**63) - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    naive_or_aware,
    st.dates(),
    st.times(timezones=st.none() | offsets),
    st.timedeltas(),
    st.uuids(),
    st.decimals(allow_nan=False),
    st.binary(),
    st.sets(hashables, max_size=4),
    st.frozensets(hashables, max_size=4),
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=8) | st.just(TAG), children, max_size=5),
    ),
    max_leaves=30,
)
# A dict with the tag as a key is escaped on the way out (tested below), so it is not plain JSON.
# Hypothesis mines string literals from the code under test, so it does propose the tag.
_plain_keys = st.text(max_size=8).filter(lambda k: k != TAG)
json_native = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(_plain_keys, children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_any_supported_value_round_trips_exactly(value: Any) -> None:
    text = dumps(value)
    assert isinstance(text, str)
    assert same(loads(text), value)


@settings(max_examples=200, deadline=None)
@given(json_native)
def test_json_native_values_are_written_as_plain_json(value: Any) -> None:
    text = dumps(value)
    assert TAG not in text
    assert json.loads(text) == value
    assert same(loads(text), value)


@given(st.dictionaries(st.just(TAG) | st.text(max_size=4), st.text(max_size=6), min_size=1))
def test_user_dict_using_the_tag_key_round_trips(value: dict[str, str]) -> None:
    value[TAG] = "dt"  # looks exactly like a tag, must stay user data
    value["v"] = "2024-01-01T00:00:00"
    assert same(loads(dumps(value)), value)


def test_datetime_naive_stays_naive_and_aware_keeps_offset_and_microseconds() -> None:
    naive = datetime(2024, 2, 29, 23, 59, 59, 123456)
    aware = datetime(2024, 2, 29, 23, 59, 59, 7, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    back_naive, back_aware = loads(dumps([naive, aware]))
    assert back_naive == naive and back_naive.tzinfo is None
    assert back_aware == aware and back_aware.utcoffset() == timedelta(hours=-5, minutes=-30)
    assert back_aware.microsecond == 7


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_round_trip_via_a_tag(value: float) -> None:
    text = dumps({"x": value, "n": None})
    assert TAG in text  # JSON has no NaN: a tag, not null
    back = loads(text)["x"]
    assert same(back, value)


def test_none_next_to_finite_floats_is_not_mistaken_for_nan() -> None:
    value = {"a": None, "b": [1.5, None, 2.5], "s": "null"}
    assert loads(dumps(value)) == value


def test_big_ints_round_trip_beyond_4300_digits() -> None:
    big = 7**6000  # str(big) would hit Python's int-to-str digit limit
    assert loads(dumps({"n": big, "m": -big})) == {"n": big, "m": -big}
    assert loads(dumps(2**64 - 1)) == 2**64 - 1
    assert TAG not in dumps(2**64 - 1)


def test_containers_keep_their_types() -> None:
    value = {"t": (1, (2, [3])), "s": {1, "a"}, "f": frozenset({(1, 2)}), "b": b"\x00\xff"}
    back = loads(dumps(value))
    assert back == value
    assert type(back["t"]) is tuple and type(back["t"][1]) is tuple
    assert type(back["s"]) is set and type(back["f"]) is frozenset
    assert type(back["b"]) is bytes


@dataclasses.dataclass
class Point:
    x: int
    y: int
    when: datetime = datetime(2020, 1, 1)
    note: str = dataclasses.field(default="", init=False)


class User(BaseModel):
    name: str
    joined: date
    tags: set[str] = set()


def test_dataclasses_and_models_encode_as_dicts_when_unregistered() -> None:
    s = JsonSerializer(registry=TypeRegistry())
    p = Point(1, 2)
    assert s.loads(s.dumps(p)) == {"x": 1, "y": 2, "when": datetime(2020, 1, 1), "note": ""}
    u = User(name="ada", joined=date(2020, 1, 2), tags={"a"})
    assert s.loads(s.dumps({"u": u})) == {
        "u": {"name": "ada", "joined": date(2020, 1, 2), "tags": {"a"}}
    }


def test_registered_classes_decode_back_to_instances() -> None:
    registry = TypeRegistry()
    registry.register(Point)
    registry.register(User, name="user")
    s = JsonSerializer(registry=registry)
    p = Point(3, 4)
    p.note = "set after init"
    u = User(name="ada", joined=date(2020, 1, 2), tags={"x"})
    back = s.loads(s.dumps({"p": p, "users": [u]}))
    assert back == {"p": p, "users": [u]}
    assert back["p"].note == "set after init"
    # A reader without the registration still gets the fields.
    assert JsonSerializer(registry=TypeRegistry()).loads(s.dumps(u))["name"] == "ada"


def test_register_works_as_decorator_on_default_registry() -> None:
    @serialization.register
    @dataclasses.dataclass(frozen=True)
    class Money:
        amount: Decimal
        currency: str

    m = Money(Decimal("9.99"), "EUR")
    assert loads(dumps(m)) == m


def test_register_rejects_plain_classes_and_name_clashes() -> None:
    registry = TypeRegistry()
    with pytest.raises(SerializationError, match="dataclass or pydantic"):
        registry.register(object)
    registry.register(Point, name="thing")
    with pytest.raises(SerializationError, match="already registered"):
        registry.register(User, name="thing")


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def test_enums_and_builtin_subclasses_encode_as_their_value() -> None:
    class Name(str):
        pass

    assert loads(dumps({"c": Color.RED, "l": Level.HIGH, "n": Name("x")})) == {
        "c": "red",
        "l": 3,
        "n": "x",
    }


@pytest.mark.parametrize(
    ("value", "where", "type_name"),
    [
        ({"a": [1, 2, 3, object()]}, "value['a'][3]", "object"),
        ([{"k": {1, 2, lambda: 0}}], "value[0]['k']{...}", "function"),
        ({"d": {1: "int key"}}, "value['d'][1]", "int"),
        ((1, complex(1, 2)), "value[1]", "complex"),
    ],
)
def test_unsupported_values_name_type_and_location(value: Any, where: str, type_name: str) -> None:
    with pytest.raises(SerializationError) as info:
        dumps(value)
    message = str(info.value)
    assert message.endswith(f"at {where}")
    assert type_name in message


def test_lone_surrogate_is_reported_with_its_location() -> None:
    with pytest.raises(SerializationError, match=r"surrogate.*value\['s'\]\[1\]"):
        dumps({"s": ["ok", "\ud800"]})


def test_reference_cycle_is_a_serialization_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="cycle"):
        dumps(loop)


def test_payload_limit() -> None:
    s = JsonSerializer(max_payload_bytes=100)
    assert s.loads(s.dumps("x" * 90)) == "x" * 90
    with pytest.raises(PayloadTooLarge) as info:
        s.dumps("x" * 200)
    assert info.value.size == 202 and info.value.limit == 100
    with pytest.raises(PayloadTooLarge):
        s.dumps({"t": ("x" * 200,)})  # tagged path checks too
    assert serialization._default.max_payload_bytes == 4 * 1024 * 1024


def test_from_settings_uses_max_payload_bytes() -> None:
    from redkeep.config import Settings

    assert JsonSerializer.from_settings(Settings(max_payload_bytes=123)).max_payload_bytes == 123


def test_bad_limit_is_rejected() -> None:
    with pytest.raises(SerializationError, match="max_payload_bytes"):
        JsonSerializer(max_payload_bytes=0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ('{"__rk__": "nope", "v": 1}', "unknown type tag 'nope'"),
        ('{"__rk__": "dt", "v": "yesterday"}', "malformed 'dt' tag"),
        ('{"__rk__": "int", "v": 12}', "malformed 'int' tag"),
        ('{"__rk__": "bytes", "v": "***"}', "malformed 'bytes' tag"),
        ('{"__rk__": "set", "v": [[1]]}', "malformed 'set' tag"),
        ('{"__rk__": "esc", "v": 3}', "malformed 'esc' tag"),
        ('{"__rk__": "float", "v": "1.5"}', "malformed 'float' tag"),
    ],
)
def test_decoding_garbage_raises_serialization_error(text: str | bytes, match: str) -> None:
    with pytest.raises(SerializationError, match=match):
        loads(text)


def test_loads_rejects_non_text() -> None:
    with pytest.raises(SerializationError, match="expected str or bytes"):
        loads(42)  # type: ignore[arg-type]


def test_loads_accepts_bytes_and_plain_json_from_other_writers() -> None:
    assert loads(b'{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    assert loads(orjson.dumps({"x": 1}).decode()) == {"x": 1}


def test_json_serializer_satisfies_protocol() -> None:
    assert isinstance(JsonSerializer(), Serializer)


def test_no_pickle_anywhere_in_the_package() -> None:
    import pathlib

    src = pathlib.Path(redkeep.__file__).parent
    offenders = [p for p in src.rglob("*.py") if "import pickle" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_encoding_does_not_modify_the_input() -> None:
    value = {"a": [1, (2, 3)], "b": {"c": datetime(2020, 1, 1, tzinfo=UTC)}}
    snapshot = repr(value)
    dumps(value)
    assert repr(value) == snapshot


def test_large_values_with_tagged_items_deep_inside_round_trip() -> None:
    # Over 2 KB the plain-JSON check runs level by level; it must still spot every kind.
    filler = [{"id": i, "name": f"item {i}", "price": i * 1.5, "parent": None} for i in range(60)]
    for odd in [(1, 2), math.nan, uuid.UUID(int=7), Color.RED, 2**70, {TAG: 1}, b"x"]:
        value = {"items": [*filler, {"deep": [odd]}]}
        back = loads(dumps(value))
        expected = "red" if odd is Color.RED else odd
        assert same(back["items"][-1]["deep"][0], expected)
        assert back["items"][:-1] == filler


@settings(max_examples=200, deadline=None)
@given(values)
def test_level_by_level_check_agrees_on_any_value(value: Any) -> None:
    # Force the check used for large payloads onto small generated values.
    with mock.patch.object(_exact, "_SMALL_PAYLOAD", 0):
        text = dumps(value)
    assert same(loads(text), value)
    assert text == dumps(value)  # both checks choose the same encoding
