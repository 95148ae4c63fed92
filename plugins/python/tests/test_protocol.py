"""The pydemo example, packaged by its package.sh and started as oortd starts a
portable plugin, against the rules of proto/oort/plugin/v1/plugin.proto."""

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from oort_plugin._proto import plugin_pb2 as P
from oort_plugin._proto import plugin_pb2_grpc
from oort_plugin.values import dict_to_struct, event_to_proto, from_value, to_value

from plugin_process import EXAMPLE, PluginProcess


def stub(plugin):
    return plugin_pb2_grpc.PluginServiceStub(plugin.channel)


def is_invoke_ack(resp):
    return resp.batch_id == 0 and len(resp.results) == 0


def is_source_ack(resp):
    return len(resp.events) == 0


def is_sink_ack(resp):
    return resp.batch_id == 0 and resp.error == ""


def invoke(plugin, function, arg_count, batches, rule_id="r1"):
    """Opens an Invoke stream, sends each batch (a list of argument rows of Python
    values; the server numbers them from 1), checks that the first response is
    the open acknowledgement and returns the others."""

    def requests():
        yield P.InvokeRequest(open=P.InvokeOpen(function=function, rule_id=rule_id, arg_count=arg_count))
        for i, rows in enumerate(batches):
            yield P.InvokeRequest(batch=P.InvokeBatch(
                batch_id=1 + i, rows=[P.ArgRow(args=[to_value(a) for a in row]) for row in rows]))

    responses = list(stub(plugin).Invoke(requests(), timeout=10))
    assert responses and is_invoke_ack(responses[0]), responses[:1]
    return responses[1:]


class Feed:
    """A request stream the test writes to as it goes: nothing is sent that the
    test has not put, so an answer cannot be to a later message."""

    def __init__(self, *first):
        self.q = queue.Queue()
        for m in first:
            self.q.put(m)

    def put(self, m):
        self.q.put(m)

    def close(self):
        self.q.put(None)

    def __iter__(self):
        return iter(self.q.get, None)


def next_within(call, timeout):
    """The next response of a stream, read on a thread, or an AssertionError after
    ``timeout`` seconds."""
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


def results(response):
    out = []
    for r in response.results:
        out.append(("error", r.error) if r.WhichOneof("result") == "error" else from_value(r.value))
    return out


# Describe -------------------------------------------------------------------


def test_describe_matches_the_manifest(plugin):
    d = stub(plugin).Describe(P.DescribeRequest(), timeout=5)
    manifest = json.load(open(os.path.join(EXAMPLE, "manifest.json")))
    assert (d.name, d.version, d.protocol_version) == (manifest["name"], manifest["version"], 1)
    got = {(s.name, s.kind, s.aggregate, s.description) for s in d.symbols}
    want = {(f["name"], P.SYMBOL_KIND_FUNCTION, f["aggregate"], f["description"]) for f in manifest["functions"]}
    want |= {(s["name"], P.SYMBOL_KIND_SOURCE, False, s["description"]) for s in manifest["sources"]}
    want |= {(s["name"], P.SYMBOL_KIND_SINK, False, s["description"]) for s in manifest["sinks"]}
    assert got == want


# Invoke ---------------------------------------------------------------------


def test_invoke_scalar_one_result_per_row_and_a_failing_row_alone(plugin):
    responses = invoke(plugin, "py_upper", 1, [[["abc"], [None], [42], ["xY é"]], [["z"]]])
    assert [r.batch_id for r in responses] == [1, 2]
    first = results(responses[0])
    assert first[0] == "ABC"
    assert first[1] is None
    assert first[2][0] == "error" and "expects a string" in first[2][1]
    assert first[3] == "XY É"
    assert results(responses[1]) == ["Z"]


