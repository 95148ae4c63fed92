"""The scenario every client proves against the real oortd: a grpc stream, a
rule that filters and converts, events published, the rule's output tailed, and
honest error codes."""

from __future__ import annotations

import datetime
import queue
import threading
from typing import Any

import grpc
import pytest

from conftest import Server
from oort.v1 import event_pb2, rule_pb2, stream_pb2
from oort_client import Oort, OortError, from_value, to_value
from oort_client._client import TAIL_BATCH

STREAM_SQL = 'CREATE STREAM sensors (temperature FLOAT, deviceId STRING) WITH (TYPE="grpc", DATASOURCE="sensors")'
RULE_SQL = "SELECT temperature * 1.8 + 32 AS f, deviceId FROM sensors WHERE temperature > 20"


def test_stream_rule_publish_tail(oort: Oort) -> None:
    stream = oort.streams.create(STREAM_SQL)
    assert stream.name == "sensors"
    assert stream.kind == stream_pb2.STREAM_KIND_STREAM
    assert [(f.name, f.type) for f in stream.fields] == [("temperature", "FLOAT"), ("deviceId", "STRING")]
    assert stream.options["TYPE"] == "grpc"
    assert [s.name for s in oort.streams.list()] == ["sensors"]

    rule = oort.rules.create("hot", RULE_SQL, actions=["grpc"])
    assert rule.id == "hot"
    assert [a.type for a in rule.actions] == ["grpc"]
    assert oort.rules.get("hot").sql == RULE_SQL
    assert [(r.rule.id, r.state) for r in oort.rules.list()] == [("hot", rule_pb2.RULE_STATE_RUNNING)]

    rows: queue.Queue[Any] = queue.Queue()
    tail = oort.rules.tail("hot")

    def read() -> None:
        try:
            for row in tail:
                rows.put(row)
        except OortError as error:
            rows.put(error)

    threading.Thread(target=read, daemon=True).start()

    accepted = oort.events.publish(
        "sensors",
        [
            {"temperature": 25.0, "deviceId": "a"},
            {"temperature": 10.0, "deviceId": "b"},  # filtered out: not above 20
            {"temperature": 30, "deviceId": "c"},  # an int for a FLOAT column is converted
            {"temperature": 20.0, "deviceId": "d"},  # filtered out: not above 20
            {"temperature": 21.5, "deviceId": "e"},
        ],
    )
    assert accepted == 5

    got = [rows.get(timeout=10) for _ in range(3)]
    assert got == [
        {"f": pytest.approx(77.0), "deviceId": "a"},
        {"f": pytest.approx(86.0), "deviceId": "c"},
        {"f": pytest.approx(70.7), "deviceId": "e"},
    ]
    assert all(isinstance(row["f"], float) for row in got)
    with pytest.raises(queue.Empty):
        rows.get(timeout=0.5)  # nothing else came out

    status = oort.rules.status("hot")
    assert status.state == rule_pb2.RULE_STATE_RUNNING
    ops = {op.name: op for op in status.operators}
    assert ops["op_filter_0"].records_in_total == 5
    assert ops["op_filter_0"].records_out_total == 3

    oort.rules.stop("hot")
    assert oort.rules.status("hot").state == rule_pb2.RULE_STATE_STOPPED
    oort.rules.start("hot")
    assert oort.rules.status("hot").state == rule_pb2.RULE_STATE_RUNNING
    tail.cancel()

    oort.rules.delete("hot")
    with pytest.raises(OortError) as missing_rule:
        oort.rules.get("hot")
    assert missing_rule.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(OortError) as missing_tail:
        oort.rules.tail("hot")
    assert missing_tail.value.code == grpc.StatusCode.NOT_FOUND
    oort.streams.delete("sensors")


