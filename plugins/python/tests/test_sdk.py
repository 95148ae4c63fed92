"""The SDK in-process: the registry, oort_plugin.testing, and PluginServicer on a
real gRPC server with plugins made to fail in every way the protocol names."""

import queue
import shutil
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
import pytest

import oort_plugin
from oort_plugin._proto import plugin_pb2 as P
from oort_plugin._proto import plugin_pb2_grpc
from oort_plugin.server import PluginServicer
from oort_plugin.testing import CallError, call, run_sink, run_source
from oort_plugin.values import dict_to_struct, event_to_proto, from_value, to_value

from plugin_process import EXAMPLE

sys.path.insert(0, EXAMPLE)
import main as pydemo  # noqa: E402


# Test plugins ---------------------------------------------------------------

CLOSED = []  # names of instances whose close() ran


class Div(oort_plugin.Function):
    """Divides."""

    def validate(self, args):
        if len(args) != 2:
            raise ValueError("div takes 2 arguments")

    def exec(self, args, ctx):
        if args[1] == "object":
            return object()  # no Oort type: this row fails
        return args[0] / args[1]


class Gen(oort_plugin.Source):
    def configure(self, datasource, conf):
        self.n = conf.get("n", 3)
        self.name = datasource

    def open(self, ctx):
        for i in range(self.n):
            yield {"i": i} if i % 2 == 0 else oort_plugin.Event({"i": i}, {"m": "odd"})

    def close(self, ctx):
        CLOSED.append(("gen", self.name))


class Broken(oort_plugin.Source):
    def open(self, ctx):
        ctx.emit({"a": 1})
        raise RuntimeError("the device went away")


class Callbacks(oort_plugin.Source):
    """Emits from a thread of its own, as a subscription callback would."""

    def configure(self, datasource, conf):
        self.name = datasource

    def open(self, ctx):
        def feed():
            i = 0
            while not ctx.stopped:
                try:
                    ctx.emit({"i": i})
                except oort_plugin.SourceStopped:
                    return
                i += 1
                time.sleep(0.005)

        self.thread = threading.Thread(target=feed, daemon=True)
        self.thread.start()
        ctx.wait()

    def close(self, ctx):
        CLOSED.append(("callbacks", self.name))


GATE = threading.Event()  # Gated emits once it is set


class Gated(oort_plugin.Source):
    """Produces nothing until GATE is set, then one event."""

    def open(self, ctx):
        while not GATE.wait(0.05):
            if ctx.stopped:
                return
        ctx.emit({"gated": True})


class Flaky(oort_plugin.Sink):
    def configure(self, conf):
        if "fail_on" not in conf:
            raise ValueError("fail_on is required")
        self.fail_on = conf["fail_on"]
        self.got = []

    def collect(self, ctx, events):
        if any(e.fields.get("a") == self.fail_on for e in events):
            raise IOError("disk full")
        self.got.extend(e.fields for e in events)

    def close(self, ctx):
        CLOSED.append(("flaky", ctx.rule_id))


CONFIG = oort_plugin.plugin(
    "t", "0.0.1",
    functions={"div": Div},
    sources={"gen": Gen, "broken": Broken, "callbacks": Callbacks, "gated": Gated},
    sinks={"flaky": Flaky},
)


@pytest.fixture
def served():
    """PluginServicer(CONFIG) on a gRPC server on a Unix socket: (stub, servicer, shutdowns)."""
    d = tempfile.mkdtemp(prefix="oort-sdk-")
    shutdowns = []
    servicer = PluginServicer(CONFIG, grace_s=2.0, on_shutdown=lambda: shutdowns.append(1))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    plugin_pb2_grpc.add_PluginServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{d}/s")
    server.start()
    channel = grpc.insecure_channel(f"unix:{d}/s")
    CLOSED.clear()
    GATE.clear()
    try:
        yield plugin_pb2_grpc.PluginServiceStub(channel), servicer, shutdowns
    finally:
        channel.close()
        server.stop(0).wait()
        shutil.rmtree(d, ignore_errors=True)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# Registry -------------------------------------------------------------------


def test_registry_describes_and_checks_its_symbols():
    assert CONFIG.symbols == [("function", "div", False, "Divides."), ("source", "gen", False, ""),
                              ("source", "broken", False, ""),
                              ("source", "callbacks", False, "Emits from a thread of its own, as a subscription "
                                                              "callback would."),
                              ("source", "gated", False, "Produces nothing until GATE is set, then one event."),
                              ("sink", "flaky", False, "")]
    assert CONFIG.function("DIV") is CONFIG.function("div")
    assert CONFIG.source("GEN") is Gen and CONFIG.sink("nope") is None
    with pytest.raises(TypeError, match="Function"):
        oort_plugin.plugin("x", "1", functions={"f": lambda: 3})
    with pytest.raises(TypeError, match="factory"):
        oort_plugin.plugin("x", "1", sources={"s": Gen()})  # an instance, not a factory
    with pytest.raises(TypeError, match="Sink"):
        oort_plugin.plugin("x", "1", sinks={"s": Gen})