def test_invoke_aggregate_gets_a_list_per_argument(plugin):
    responses = invoke(plugin, "py_total", 1, [[[[1, 2, 3]], [[1.5, None, 2]], [[]], [["x", 1]]]])
    got = results(responses[0])
    assert got[:3] == [6, 3.5, 0]
    assert type(got[0]) is int
    assert got[3][0] == "error" and "expects numbers" in got[3][1]


def test_invoke_function_names_ignore_case(plugin):
    assert results(invoke(plugin, "PY_UPPER", 1, [[["a"]]])[0]) == ["A"]


def test_invoke_acknowledges_the_open_before_any_batch(plugin):
    feed = Feed(P.InvokeRequest(open=P.InvokeOpen(function="py_upper", rule_id="r1", arg_count=1)))
    call = stub(plugin).Invoke(iter(feed), timeout=10)
    try:
        ack = next_within(call, 5)  # only the open message has been sent
        assert is_invoke_ack(ack), ack
        feed.put(P.InvokeRequest(batch=P.InvokeBatch(batch_id=1, rows=[P.ArgRow(args=[to_value("q")])])))
        resp = next_within(call, 5)
        assert resp.batch_id == 1 and results(resp) == ["Q"]
    finally:
        feed.close()
    assert list(call) == []


def test_invoke_unknown_function_is_not_found(plugin):
    with pytest.raises(grpc.RpcError) as e:
        invoke(plugin, "no_such_fn", 1, [[["a"]]])
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no_such_fn" in e.value.details()


def test_invoke_wrong_arg_count_is_invalid_argument(plugin):
    with pytest.raises(grpc.RpcError) as e:
        invoke(plugin, "py_upper", 2, [[["a", "b"]]])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1 argument" in e.value.details()


def test_invoke_must_open_first(plugin):
    def requests():
        yield P.InvokeRequest(batch=P.InvokeBatch(batch_id=1))

    with pytest.raises(grpc.RpcError) as e:
        list(stub(plugin).Invoke(requests(), timeout=5))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_invoke_streams_of_several_rules_at_once(plugin):
    out = {}

    def run(i):
        out[i] = results(invoke(plugin, "py_upper", 1, [[[f"r{i}-{j}"] for j in range(50)]] * 3, rule_id=f"r{i}")[2])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert out == {i: [f"R{i}-{j}" for j in range(50)] for i in range(4)}


# OpenSource -----------------------------------------------------------------


