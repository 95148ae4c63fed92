"""noderaw speaks oort.plugin.v1 to another gRPC implementation.

The plugin is packaged (package.sh), unzipped, and started the way oortd starts
a portable plugin: `node <executable>` in the unpacked folder, with the
OORT_PLUGIN_* environment, a socket in a private directory, stdin a pipe that
this test holds. Then Python's grpcio, with the generated code of
clients/python/src (and grpcio-health-checking's for grpc.health.v1), talks to
it over the Unix socket: no Oort SDK on either side.
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

HERE = Path(__file__).resolve().parent.parent  # plugins/examples/noderaw
ROOT = HERE.parent.parent.parent
sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))

from oort.plugin.v1 import plugin_pb2 as pb  # noqa: E402
from oort.plugin.v1 import plugin_pb2_grpc as pb_grpc  # noqa: E402
from oort.v1 import value_pb2 as vpb  # noqa: E402

COOKIE = "oort-plugin-7c2b1d9e"
TIMEOUT = 10.0


# ---- the plugin, packaged and started as the server would -----------------------


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin's zip, built by its package.sh and unpacked, as the server does."""
    out = tmp_path_factory.mktemp("zip") / "noderaw.zip"
    subprocess.run([str(HERE / "package.sh"), str(out), "debug"], cwd=HERE, check=True)
    folder = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert sorted(names) == ["manifest.json", "plugin.mjs"], names  # node_modules is not shipped
        z.extractall(folder)
    return folder


@pytest.fixture(scope="session")
def manifest(package: Path) -> dict[str, Any]:
    m: dict[str, Any] = json.loads((package / "manifest.json").read_text())
    return m


