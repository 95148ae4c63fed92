"""Conversion between ``oort.v1.Value`` / ``oort.v1.Event`` and Python values.

=====================  ==========================================================
oort.v1.Value          Python
=====================  ==========================================================
null (or unset)        ``None``
bool_value             ``bool``
int_value (int64)      ``int`` (an ``int`` outside 64 bits cannot be sent)
float_value (double)   ``float``
string_value           ``str``
bytes_value            ``bytes`` (``bytearray`` and ``memoryview`` are sent too)
timestamp_value        ``datetime.datetime``, aware, in UTC (microseconds: Python
                       has no nanoseconds); a naive datetime sent is read as UTC
list_value             ``list`` (a ``tuple`` is sent as a list)
map_value              ``dict`` with ``str`` keys
=====================  ==========================================================

Other numbers are sent by what they claim to be: anything with ``__index__``
(``numpy.int64``, ``IntEnum``) as an int, any other ``numbers.Real`` (``numpy.float32``,
``Fraction``) as a float. Anything else raises ``TypeError``.

These functions sit on the hot path of every call, so they test the exact type
first and fall back to ``isinstance`` only for the rare cases.
"""

from __future__ import annotations

import datetime as _dt
import numbers
from typing import Any, Dict, List, Mapping, Optional

from google.protobuf import json_format
from google.protobuf import struct_pb2

from oort_plugin._proto import value_pb2

__all__ = [
    "Event",
    "from_value",
    "set_value",
    "to_value",
    "event_from_proto",
    "event_to_proto",
    "fill_event",
    "struct_to_dict",
]

_UTC = _dt.timezone.utc
# Kinds whose Python value is the attribute itself.
_PLAIN = frozenset(("string_value", "int_value", "float_value", "bool_value", "bytes_value"))
_NULL = struct_pb2.NULL_VALUE


class Event:
    """One event: ``fields`` (column name → value), ``meta`` (str → str, the
    source's metadata, readable in SQL with ``meta()``) and ``timestamp`` (an aware
    ``datetime``, or ``None`` when the server is to use processing time)."""

    __slots__ = ("fields", "meta", "timestamp")

    def __init__(
        self,
        fields: Optional[Dict[str, Any]] = None,
        meta: Optional[Dict[str, str]] = None,
        timestamp: Optional[_dt.datetime] = None,
    ) -> None:
        self.fields: Dict[str, Any] = {} if fields is None else fields
        self.meta: Dict[str, str] = {} if meta is None else meta
        self.timestamp = timestamp

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.fields, self.meta, self.timestamp) == (other.fields, other.meta, other.timestamp)

    def __repr__(self) -> str:
        return f"Event(fields={self.fields!r}, meta={self.meta!r}, timestamp={self.timestamp!r})"


def from_value(v: "value_pb2.Value") -> Any:
    """The Python value of an ``oort.v1.Value``."""
    kind = v.WhichOneof("kind")
    if kind in _PLAIN:
        return getattr(v, kind)
    if kind is None or kind == "null_value":
        return None
    if kind == "list_value":
        return [from_value(x) for x in v.list_value.values]
    if kind == "map_value":
        return {k: from_value(x) for k, x in v.map_value.fields.items()}
    # timestamp_value
    return v.timestamp_value.ToDatetime(tzinfo=_UTC)


def set_value(msg: "value_pb2.Value", x: Any) -> None:
    """Writes the Python value ``x`` into the (empty) ``oort.v1.Value`` ``msg``.

    Raises ``TypeError`` for a value with no Oort type and ``ValueError`` for an
    int outside 64 bits; ``msg`` may then be partly written."""
    t = type(x)
    if t is str:
        msg.string_value = x
    elif t is int:
        if -0x8000000000000000 <= x <= 0x7FFFFFFFFFFFFFFF:
            msg.int_value = x
        else:
            raise ValueError(f"the integer {x} does not fit in 64 bits")
    elif t is float:
        msg.float_value = x
    elif t is bool:
        msg.bool_value = x
    elif x is None:
        msg.null_value = _NULL
    elif t is dict:
        _set_map(msg, x)
    elif t is list or t is tuple:
        _set_list(msg, x)
    elif t is bytes:
        msg.bytes_value = x
    else:
        _set_other(msg, x)


def _set_list(msg: "value_pb2.Value", xs: Any) -> None:
    lv = msg.list_value
    lv.SetInParent()  # an empty list is still a list, not null
    add = lv.values.add
    for y in xs:
        set_value(add(), y)