def read_events(call, n, timeout):
    """Checks that the first response of a source stream is the open
    acknowledgement, then reads events on a thread: ((arrival time, fields) of
    the first ``n``, the queue of those that follow)."""
    assert is_source_ack(next_within(call, timeout))
    got = queue.Queue()

    def reader():
        try:
            for resp in call:
                for ev in resp.events:
                    got.put((time.monotonic(), {k: from_value(v) for k, v in ev.fields.items()}))
        except grpc.RpcError:
            pass

    threading.Thread(target=reader, daemon=True).start()
    items = []
    deadline = time.monotonic() + timeout
    while len(items) < n:
        try:
            items.append(got.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            break
    return items, got


def test_source_emits_count_events_at_the_interval_then_idles(plugin):
    call = stub(plugin).OpenSource(P.OpenSourceRequest(
        source="pycounter", datasource="ticks", config=dict_to_struct({"interval_ms": 50, "count": 5}), rule_id="r1"))
    items, rest = read_events(call, 5, timeout=10)
    assert [fields for _, fields in items] == [{"n": i} for i in range(5)]
    span = items[-1][0] - items[0][0]
    assert span >= 4 * 0.050 * 0.8, span  # 4 intervals between 5 events
    with pytest.raises(queue.Empty):  # count reached: no more, but the stream stays open
        rest.get(timeout=0.3)
    assert call.is_active()
    call.cancel()


def test_source_options_from_the_datasource_and_upper_case_keys(plugin):
    # oortd passes every WITH option, upper-cased, as strings: the others are ignored.
    config = {"COUNT": "3", "TYPE": "pycounter", "DATASOURCE": "t", "FORMAT": "json"}
    call = stub(plugin).OpenSource(P.OpenSourceRequest(
        source="pycounter", datasource="t?interval_ms=10&start=7", config=dict_to_struct(config)))
    items, rest = read_events(call, 3, timeout=10)
    assert [fields["n"] for _, fields in items] == [7, 8, 9]
    call.cancel()


def test_source_default_interval_is_100_ms(plugin):
    call = stub(plugin).OpenSource(P.OpenSourceRequest(source="pycounter", datasource="t"))
    items, _ = read_events(call, 3, timeout=10)
    call.cancel()
    span = items[-1][0] - items[0][0]
    assert 0.16 <= span, span


def test_source_acknowledges_the_open_before_its_first_event(plugin):
    # count 0: the source never produces, the stream is acknowledged all the same.
    call = stub(plugin).OpenSource(P.OpenSourceRequest(
        source="pycounter", datasource="t", config=dict_to_struct({"count": 0})))
    try:
        ack = next_within(call, 5)
        assert is_source_ack(ack), ack
        assert call.is_active()
    finally:
        call.cancel()


def test_source_bad_config_is_invalid_argument_and_unknown_is_not_found(plugin):
    for datasource, config in (("t", {"interval_ms": 0}), ("t", {"COUNT": "many"}), ("t?bogus=1", {})):
        with pytest.raises(grpc.RpcError) as e:
            list(stub(plugin).OpenSource(P.OpenSourceRequest(source="pycounter", datasource=datasource,
                                                             config=dict_to_struct(config)), timeout=5))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (datasource, config)
        assert "pycounter" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        list(stub(plugin).OpenSource(P.OpenSourceRequest(source="nope"), timeout=5))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


# OpenSink -------------------------------------------------------------------


def sink_requests(config, batches, sink="pyfile"):
    yield P.OpenSinkRequest(open=P.SinkOpen(sink=sink, config=dict_to_struct(config), rule_id="r1"))
    for i, events in enumerate(batches):
        yield P.OpenSinkRequest(batch=P.SinkBatch(batch_id=1 + i, events=[event_to_proto(e) for e in events]))


def test_sink_acknowledges_every_batch_and_writes_the_file(plugin, tmp_path):
    path = tmp_path / "out.jsonl"
    batches = [[{"a": 1, "s": "x"}], [{"a": 2}, {"a": 3, "l": [1, None], "m": {"k": True}}], []]
    acks = list(stub(plugin).OpenSink(sink_requests({"path": str(path)}, batches), timeout=10))
    assert [(a.batch_id, a.error) for a in acks] == [(0, ""), (1, ""), (2, ""), (3, "")]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"a": 1, "s": "x"}, {"a": 2}, {"a": 3, "l": [1, None], "m": {"k": True}}]


def test_sink_acknowledges_the_open_before_any_batch(plugin, tmp_path):
    path = tmp_path / "o.jsonl"
    feed = Feed(P.OpenSinkRequest(open=P.SinkOpen(sink="pyfile", config=dict_to_struct({"path": str(path)}),
                                                  rule_id="r1")))
    call = stub(plugin).OpenSink(iter(feed), timeout=10)
    try:
        ack = next_within(call, 5)  # only the open message has been sent
        assert is_sink_ack(ack), ack
        feed.put(P.OpenSinkRequest(batch=P.SinkBatch(batch_id=1, events=[event_to_proto({"a": 1})])))
        resp = next_within(call, 5)
        assert (resp.batch_id, resp.error) == (1, "")
    finally:
        feed.close()
    assert list(call) == []
    assert path.read_text() == '{"a": 1}\n'


def test_sink_bad_config_unknown_sink_and_open_failure(plugin, tmp_path):
    with pytest.raises(grpc.RpcError) as e:
        list(stub(plugin).OpenSink(sink_requests({}, [[{"a": 1}]]), timeout=5))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "path" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        list(stub(plugin).OpenSink(sink_requests({"path": "x"}, [], sink="nope"), timeout=5))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:  # a directory cannot be opened for appending
        list(stub(plugin).OpenSink(sink_requests({"path": str(tmp_path)}, [[{"a": 1}]]), timeout=5))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