class _TailResponses(grpc.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    """Records, at the gRPC level, the TailRule requests and how many responses the wrapper read."""

    def __init__(self) -> None:
        self.requests: list[rule_pb2.TailRuleRequest] = []
        self.responses = 0

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self.requests.append(request)
        return _Counted(continuation(details, request), self)


class _Counted:
    """A server-streaming call whose responses are counted as they are read."""

    def __init__(self, call: Any, counter: _TailResponses) -> None:
        self._call = call
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        response = next(self._call)
        self._counter.responses += 1
        return response


def test_tail_reads_results_in_batches_and_yields_them_one_by_one(server: Server) -> None:
    counter = _TailResponses()
    with server.client(channel=grpc.intercept_channel(grpc.insecure_channel(server.addr), counter)) as oort:
        oort.streams.create('CREATE STREAM burst (n BIGINT) WITH (TYPE="grpc", DATASOURCE="burst")')
        # The window hands its 1,000 rows to the tail at once: they come in
        # ceil(1000 / TAIL_BATCH) responses, where an unbatched tail takes 1,000.
        oort.rules.create("burst", "SELECT n FROM burst GROUP BY COUNTWINDOW(1000)", actions=["grpc"])
        json_tail = oort.rules.tail("burst")
        typed_tail = oort.rules.tail("burst", typed=True)
        assert oort.events.publish("burst", ({"n": i} for i in range(1000))) == 1000
        expected = [{"n": i} for i in range(1000)]
        assert [next(json_tail) for _ in range(1000)] == expected
        assert [next(typed_tail) for _ in range(1000)] == expected
        json_tail.cancel()
        typed_tail.cancel()
        assert [(r.max_batch, r.encoding) for r in counter.requests] == [
            (TAIL_BATCH, rule_pb2.TAIL_ENCODING_JSON),
            (TAIL_BATCH, rule_pb2.TAIL_ENCODING_UNSPECIFIED),
        ]
        assert counter.responses == 2 * -(-1000 // TAIL_BATCH) < 1000
        oort.rules.delete("burst")
        oort.streams.delete("burst")


class _PublishRequests(grpc.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    """Records, at the gRPC level, the PublishRequests the wrapper sent."""

    def __init__(self) -> None:
        self.requests: list[event_pb2.PublishRequest] = []

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        def recorded() -> Any:
            for request in requests:
                self.requests.append(request)
                yield request

        return continuation(details, recorded())


def test_publish_sends_json_where_it_can_and_typed_events_where_it_cannot(server: Server) -> None:
    recorder = _PublishRequests()
    with server.client(channel=grpc.intercept_channel(grpc.insecure_channel(server.addr), recorder)) as oort:
        oort.streams.create('CREATE STREAM mixed (n BIGINT, b BYTEA, at DATETIME) WITH (TYPE="grpc", DATASOURCE="mixed")')
        oort.rules.create("mixed", "SELECT n, b, at FROM mixed", actions=["grpc"])
        tail = oort.rules.tail("mixed", typed=True)
        at = datetime.datetime(2026, 12, 1, 12, 30, tzinfo=datetime.timezone.utc)
        plain = [{"n": i} for i in range(300)]  # two batches (256 + 44), both JSON
        assert oort.events.publish("mixed", [*plain, {"n": 300, "b": b"\x00\xff", "at": at}]) == 301
        # The last batch holds bytes and a datetime, which JSON cannot carry: typed.
        assert [(len(r.json) > 0, len(r.events)) for r in recorder.requests] == [(True, 0), (False, 45)]
        rows = [next(tail) for _ in range(301)]
        tail.cancel()
        assert [row["n"] for row in rows] == list(range(301))
        assert rows[-1] == {"n": 300, "b": b"\x00\xff", "at": at}
        # A JSON tail gives the same row as a JSON sink writes it.
        json_tail = oort.rules.tail("mixed")
        oort.events.publish("mixed", [{"n": 301, "b": b"\x00\xff", "at": at}])
        assert next(json_tail) == {"n": 301, "b": "AP8=", "at": "2026-12-01T12:30:00Z"}
        with pytest.raises(TypeError):
            json_tail.next_event()
        json_tail.cancel()


def test_error_codes(oort: Oort) -> None:
    with pytest.raises(OortError) as missing:
        oort.streams.get("nope")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    assert "nope" in missing.value.message

    with pytest.raises(OortError) as bad:
        oort.streams.create('CREATE STREAM bad (t FLAOT) WITH (DATASOURCE="x")')
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "line 1, column 22" in bad.value.message, bad.value.message
    assert "FLAOT" in bad.value.message

    with pytest.raises(OortError) as bad_rule:
        oort.rules.create("r", "SELECT FROM WHERE", actions=["log"])
    assert bad_rule.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "line 1" in bad_rule.value.message, bad_rule.value.message

    with pytest.raises(OortError) as no_stream:
        oort.events.publish("absent", [{"x": 1}])
    assert no_stream.value.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        -(2**63),
        1.5,
        "text",
        b"\x00\xff",
        [1, "a", [2.5]],
        {"a": {"b": False}},
        [],
        {},
        [{}, [], None],
        datetime.datetime(2026, 12, 1, 12, 30, tzinfo=datetime.timezone.utc),
    ],
)
def test_values_round_trip(value: Any) -> None:
    assert from_value(to_value(value)) == value


def test_bool_is_not_an_int() -> None:
    assert to_value(True).WhichOneof("kind") == "bool_value"
    assert to_value(1).WhichOneof("kind") == "int_value"