# oort_plugin.testing with the pydemo example --------------------------------


def test_harness_runs_pydemo_symbols(tmp_path):
    assert call(pydemo.Upper(), [["a"], [None], [1]]) == ["A", None, CallError("py_upper: expects a string, got int")]
    assert call(pydemo.Total(), [[[1, 2]], [[0.5]]]) == [3, 0.5]
    with pytest.raises(ValueError, match="1 argument"):
        call(pydemo.Upper(), [["a", "b"]])
    events = run_source(pydemo.Counter, "t", {"interval_ms": 1, "count": 3}, events=3)
    assert [e.fields for e in events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    path = tmp_path / "o.jsonl"
    assert run_sink(pydemo.JsonFile, {"path": str(path)}, [[{"a": 1}], [{"b": b"\x01"}]]) == ["", ""]
    assert path.read_text() == '{"a": 1}\n{"b": "AQ=="}\n'


# Invoke ---------------------------------------------------------------------


def next_within(call, timeout=5.0):
    """The next response of a stream, read on a thread, or an AssertionError."""
    box = queue.Queue()

    def reader():
        try:
            box.put(next(call))
        except Exception as e:  # noqa: BLE001 - handed to the test
            box.put(e)

    threading.Thread(target=reader, daemon=True).start()
    try:
        got = box.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no response within {timeout} s") from None
    if isinstance(got, Exception):
        raise got
    return got


def assert_source_ack(call):
    ack = next_within(call)
    assert len(ack.events) == 0, ack


def invoke(stub, arg_count, rows):
    """One batch (batch_id 1) over a new Invoke stream: checks the open
    acknowledgement first and returns the responses after it."""
    def requests():
        yield P.InvokeRequest(open=P.InvokeOpen(function="div", rule_id="r", arg_count=arg_count))
        yield P.InvokeRequest(batch=P.InvokeBatch(batch_id=1, rows=[P.ArgRow(args=[to_value(a) for a in r])
                                                                    for r in rows]))
    responses = list(stub.Invoke(requests(), timeout=5))
    ack = responses[0]
    assert (ack.batch_id, len(ack.results)) == (0, 0), ack
    return responses[1:]


def test_invoke_acknowledges_the_open_alone_before_any_batch(served):
    stub, _, _ = served
    feed = queue.Queue()
    feed.put(P.InvokeRequest(open=P.InvokeOpen(function="div", rule_id="r", arg_count=2)))
    call = stub.Invoke(iter(feed.get, None), timeout=5)
    try:
        ack = next_within(call)  # nothing but the open message sent
        assert (ack.batch_id, len(ack.results)) == (0, 0)
        feed.put(P.InvokeRequest(batch=P.InvokeBatch(batch_id=1, rows=[P.ArgRow(args=[to_value(6), to_value(3)])])))
        resp = next_within(call)
        assert resp.batch_id == 1 and from_value(resp.results[0].value) == 2.0
    finally:
        feed.put(None)
    assert list(call) == []


def test_invoke_errors_per_row_and_validate_raising(served):
    stub, _, _ = served
    (resp,) = invoke(stub, 2, [[1, 2], [1, 0], [1, "object"], [9, 3]])
    assert resp.batch_id == 1
    kinds = [r.WhichOneof("result") for r in resp.results]
    assert kinds == ["value", "error", "error", "value"]
    assert from_value(resp.results[0].value) == 0.5 and from_value(resp.results[3].value) == 3.0
    assert "division by zero" in resp.results[1].error
    assert "no Oort type" in resp.results[2].error
    with pytest.raises(grpc.RpcError) as e:
        invoke(stub, 1, [[1]])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "2 arguments" in e.value.details()


# OpenSource -----------------------------------------------------------------


def test_generator_source_then_stays_open_until_cancelled_and_is_closed(served):
    stub, servicer, _ = served
    call = stub.OpenSource(P.OpenSourceRequest(source="gen", datasource="g", config=dict_to_struct({"n": 4})))
    assert_source_ack(call)
    events = []
    while len(events) < 4:
        events.extend(next(call).events)
    assert [from_value(ev.fields["i"]) for ev in events] == [0, 1, 2, 3]
    assert [dict(ev.meta) for ev in events] == [{}, {"m": "odd"}, {}, {"m": "odd"}]
    # The generator has ended; the stream has not (oortd would take an end for a failure).
    after = queue.Queue()

    def read_on():
        try:
            after.put(next(call, "end"))
        except grpc.RpcError as e:
            after.put(e.code())

    threading.Thread(target=read_on, daemon=True).start()
    with pytest.raises(queue.Empty):
        after.get(timeout=0.3)
    assert ("gen", "g") not in CLOSED
    call.cancel()
    assert after.get(timeout=5) == grpc.StatusCode.CANCELLED
    assert wait_for(lambda: ("gen", "g") in CLOSED)


def test_failing_source_ends_with_unavailable_after_its_events(served):
    stub, _, _ = served
    got = []
    with pytest.raises(grpc.RpcError) as e:
        for resp in stub.OpenSource(P.OpenSourceRequest(source="broken"), timeout=5):
            got.append(len(resp.events))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "the device went away" in e.value.details()
    assert got == [0, 1]  # the ack, then its one event


def test_source_is_acknowledged_before_it_produces(served):
    stub, _, _ = served
    call = stub.OpenSource(P.OpenSourceRequest(source="gated"))
    try:
        assert_source_ack(call)  # while open() still waits for the gate
        assert not GATE.is_set()
        GATE.set()
        resp = next_within(call)
        assert [from_value(ev.fields["gated"]) for ev in resp.events] == [True]
    finally:
        call.cancel()


def test_cancelled_source_is_closed_and_its_callbacks_stop(served):
    stub, servicer, _ = served
    call = stub.OpenSource(P.OpenSourceRequest(source="callbacks", datasource="c1"))
    assert_source_ack(call)
    first = next(call)
    assert len(first.events) >= 1
    call.cancel()
    assert wait_for(lambda: ("callbacks", "c1") in CLOSED)
    assert wait_for(lambda: not servicer.instances._runs)


# OpenSink -------------------------------------------------------------------


def test_sink_acks_a_failed_batch_with_its_error_and_goes_on(served):
    stub, _, _ = served

    def requests():
        yield P.OpenSinkRequest(open=P.SinkOpen(sink="flaky", config=dict_to_struct({"fail_on": 2}), rule_id="r9"))
        for i, a in enumerate([1, 2, 3]):
            yield P.OpenSinkRequest(batch=P.SinkBatch(batch_id=1 + i, events=[event_to_proto({"a": a})]))

    acks = [(a.batch_id, a.error) for a in stub.OpenSink(requests(), timeout=5)]
    assert acks == [(0, ""), (1, ""), (2, "disk full"), (3, "")]  # the open ack, then one per batch
    assert wait_for(lambda: ("flaky", "r9") in CLOSED)


def test_sink_acknowledges_the_open_alone_before_any_batch(served):
    stub, _, _ = served
    feed = queue.Queue()
    feed.put(P.OpenSinkRequest(open=P.SinkOpen(sink="flaky", config=dict_to_struct({"fail_on": 9}), rule_id="a")))
    call = stub.OpenSink(iter(feed.get, None), timeout=5)
    try:
        ack = next_within(call)  # nothing but the open message sent
        assert (ack.batch_id, ack.error) == (0, "")
        feed.put(P.OpenSinkRequest(batch=P.SinkBatch(batch_id=1, events=[event_to_proto({"a": 9})])))
        resp = next_within(call)
        assert (resp.batch_id, resp.error) == (1, "disk full")
    finally:
        feed.put(None)
    assert list(call) == []


def test_sink_must_open_first_and_configure_errors(served):
    stub, _, _ = served
    with pytest.raises(grpc.RpcError) as e:
        list(stub.OpenSink(iter([P.OpenSinkRequest(batch=P.SinkBatch(batch_id=1))]), timeout=5))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        list(stub.OpenSink(iter([P.OpenSinkRequest(open=P.SinkOpen(sink="flaky"))]), timeout=5))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "fail_on" in e.value.details()


# Shutdown -------------------------------------------------------------------


def test_shutdown_closes_every_instance_and_refuses_new_ones(served):
    stub, servicer, shutdowns = served
    src = stub.OpenSource(P.OpenSourceRequest(source="callbacks", datasource="c2"))
    assert_source_ack(src)
    assert next(src).events
    feed = threading.Event()

    def sink_requests():
        yield P.OpenSinkRequest(open=P.SinkOpen(sink="flaky", config=dict_to_struct({"fail_on": 0}), rule_id="s"))
        yield P.OpenSinkRequest(batch=P.SinkBatch(batch_id=1, events=[event_to_proto({"a": 1})]))
        feed.wait(10)

    sink = stub.OpenSink(sink_requests())
    ack = next(sink)
    assert (ack.batch_id, ack.error) == (0, "")
    resp = next(sink)
    assert (resp.batch_id, resp.error) == (1, "")
    stub.Shutdown(P.ShutdownRequest(), timeout=5)
    assert ("callbacks", "c2") in CLOSED and ("flaky", "s") in CLOSED
    assert shutdowns == [1]
    with pytest.raises(grpc.RpcError) as e:
        list(stub.OpenSource(P.OpenSourceRequest(source="gen"), timeout=5))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    feed.set()
    src.cancel()
