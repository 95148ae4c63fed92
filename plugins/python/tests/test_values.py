"""Python values ⇄ oort.v1.Value / Event (oort_plugin.values)."""

import datetime as dt
import enum
import fractions
import math

import pytest
from google.protobuf import struct_pb2

from oort_plugin._proto import value_pb2 as V
from oort_plugin.values import (Event, dict_to_struct, event_from_proto, event_to_proto, from_value, struct_to_dict,
                                to_value)

UTC = dt.timezone.utc


def roundtrip(x):
    # Through the wire format too, as the server sees it.
    return from_value(V.Value.FromString(to_value(x).SerializeToString()))


@pytest.mark.parametrize("x", [
    None, True, False, 0, 1, -1, 2**63 - 1, -(2**63), 0.0, -2.5, 1e300, "", "héllo ✓", b"", b"\x00\xff",
    [], [1, "a", None, [2.5, [True]]], {}, {"a": 1, "b": {"c": [1, {"d": None}]}},
    dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
])
def test_roundtrip_keeps_value_and_type(x):
    got = roundtrip(x)
    assert got == x
    assert type(got) is type(x)


def test_each_python_type_has_its_oneof():
    cases = [(None, "null_value"), (True, "bool_value"), (3, "int_value"), (3.0, "float_value"),
             ("s", "string_value"), (b"b", "bytes_value")]
    for x, kind in cases:
        assert to_value(x).WhichOneof("kind") == kind, x
    assert to_value([]).WhichOneof("kind") == "list_value"  # empty, but not null
    assert to_value({}).WhichOneof("kind") == "map_value"
    assert to_value(dt.datetime.now(UTC)).WhichOneof("kind") == "timestamp_value"


def test_unset_value_is_null():
    assert from_value(V.Value()) is None


def test_nan_and_infinity_are_floats():
    assert math.isnan(roundtrip(float("nan")))
    assert roundtrip(float("-inf")) == float("-inf")


def test_int_outside_64_bits_is_refused():
    with pytest.raises(ValueError, match="64 bits"):
        to_value(2**63)
    with pytest.raises(ValueError):
        to_value([1, -(2**63) - 1])


def test_tuples_bytearrays_and_memoryviews_are_sent_as_lists_and_bytes():
    assert roundtrip((1, (2, 3))) == [1, [2, 3]]
    assert roundtrip(bytearray(b"ab")) == b"ab"
    assert roundtrip(memoryview(b"cd")) == b"cd"


def test_number_look_alikes():
    class Color(enum.IntEnum):
        RED = 7

    class Index:
        def __index__(self):
            return 9

    assert roundtrip(Color.RED) == 7 and type(roundtrip(Color.RED)) is int
    assert roundtrip(Index()) == 9
    assert roundtrip(fractions.Fraction(1, 4)) == 0.25


def test_str_subclass_and_mapping_subclass():
    class Name(str):
        pass

    import collections
    assert roundtrip(Name("x")) == "x"
    assert roundtrip(collections.OrderedDict(a=1)) == {"a": 1}


def test_datetimes_naive_is_utc_aware_is_converted_nanoseconds_truncated():
    naive = dt.datetime(2024, 1, 2, 3, 4, 5)
    assert roundtrip(naive) == naive.replace(tzinfo=UTC)
    plus2 = dt.timezone(dt.timedelta(hours=2))
    aware = dt.datetime(2024, 1, 2, 5, 4, 5, tzinfo=plus2)
    got = roundtrip(aware)
    assert got == aware and got.tzinfo == UTC and got.hour == 3
    v = V.Value()
    v.timestamp_value.seconds = 1
    v.timestamp_value.nanos = 123456789
    assert from_value(v) == dt.datetime(1970, 1, 1, 0, 0, 1, 123456, tzinfo=UTC)


def test_values_with_no_oort_type_are_refused():
    for bad in (object(), {1, 2}, 1j, dt.date(2024, 1, 1)):
        with pytest.raises(TypeError, match="no Oort type"):
            to_value(bad)
    with pytest.raises(TypeError, match="map key"):
        to_value({1: "a"})


def test_events_both_ways():
    ts = dt.datetime(2024, 1, 1, tzinfo=UTC)
    e = Event({"a": 1, "b": [None, "x"]}, {"topic": "t/1"}, ts)
    msg = event_to_proto(e)
    assert msg.meta["topic"] == "t/1" and msg.HasField("timestamp")
    assert event_from_proto(V.Event.FromString(msg.SerializeToString())) == e
    plain = event_from_proto(event_to_proto({"n": 1}))
    assert plain == Event({"n": 1}) and plain.timestamp is None and plain.meta == {}
    with pytest.raises(TypeError):
        event_to_proto(Event({"a": 1}, {"k": 1}))
    with pytest.raises(TypeError):
        event_to_proto(Event({"a": 1}, timestamp="now"))


def test_struct_to_dict_gives_ints_for_whole_numbers():
    s = dict_to_struct({"interval_ms": 100, "ratio": 0.5, "name": "x", "on": True, "none": None,
                        "nested": {"k": [1, 2.5]}})
    assert isinstance(s, struct_pb2.Struct)
    d = struct_to_dict(s)
    assert d == {"interval_ms": 100, "ratio": 0.5, "name": "x", "on": True, "none": None, "nested": {"k": [1, 2.5]}}
    assert type(d["interval_ms"]) is int and type(d["nested"]["k"][0]) is int
    assert struct_to_dict(struct_pb2.Struct()) == {}
    assert struct_to_dict(None) == {}