def _set_map(msg: "value_pb2.Value", d: Mapping[Any, Any]) -> None:
    mv = msg.map_value
    mv.SetInParent()
    fields = mv.fields
    for k, y in d.items():
        if type(k) is not str and not isinstance(k, str):
            raise TypeError(f"a map key must be a str, not {type(k).__name__}")
        set_value(fields[k], y)


def _set_other(msg: "value_pb2.Value", x: Any) -> None:
    # Subclasses and look-alikes; the exact types were handled by set_value.
    if isinstance(x, bool):
        msg.bool_value = bool(x)
    elif isinstance(x, str):
        msg.string_value = str(x)
    elif isinstance(x, (bytes, bytearray, memoryview)):
        msg.bytes_value = bytes(x)
    elif isinstance(x, _dt.datetime):
        msg.timestamp_value.FromDatetime(x)  # naive → UTC
    elif isinstance(x, Mapping):
        _set_map(msg, x)
    elif isinstance(x, (list, tuple)):
        _set_list(msg, x)
    elif hasattr(x, "__index__"):
        set_value(msg, int(x.__index__()))
    elif isinstance(x, numbers.Real):
        msg.float_value = float(x)
    else:
        raise TypeError(f"a {type(x).__name__} has no Oort type (expected None, bool, int, float, str, "
                        "bytes, datetime, list or dict)")


def to_value(x: Any) -> "value_pb2.Value":
    """A new ``oort.v1.Value`` holding the Python value ``x``."""
    msg = value_pb2.Value()
    set_value(msg, x)
    return msg


def fill_event(msg: "value_pb2.Event", fields: Mapping[str, Any],
               meta: Optional[Mapping[str, str]] = None,
               timestamp: Optional[_dt.datetime] = None) -> None:
    """Writes an event into the (empty) ``oort.v1.Event`` ``msg``."""
    out = msg.fields
    for k, y in fields.items():
        if not isinstance(k, str):
            raise TypeError(f"a field name must be a str, not {type(k).__name__}")
        set_value(out[k], y)
    if meta:
        m = msg.meta
        for k, s in meta.items():
            if not isinstance(k, str) or not isinstance(s, str):
                raise TypeError("meta must map str to str")
            m[k] = s
    if timestamp is not None:
        if not isinstance(timestamp, _dt.datetime):
            raise TypeError(f"an event timestamp must be a datetime, not {type(timestamp).__name__}")
        msg.timestamp.FromDatetime(timestamp)


def event_to_proto(event: Any) -> "value_pb2.Event":
    """An ``oort.v1.Event`` from an :class:`Event` or a ``dict`` of fields."""
    msg = value_pb2.Event()
    if isinstance(event, Event):
        fill_event(msg, event.fields, event.meta, event.timestamp)
    else:
        fill_event(msg, event)
    return msg


def event_from_proto(msg: "value_pb2.Event") -> Event:
    """The :class:`Event` of an ``oort.v1.Event``."""
    fields = {k: from_value(v) for k, v in msg.fields.items()}
    ts = msg.timestamp.ToDatetime(tzinfo=_UTC) if msg.HasField("timestamp") else None
    return Event(fields, dict(msg.meta), ts)


def _integral(x: Any) -> Any:
    # Struct has only doubles; configuration numbers are nearly always meant as ints.
    if type(x) is float and x.is_integer() and abs(x) < 2**53:
        return int(x)
    if type(x) is dict:
        return {k: _integral(y) for k, y in x.items()}
    if type(x) is list:
        return [_integral(y) for y in x]
    return x


def struct_to_dict(s: Optional[struct_pb2.Struct]) -> Dict[str, Any]:
    """A ``google.protobuf.Struct`` (a stream's options, a sink's properties) as a
    ``dict``. Struct carries every number as a double; whole numbers come back as
    ``int`` (``100``, not ``100.0``), the others as ``float``."""
    if s is None:
        return {}
    d: Dict[str, Any] = _integral(json_format.MessageToDict(s))
    return d


def dict_to_struct(d: Mapping[str, Any]) -> struct_pb2.Struct:
    """A ``google.protobuf.Struct`` of a JSON-like ``dict`` (for tests and harnesses)."""
    s = struct_pb2.Struct()
    s.update(dict(d))
    return s


def values_of(msgs: List["value_pb2.Value"]) -> List[Any]:
    """The Python values of a sequence of ``oort.v1.Value``."""
    return [from_value(v) for v in msgs]