class Plugin:
    """One plugin process: its private directory, socket, pipes and channel."""

    def __init__(self, package: Path, manifest: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="oort-plugin-"))  # mode 0700, like the server's
        self.socket = str(self.dir / "noderaw.sock")
        self.stderr_path = self.dir / "stderr.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("OORT_PLUGIN_")}
        base.update(
            OORT_PLUGIN_MAGIC_COOKIE=COOKIE,
            OORT_PLUGIN_PROTOCOL="1",
            OORT_PLUGIN_SOCKET=self.socket,
            OORT_PLUGIN_SHUTDOWN_GRACE_MS="2000",
        )
        if env is not None:
            base.update(env)
            base = {k: v for k, v in base.items() if v != ""}  # "" = unset
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                ["node", manifest["executable"]],
                cwd=package,
                env=base,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        self._channel: grpc.Channel | None = None

    def handshake(self, timeout: float = TIMEOUT) -> str:
        """The first line on stdout, read as the server does (with a start-up timeout)."""
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0 and sel.select(left), f"no handshake line in {timeout}s; stderr: {self.stderr()}"
            chunk = os.read(self.proc.stdout.fileno(), 1)
            assert chunk, f"stdout closed before the handshake; stderr: {self.stderr()}"
            line += chunk
        return line.decode()

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel("unix:" + self.socket)
            grpc.channel_ready_future(self._channel).result(timeout=TIMEOUT)
        return self._channel

    @property
    def stub(self) -> pb_grpc.PluginServiceStub:
        return pb_grpc.PluginServiceStub(self.channel)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_stderr(self, text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            assert time.monotonic() < deadline, f"{text!r} not in stderr: {self.stderr()}"
            time.sleep(0.02)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def plugin(package: Path, manifest: dict[str, Any]) -> Iterator[Plugin]:
    p = Plugin(package, manifest)
    line = p.handshake()
    assert line == f"OORT_PLUGIN|1|unix|{p.socket}\n"
    yield p
    p.close()


class Requests:
    """A client stream fed from the test: put() sends, close() half-closes."""

    def __init__(self, *first: Any) -> None:
        self.q: queue.Queue[Any] = queue.Queue()
        for m in first:
            self.q.put(m)

    def put(self, m: Any) -> None:
        self.q.put(m)

    def close(self) -> None:
        self.q.put(None)

    def __iter__(self) -> Iterator[Any]:
        while (m := self.q.get()) is not None:
            yield m


# ---- values ---------------------------------------------------------------------


def i(x: int) -> vpb.Value:
    return vpb.Value(int_value=x)


def f(x: float) -> vpb.Value:
    return vpb.Value(float_value=x)


def s(x: str) -> vpb.Value:
    return vpb.Value(string_value=x)


def null() -> vpb.Value:
    return vpb.Value(null_value=struct_pb2.NULL_VALUE)


def config(**kw: Any) -> struct_pb2.Struct:
    st = struct_pb2.Struct()
    st.update(kw)
    return st


def invoke_open(function: str, arg_count: int = 1) -> pb.InvokeRequest:
    return pb.InvokeRequest(open=pb.InvokeOpen(function=function, rule_id="r1", arg_count=arg_count))


def invoke_batch(batch_id: int, *rows: list[vpb.Value]) -> pb.InvokeRequest:
    return pb.InvokeRequest(batch=pb.InvokeBatch(batch_id=batch_id, rows=[pb.ArgRow(args=r) for r in rows]))


def is_invoke_ack(r: pb.InvokeResponse) -> bool:
    """The acknowledgement of a valid InvokeOpen: batch 0, no results."""
    return r.batch_id == 0 and len(r.results) == 0


def results(resp: pb.InvokeResponse) -> list[Any]:
    """Each CallResult as ("value", python value) or ("error", message)."""
    out: list[Any] = []
    for r in resp.results:
        if r.WhichOneof("result") == "error":
            out.append(("error", r.error))
        else:
            kind = r.value.WhichOneof("kind")
            out.append(("value", getattr(r.value, kind)))
    return out


# ---- start-up -------------------------------------------------------------------


def test_refuses_to_run_without_the_cookie(package: Path, manifest: dict[str, Any]) -> None:
    p = Plugin(package, manifest, env={"OORT_PLUGIN_MAGIC_COOKIE": ""})
    assert p.proc.wait(timeout=TIMEOUT) == 1
    assert p.proc.stdout is not None and p.proc.stdout.read() == b""
    assert "meant to be started by oortd" in p.stderr()
    p.close()


def test_refuses_another_protocol_version(package: Path, manifest: dict[str, Any]) -> None:
    p = Plugin(package, manifest, env={"OORT_PLUGIN_PROTOCOL": "2"})
    assert p.proc.wait(timeout=TIMEOUT) == 1
    assert "protocol" in p.stderr() and '"2"' in p.stderr()
    p.close()


def test_socket_is_private(plugin: Plugin) -> None:
    mode = os.stat(plugin.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_health_serving(plugin: Plugin) -> None:
    health = health_pb2_grpc.HealthStub(plugin.channel)
    for service in ("", "oort.plugin.v1.PluginService"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as e:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()


def test_unknown_method_is_unimplemented(plugin: Plugin) -> None:
    call = plugin.channel.unary_unary("/oort.plugin.v1.PluginService/NoSuchMethod")
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ---- Describe -------------------------------------------------------------------


def test_describe_matches_the_manifest(plugin: Plugin, manifest: dict[str, Any]) -> None:
    d = plugin.stub.Describe(pb.DescribeRequest(), timeout=TIMEOUT)
    assert (d.name, d.version, d.protocol_version) == (manifest["name"], manifest["version"], 1)
    got = {(x.name, x.kind, x.aggregate, x.description) for x in d.symbols}
    want = (
        {(fn["name"], pb.SYMBOL_KIND_FUNCTION, fn["aggregate"], fn["description"]) for fn in manifest["functions"]}
        | {(x["name"], pb.SYMBOL_KIND_SOURCE, False, x["description"]) for x in manifest["sources"]}
        | {(x["name"], pb.SYMBOL_KIND_SINK, False, x["description"]) for x in manifest["sinks"]}
    )
    assert got == want


# ---- Invoke ---------------------------------------------------------------------


def test_invoke_batches_with_a_failing_row(plugin: Plugin) -> None:
    reqs = Requests(invoke_open("node_double"))
    responses = plugin.stub.Invoke(iter(reqs), timeout=TIMEOUT)
    assert is_invoke_ack(next(responses))  # first, before any batch
    reqs.put(invoke_batch(7, [i(21)], [f(1.5)], [s("x")], [null()], [i(2**62)], [i(-3)]))
    r = next(responses)
    assert r.batch_id == 7
    got = results(r)
    assert got[0] == ("value", 42) and r.results[0].value.WhichOneof("kind") == "int_value"
    assert got[1] == ("value", 3.0) and r.results[1].value.WhichOneof("kind") == "float_value"
    assert got[2] == ("error", "node_double: expects a number, got string")
    assert got[3] == ("error", "node_double: expects a number, got null")
    assert got[4][0] == "error" and "overflows" in got[4][1]
    assert got[5] == ("value", -6)  # the rows after the failures still count

    # The same stream goes on: more batches, pipelined, each answered once, in order.
    ids = list(range(100, 150))
    for b in ids:
        reqs.put(invoke_batch(b, *[[i(b * 1000 + k)] for k in range(b % 7)]))
    for b in ids:
        r = next(responses)
        assert r.batch_id == b
        assert results(r) == [("value", 2 * (b * 1000 + k)) for k in range(b % 7)]
    reqs.close()
    assert list(responses) == []  # half-close ends the stream, with OK
    assert responses.code() == grpc.StatusCode.OK


def test_invoke_a_large_batch(plugin: Plugin) -> None:
    n = 100_000
    reqs = Requests(invoke_open("node_double"), invoke_batch(1, *[[i(k)] for k in range(n)]))
    reqs.close()
    ack, r = list(plugin.stub.Invoke(iter(reqs), timeout=TIMEOUT))
    assert is_invoke_ack(ack)
    assert len(r.results) == n and r.results[n - 1].value.int_value == 2 * (n - 1)


def test_invoke_unknown_function_is_not_found(plugin: Plugin) -> None:
    reqs = Requests(invoke_open("no_such_fn"))  # and the client side stays open
    responses = plugin.stub.Invoke(iter(reqs), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as e:
        next(responses)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no_such_fn" in (e.value.details() or "")
    reqs.close()


def test_invoke_refused_arg_count_is_invalid_argument(plugin: Plugin) -> None:
    reqs = Requests(invoke_open("node_double", arg_count=2))
    with pytest.raises(grpc.RpcError) as e:
        next(plugin.stub.Invoke(iter(reqs), timeout=TIMEOUT))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "takes 1 argument" in (e.value.details() or "")
    reqs.close()


def test_invoke_streams_run_concurrently(plugin: Plugin) -> None:
    def one(k: int) -> None:
        reqs = Requests(invoke_open("node_double"), *[invoke_batch(b, [i(k)]) for b in range(1, 21)])
        reqs.close()
        ack, *rest = plugin.stub.Invoke(iter(reqs), timeout=TIMEOUT)
        assert is_invoke_ack(ack)
        got = [(r.batch_id, r.results[0].value.int_value) for r in rest]
        assert got == [(b, 2 * k) for b in range(1, 21)]

    threads = [threading.Thread(target=one, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_every_stream_is_acknowledged_once_open_before_any_batch(plugin: Plugin, tmp_path: Path) -> None:
    # The client sends the open message only and waits: the acknowledgement must come by itself
    # (the server waits for it, since many gRPC servers send headers only with a first message).
    reqs = Requests(invoke_open("node_double"))
    responses = plugin.stub.Invoke(iter(reqs), timeout=TIMEOUT)
    assert is_invoke_ack(next(responses))
    reqs.put(invoke_batch(1, [i(4)]))  # then the stream works as before
    r = next(responses)
    assert (r.batch_id, results(r)) == (1, [("value", 8)])
    reqs.close()
    assert list(responses) == [] and responses.code() == grpc.StatusCode.OK

    # A source acknowledges once configured, before it produces: here no event is due for a minute.
    req = pb.OpenSourceRequest(source="nodeseq", config=config(interval_ms=60000), rule_id="ra")
    stream = plugin.stub.OpenSource(req, timeout=TIMEOUT)
    assert len(next(stream).events) == 0
    stream.cancel()
    plugin.wait_stderr("source nodeseq closed for rule ra")

    sink_reqs = Requests(sink_open(config(path=str(tmp_path / "ack.jsonl"))))
    acks = plugin.stub.OpenSink(iter(sink_reqs), timeout=TIMEOUT)
    assert is_sink_ack(next(acks))
    assert (tmp_path / "ack.jsonl").exists()  # open means open: the file is there
    sink_reqs.put(sink_batch(1, vpb.Event(fields={"x": i(1)})))
    a = next(acks)
    assert (a.batch_id, a.error) == (1, "")
    sink_reqs.close()
    assert list(acks) == [] and acks.code() == grpc.StatusCode.OK


# ---- OpenSource -----------------------------------------------------------------


def opened(stream: Any) -> Any:
    """The source stream, once its first response, the open acknowledgement (no events), is checked."""
    ack = next(stream)
    assert len(ack.events) == 0, ack
    return stream


def drain_until_cancelled(stream: Any, after: float) -> list[Any]:
    """Events that still arrive before the test cancels the stream `after` seconds from now."""
    threading.Timer(after, stream.cancel).start()
    rest: list[Any] = []
    with pytest.raises(grpc.RpcError) as e:
        for resp in stream:
            rest.extend(resp.events)
    assert e.value.code() == grpc.StatusCode.CANCELLED
    return rest


def test_source_emits_count_events_then_idles(plugin: Plugin) -> None:
    before = time.time()
    req = pb.OpenSourceRequest(source="nodeseq", datasource="ds1", config=config(interval_ms=20, count=5), rule_id="r2")
    stream = opened(plugin.stub.OpenSource(req, timeout=TIMEOUT))
    events = [next(stream).events[0] for _ in range(5)]
    assert [e.fields["seq"].int_value for e in events] == [1, 2, 3, 4, 5]
    assert all(e.fields["seq"].WhichOneof("kind") == "int_value" for e in events)
    assert all(dict(e.meta) == {"datasource": "ds1"} for e in events)
    stamps = [e.timestamp.ToNanoseconds() / 1e9 for e in events]
    assert stamps == sorted(stamps) and before <= stamps[0] <= time.time()
    assert time.time() - before >= 0.1  # every interval_ms, not all at once
    assert drain_until_cancelled(stream, 0.2) == []  # open but idle after count events
    plugin.wait_stderr("source nodeseq closed for rule r2")


def test_source_default_interval_and_cancel_closes_it(plugin: Plugin) -> None:
    req = pb.OpenSourceRequest(source="nodeseq", config=config(), rule_id="r3")
    stream = opened(plugin.stub.OpenSource(req, timeout=TIMEOUT))
    t0 = time.monotonic()
    seqs = [next(stream).events[0].fields["seq"].int_value for _ in range(3)]
    assert seqs == [1, 2, 3]
    assert time.monotonic() - t0 >= 0.25  # default interval_ms 100
    stream.cancel()  # what the server does when the rule stops
    plugin.wait_stderr("source nodeseq closed for rule r3")


def test_source_options_as_strings_and_in_the_datasource(plugin: Plugin) -> None:
    # Options may arrive as strings (SQL), and the DATASOURCE's query string overrides them.
    for ds, cfg in (("", config(interval_ms="5", count="2")), ("s?interval_ms=5&count=2", config(interval_ms=60000))):
        req = pb.OpenSourceRequest(source="nodeseq", datasource=ds, config=cfg)
        stream = opened(plugin.stub.OpenSource(req, timeout=TIMEOUT))
        assert [next(stream).events[0].fields["seq"].int_value for _ in range(2)] == [1, 2]
        assert drain_until_cancelled(stream, 0.1) == []


def test_source_unknown_and_bad_config(plugin: Plugin) -> None:
    with pytest.raises(grpc.RpcError) as e:
        next(plugin.stub.OpenSource(pb.OpenSourceRequest(source="nope"), timeout=TIMEOUT))  # a status, no ack
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    bad = [("", config(interval_ms="soon")), ("", config(interval_ms=0)), ("", config(count=1.5))]
    bad += [("s?colour=red", config()), ("s?count=-1", config())]
    for ds, cfg in bad:
        req = pb.OpenSourceRequest(source="nodeseq", datasource=ds, config=cfg)
        with pytest.raises(grpc.RpcError) as e:
            next(plugin.stub.OpenSource(req, timeout=TIMEOUT))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (ds, cfg)
    # The configuration also carries the stream's own WITH options, as oortd sends them.
    req = pb.OpenSourceRequest(source="nodeseq", datasource="s?count=0", config=config(TYPE="nodeseq", FORMAT="json"))
    assert list(next(plugin.stub.OpenSource(req, timeout=TIMEOUT)).events) == [], "acknowledged"


# ---- OpenSink -------------------------------------------------------------------


def sink_open(cfg: struct_pb2.Struct, sink: str = "nodelog") -> pb.OpenSinkRequest:
    return pb.OpenSinkRequest(open=pb.SinkOpen(sink=sink, config=cfg, rule_id="r4"))


def is_sink_ack(a: pb.OpenSinkResponse) -> bool:
    """The acknowledgement of a SinkOpen: batch 0, no error."""
    return a.batch_id == 0 and a.error == ""


def sink_batch(batch_id: int, *events: vpb.Event) -> pb.OpenSinkRequest:
    return pb.OpenSinkRequest(batch=pb.SinkBatch(batch_id=batch_id, events=events))


def test_sink_acks_each_batch_and_writes_json_lines(plugin: Plugin, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    ts = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_456_789)
    e1 = vpb.Event(
        fields={
            "i": i(-7),
            "big": i(2**62),
            "f": f(2.5),
            "s": s("héllo"),
            "b": vpb.Value(bool_value=True),
            "n": null(),
            "bytes": vpb.Value(bytes_value=b"\x00\xff"),
            "t": vpb.Value(timestamp_value=ts),
            "l": vpb.Value(list_value=vpb.ListValue(values=[i(1), s("a")])),
            "m": vpb.Value(map_value=vpb.MapValue(fields={"k": f(0.5)})),
        }
    )
    e2 = vpb.Event(fields={"seq": i(2)})
    reqs = Requests(sink_open(config(path=str(out))))
    acks = plugin.stub.OpenSink(iter(reqs), timeout=TIMEOUT)
    assert is_sink_ack(next(acks))
    reqs.put(sink_batch(11, e1, e2))
    a = next(acks)
    assert (a.batch_id, a.error) == (11, "")
    assert len(out.read_text().splitlines()) == 2  # written when acknowledged
    reqs.put(sink_batch(12, vpb.Event(fields={"seq": i(3)})))
    reqs.put(sink_batch(13))  # an empty batch is acknowledged too
    assert [(a.batch_id, a.error) for a in (next(acks), next(acks))] == [(12, ""), (13, "")]
    reqs.close()
    assert list(acks) == [] and acks.code() == grpc.StatusCode.OK
    plugin.wait_stderr("sink nodelog closed for rule r4")

    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # the socket's umask 0177 was not left behind
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines == [
        {
            "i": -7,
            "big": str(2**62),  # beyond 2^53: a string, so that no digit is lost
            "f": 2.5,
            "s": "héllo",
            "b": True,
            "n": None,
            "bytes": "AP8=",
            "t": "2023-11-14T22:13:20.123456789Z",
            "l": [1, "a"],
            "m": {"k": 0.5},
        },
        {"seq": 2},
        {"seq": 3},
    ]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_sink_write_failure_is_an_error_ack(plugin: Plugin) -> None:
    reqs = Requests(sink_open(config(path="/dev/full")), sink_batch(1, vpb.Event(fields={"x": i(1)})))
    acks = plugin.stub.OpenSink(iter(reqs), timeout=TIMEOUT)
    assert is_sink_ack(next(acks))
    a = next(acks)
    assert a.batch_id == 1 and "ENOSPC" in a.error
    reqs.put(sink_batch(2, vpb.Event(fields={"x": i(1)})))  # the stream goes on: the server re-sends
    assert next(acks).batch_id == 2
    reqs.close()
    assert list(acks) == []


def test_sink_unknown_and_bad_config(plugin: Plugin, tmp_path: Path) -> None:
    cases = [
        (sink_open(config(path="x"), sink="nope"), grpc.StatusCode.NOT_FOUND),
        (sink_open(config()), grpc.StatusCode.INVALID_ARGUMENT),
        (sink_open(config(path=str(tmp_path / "no" / "such" / "dir" / "f"))), grpc.StatusCode.INVALID_ARGUMENT),
        (sink_batch(1), grpc.StatusCode.INVALID_ARGUMENT),  # a batch before open
    ]
    for first, code in cases:
        reqs = Requests(first)
        with pytest.raises(grpc.RpcError) as e:
            next(plugin.stub.OpenSink(iter(reqs), timeout=TIMEOUT))  # a status, no ack
        assert e.value.code() == code, first
        reqs.close()


# ---- the end of the process -----------------------------------------------------


def test_stdin_eof_exits(plugin: Plugin) -> None:
    plugin.stub.Describe(pb.DescribeRequest(), timeout=TIMEOUT)
    assert plugin.proc.stdin is not None
    plugin.proc.stdin.close()  # what the server's death looks like
    assert plugin.proc.wait(timeout=TIMEOUT) == 0
    assert not os.path.exists(plugin.socket)
    assert "stdin closed" in plugin.stderr()


def test_shutdown_closes_instances_then_exits(plugin: Plugin, tmp_path: Path) -> None:
    sink_reqs = Requests(sink_open(config(path=str(tmp_path / "s.jsonl"))), sink_batch(1, vpb.Event()))
    acks = plugin.stub.OpenSink(iter(sink_reqs), timeout=TIMEOUT)
    assert is_sink_ack(next(acks))
    assert next(acks).batch_id == 1
    req = pb.OpenSourceRequest(source="nodeseq", config=config(interval_ms=10))
    source = opened(plugin.stub.OpenSource(req, timeout=TIMEOUT))
    assert len(next(source).events) == 1

    t0 = time.monotonic()
    plugin.stub.Shutdown(pb.ShutdownRequest(), timeout=TIMEOUT)
    assert plugin.proc.wait(timeout=TIMEOUT) == 0
    assert time.monotonic() - t0 < 2.0 + 1.0  # within OORT_PLUGIN_SHUTDOWN_GRACE_MS
    err = plugin.stderr()
    assert "sink nodelog closed" in err and "source nodeseq closed" in err
    assert err.index("closed for rule") < err.index("exiting: Shutdown")
    sink_reqs.close()
    for stream in (acks, source):  # both ended: closed by the plugin (OK) or with the process
        try:
            list(stream)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE


# ---- a second client implementation: grpc-go, through grpcurl ---------------------


def grpcurl() -> str | None:
    found = shutil.which("grpcurl")
    gobin = Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin" / "grpcurl"
    return found or (str(gobin) if gobin.exists() else None)


@pytest.mark.skipif(grpcurl() is None, reason="grpcurl (scripts/install-tools.sh) is not installed")
def test_grpc_go_client_bidi_invoke(plugin: Plugin) -> None:
    requests = [
        {"open": {"function": "node_double", "ruleId": "g", "argCount": 1}},
        {"batch": {"batchId": "5", "rows": [{"args": [{"intValue": "21"}]}, {"args": [{"stringValue": "x"}]}]}},
        {"batch": {"batchId": "6", "rows": [{"args": [{"floatValue": 0.25}]}]}},
    ]
    run = subprocess.run(
        [grpcurl(), "-plaintext", "-unix", "-import-path", str(ROOT / "proto"), "-proto", "oort/plugin/v1/plugin.proto",
         "-d", "@", plugin.socket, "oort.plugin.v1.PluginService/Invoke"],
        input="\n".join(json.dumps(r) for r in requests), capture_output=True, text=True, timeout=TIMEOUT, check=True,
    )
    responses, text, decoder = [], run.stdout.strip(), json.JSONDecoder()
    while text:  # grpcurl prints one JSON object per response
        obj, end = decoder.raw_decode(text)
        responses.append(obj)
        text = text[end:].lstrip()
    assert responses == [
        {},  # the open acknowledgement: batch 0, no results (JSON omits default values)
        {"batchId": "5", "results": [{"value": {"intValue": "42"}}, {"error": "node_double: expects a number, got string"}]},
        {"batchId": "6", "results": [{"value": {"floatValue": 0.5}}]},
    ]