# Start-up, health, exit -----------------------------------------------------


def test_health_serving_for_both_services(plugin):
    h = health_pb2_grpc.HealthStub(plugin.channel)
    for service in ("", "oort.plugin.v1.PluginService"):
        resp = h.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_socket_is_mode_0600_in_the_given_place(plugin):
    st = os.stat(plugin.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_vendored_sdk_is_the_one_imported(package_dir):
    out = subprocess.run([sys.executable, "-c", "import oort_plugin; print(oort_plugin.__file__)"],
                         cwd=package_dir, capture_output=True, text=True, check=True).stdout
    assert out.startswith(str(package_dir)), out


@pytest.mark.parametrize("env, says", [
    ({"OORT_PLUGIN_MAGIC_COOKIE": None}, "meant to be started by oortd"),
    ({"OORT_PLUGIN_MAGIC_COOKIE": "wrong"}, "meant to be started by oortd"),
    ({"OORT_PLUGIN_PROTOCOL": "2"}, "protocol 2"),
    ({"OORT_PLUGIN_SOCKET": None}, "OORT_PLUGIN_SOCKET"),
])
def test_wrong_start_up_environment_exits_1_with_a_message(package_dir, env, says):
    p = PluginProcess(package_dir, **env)
    try:
        r = subprocess.run([sys.executable, "main.py"], cwd=package_dir, env=p.env, stdin=subprocess.PIPE,
                           capture_output=True, text=True, timeout=15)
        assert r.returncode == 1
        assert r.stdout == ""
        assert says in r.stderr
        assert not os.path.exists(p.socket)
    finally:
        p.stop()


def test_closing_stdin_makes_the_plugin_exit(package_dir):
    p = PluginProcess(package_dir)
    try:
        p.start()
        # An open source and sink must not keep it alive.
        src = stub(p).OpenSource(P.OpenSourceRequest(source="pycounter", config=dict_to_struct({"interval_ms": 10})))
        read_events(src, 1, timeout=10)
        p.close_stdin()
        assert p.wait(10) == 0
        assert not os.path.exists(p.socket)
    finally:
        p.stop()


def test_shutdown_closes_instances_then_exits(package_dir, tmp_path):
    p = PluginProcess(package_dir)
    try:
        p.start()
        s = stub(p)
        src = s.OpenSource(P.OpenSourceRequest(source="pycounter", config=dict_to_struct({"interval_ms": 10})))
        items, _ = read_events(src, 2, timeout=10)
        assert len(items) == 2
        feed = queue.Queue()
        feed.put(P.OpenSinkRequest(open=P.SinkOpen(sink="pyfile", config=dict_to_struct({"path": str(tmp_path / "o")}))))
        feed.put(P.OpenSinkRequest(batch=P.SinkBatch(batch_id=1, events=[event_to_proto({"a": 1})])))
        sink = s.OpenSink(iter(feed.get, None))
        assert is_sink_ack(next(sink))
        assert next(sink).batch_id == 1
        started = time.monotonic()
        s.Shutdown(P.ShutdownRequest(), timeout=10)
        assert time.monotonic() - started < 4.0  # it does not hang (the grace is 2 s)
        assert p.wait(10) == 0
        assert "Shutdown" in p.stderr
        feed.put(None)
    finally:
        p.stop()


def test_starts_under_pythonsafepath(package_dir):
    # PYTHONSAFEPATH leaves the script's folder off sys.path; main.py puts it back.
    p = PluginProcess(package_dir, PYTHONSAFEPATH="1")
    try:
        p.start()
        assert stub(p).Describe(P.DescribeRequest(), timeout=5).name == "pydemo"
    finally:
        p.stop()
