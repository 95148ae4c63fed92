"""The plugin side of oort.plugin.v1: :func:`serve` and :func:`main` run the whole
protocol for a :class:`~oort_plugin.PluginConfig` (the rules are in
``proto/oort/plugin/v1/plugin.proto``):

- start-up: check ``OORT_PLUGIN_MAGIC_COOKIE`` and ``OORT_PLUGIN_PROTOCOL`` (exit
  1 with a message on stderr if wrong), listen on the Unix socket
  ``OORT_PLUGIN_SOCKET`` (mode 0600), print ``OORT_PLUGIN|1|unix|<path>`` on
  stdout, then send stdout to stderr so nothing else reaches the handshake pipe;
- serve ``PluginService`` and ``grpc.health.v1`` (SERVING for ``""`` and
  ``oort.plugin.v1.PluginService``);
- acknowledge every stream once it is open, before anything else on it (a
  refusal is a status instead): an ``InvokeResponse`` of batch_id 0 and no
  results after a valid InvokeOpen, an ``OpenSourceResponse`` with no events
  once the source is configured (before its ``open`` runs), an
  ``OpenSinkResponse`` of batch_id 0 once the sink is configured and open. gRPC
  servers such as grpcio send the response headers only with a first message,
  and the server waits for this one before it uses the stream;
- exit when stdin reaches EOF, or after ``Shutdown``, closing every source and
  sink instance first within ``OORT_PLUGIN_SHUTDOWN_GRACE_MS``.

gRPC's synchronous server runs each stream on a thread of its own; a source's
``open`` gets one more.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import stat
import sys
import threading
import time
from concurrent import futures
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from oort_plugin._proto import plugin_pb2, plugin_pb2_grpc, value_pb2
from oort_plugin.api import Context, SourceContext, SourceStopped
from oort_plugin.registry import PluginConfig
from oort_plugin.values import Event, event_from_proto, fill_event, from_value, set_value, struct_to_dict

__all__ = ["PROTOCOL_VERSION", "MAGIC_COOKIE_KEY", "MAGIC_COOKIE_VALUE", "serve", "main"]

log = logging.getLogger("oort_plugin")

PROTOCOL_VERSION = 1
MAGIC_COOKIE_KEY = "OORT_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "oort-plugin-7c2b1d9e"
SERVICE_NAME = "oort.plugin.v1.PluginService"
DEFAULT_GRACE_MS = 5000

# Events a source may have queued before emit() blocks, and the most events per
# OpenSourceResponse.
SOURCE_QUEUE = 4096
SOURCE_BATCH = 512

_PLAIN = frozenset(("string_value", "int_value", "float_value", "bool_value", "bytes_value"))
_InvokeResponse = plugin_pb2.InvokeResponse
_OpenSourceResponse = plugin_pb2.OpenSourceResponse
_OpenSinkResponse = plugin_pb2.OpenSinkResponse
# The acknowledgements of an open stream (plugin.proto, "Opening").
_INVOKE_ACK = _InvokeResponse(batch_id=0)
_SOURCE_ACK = _OpenSourceResponse()
_SINK_ACK = _OpenSinkResponse(batch_id=0, error="")

_KINDS = {
    "function": plugin_pb2.SYMBOL_KIND_FUNCTION,
    "source": plugin_pb2.SYMBOL_KIND_SOURCE,
    "sink": plugin_pb2.SYMBOL_KIND_SINK,
}


def _message(e: BaseException) -> str:
    text = str(e)
    return text if text else type(e).__name__


def call_batch(exec_: Callable[[List[Any], Context], Any], ctx: Context,
               batch: "plugin_pb2.InvokeBatch") -> "plugin_pb2.InvokeResponse":
    """Runs one InvokeBatch: one CallResult per row, in order; a row whose
    function raises (or whose result has no Oort type) gets an error, the others
    go on. This loop is the hot path of every function call, hence the locals."""
    resp = _InvokeResponse(batch_id=batch.batch_id)
    add = resp.results.add
    plain = _PLAIN
    for row in batch.rows:
        res = add()
        try:
            a = row.args
            if len(a) == 1:  # indexing is cheaper than iterating a repeated field
                v = a[0]
                k = v.WhichOneof("kind")
                args = [getattr(v, k) if k in plain else from_value(v)]
            else:
                args = [getattr(v, k) if (k := v.WhichOneof("kind")) in plain else from_value(v) for v in a]
            out = exec_(args, ctx)
            if type(out) is str:
                res.value.string_value = out
            else:
                set_value(res.value, out)
        except Exception as e:  # the row fails, not the stream
            res.error = _message(e)
    return resp


class _Failure:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _SourceRun:
    """One source instance: open() on its own thread, events through a bounded
    queue. When open() returns (or its generator ends) the stream stays open, idle
    (threads it started may still emit), until the server closes it: oortd takes a
    source stream that ends by itself for a failure and reopens it."""

    def __init__(self, name: str, inst: Any, rule_id: str) -> None:
        self.name = name
        self.inst = inst
        self.stop = threading.Event()
        self.queue: "queue.Queue[Any]" = queue.Queue(SOURCE_QUEUE)
        self.ctx = SourceContext(rule_id, name, self._emit, self.stop)
        self._lock = threading.Lock()
        self._closed = False
        self.finished = threading.Event()  # open() has returned
        self.thread = threading.Thread(target=self._run, name=f"oort source {name}", daemon=True)

    def _put(self, item: Any) -> bool:
        while True:
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self.stop.is_set():
                    return False

    def _emit(self, fields: Any, meta: Any, timestamp: Any) -> None:
        if self.stop.is_set():
            raise SourceStopped(f"source {self.name} is stopped")
        ev = value_pb2.Event()
        fill_event(ev, fields, meta, timestamp)
        if not self._put(ev):
            raise SourceStopped(f"source {self.name} is stopped")

    def _run(self) -> None:
        try:
            produced = self.inst.open(self.ctx)
            if produced is not None and hasattr(produced, "__iter__") and not isinstance(produced, (str, bytes, dict)):
                it = iter(produced)
                try:
                    for item in it:  # a dict of fields or an Event
                        self.ctx.emit(item)
                        if self.stop.is_set():
                            break
                finally:
                    close = getattr(it, "close", None)
                    if close is not None:
                        close()
        except SourceStopped:
            pass
        except Exception as e:
            if self.stop.is_set():
                log.debug("source %s (rule %s) raised after it was stopped: %s", self.name, self.ctx.rule_id, e)
            else:
                log.exception("source %s (rule %s) failed", self.name, self.ctx.rule_id)
                self._put(_Failure(f"source {self.name} failed: {_message(e)}"))
        finally:
            self.finished.set()

    def close(self, timeout: float) -> None:
        """Stops the instance and calls its close(), once, whatever the caller."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(min(timeout, 1.0))  # a loop that watches ctx.stopped ends here
        try:
            self.inst.close(self.ctx)
        except Exception:
            log.exception("source %s (rule %s): close failed", self.name, self.ctx.rule_id)
        if self.thread.is_alive():
            self.thread.join(max(0.0, deadline - time.monotonic()))
            if self.thread.is_alive():
                log.warning("source %s (rule %s): open() still running after close", self.name, self.ctx.rule_id)


class _SinkRun:
    """One sink instance; collect() and close() never overlap."""

    def __init__(self, name: str, inst: Any, ctx: Context) -> None:
        self.name = name
        self.inst = inst
        self.ctx = ctx
        self.lock = threading.Lock()
        self.closed = False

    def collect(self, events: List[Event]) -> str:
        with self.lock:
            if self.closed:
                return f"sink {self.name} is closed"
            try:
                self.inst.collect(self.ctx, events)
                return ""
            except Exception as e:
                log.warning("sink %s (rule %s): collect failed: %s", self.name, self.ctx.rule_id, e)
                return _message(e)

    def close(self, timeout: float) -> None:
        if not self.lock.acquire(timeout=max(timeout, 0.0)):
            log.warning("sink %s (rule %s): collect still running, closing anyway", self.name, self.ctx.rule_id)
            locked = False
        else:
            locked = True
        try:
            if self.closed:
                return
            self.closed = True
            try:
                self.inst.close(self.ctx)
            except Exception:
                log.exception("sink %s (rule %s): close failed", self.name, self.ctx.rule_id)
        finally:
            if locked:
                self.lock.release()


class _Instances:
    """The live source and sink instances, so Shutdown and exit can close them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: Set[Any] = set()
        self.closing = False

    def add(self, run: Any) -> bool:
        with self._lock:
            if self.closing:
                return False
            self._runs.add(run)
            return True

    def remove(self, run: Any) -> None:
        with self._lock:
            self._runs.discard(run)

    def close_all(self, timeout: float) -> None:
        """Closes every instance in parallel, waiting at most ``timeout`` seconds."""
        with self._lock:
            self.closing = True
            runs = list(self._runs)
            self._runs.clear()
        if not runs:
            return
        deadline = time.monotonic() + timeout
        threads = [threading.Thread(target=r.close, args=(timeout,), daemon=True) for r in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        left = sum(t.is_alive() for t in threads)
        if left:
            log.warning("%d instance(s) did not close within %.1f s", left, timeout)


class PluginServicer(plugin_pb2_grpc.PluginServiceServicer):
    """oort.plugin.v1.PluginService over a PluginConfig."""

    def __init__(self, config: PluginConfig, grace_s: float = DEFAULT_GRACE_MS / 1000,
                 on_shutdown: Optional[Callable[[], None]] = None) -> None:
        self.config = config
        self.grace_s = grace_s
        self.instances = _Instances()
        self._on_shutdown = on_shutdown
        self._describe = plugin_pb2.DescribeResponse(
            name=config.name,
            version=config.version,
            protocol_version=PROTOCOL_VERSION,
            symbols=[plugin_pb2.Symbol(name=n, kind=_KINDS[k], aggregate=agg, description=d)
                     for k, n, agg, d in config.symbols],
        )

    # Describe -----------------------------------------------------------------

    def Describe(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._describe

    # Invoke -------------------------------------------------------------------

    def Invoke(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        first = next(request_iterator, None)
        if first is None:
            return
        if first.WhichOneof("message") != "open":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Invoke: the first message must be an InvokeOpen")
        op = first.open
        fn = self.config.function(op.function)
        if fn is None:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"plugin {self.config.name} has no function {op.function!r}")
        try:
            refusal = fn.validate([None] * op.arg_count)
        except Exception as e:
            refusal = _message(e)
        if refusal:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{op.function}: {refusal}")
        ctx = Context(op.rule_id, op.function)
        exec_ = fn.exec
        yield _INVOKE_ACK  # open: before any batch
        for req in request_iterator:
            if req.WhichOneof("message") != "batch":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Invoke: only the first message may be an InvokeOpen")
            yield call_batch(exec_, ctx, req.batch)

    # OpenSource ---------------------------------------------------------------

    def OpenSource(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        factory = self.config.source(request.source)
        if factory is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"plugin {self.config.name} has no source {request.source!r}")
        inst = factory()
        try:
            inst.configure(request.datasource, struct_to_dict(request.config))
        except Exception as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"source {request.source}: {_message(e)}")
        run = _SourceRun(request.source, inst, request.rule_id)
        if not self.instances.add(run):
            context.abort(grpc.StatusCode.UNAVAILABLE, "the plugin is shutting down")

        def cancelled() -> None:  # the server closed the stream (or the plugin stops)
            run.stop.set()
            threading.Thread(target=self._close, args=(run,), daemon=True).start()

        context.add_callback(cancelled)
        q = run.queue
        try:
            yield _SOURCE_ACK  # configured: before it produces
            run.thread.start()
            while True:
                try:
                    item = q.get(timeout=0.25)
                except queue.Empty:
                    if run.stop.is_set():
                        return
                    continue
                batch = []
                last = None
                while True:
                    if type(item) is _Failure:
                        last = item
                        break
                    batch.append(item)
                    if len(batch) >= SOURCE_BATCH:
                        break
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    yield _OpenSourceResponse(events=batch)
                if isinstance(last, _Failure):
                    context.abort(grpc.StatusCode.UNAVAILABLE, last.message)
        finally:
            self._close(run)

    def _close(self, run: Any) -> None:
        self.instances.remove(run)
        run.close(self.grace_s)

    # OpenSink -----------------------------------------------------------------

    def OpenSink(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        first = next(request_iterator, None)
        if first is None:
            return
        if first.WhichOneof("message") != "open":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "OpenSink: the first message must be a SinkOpen")
        op = first.open
        factory = self.config.sink(op.sink)
        if factory is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"plugin {self.config.name} has no sink {op.sink!r}")
        inst = factory()
        try:
            inst.configure(struct_to_dict(op.config))
        except Exception as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"sink {op.sink}: {_message(e)}")
        ctx = Context(op.rule_id, op.sink)
        try:
            inst.open(ctx)
        except Exception as e:
            log.exception("sink %s (rule %s): open failed", op.sink, op.rule_id)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"sink {op.sink}: open failed: {_message(e)}")
        run = _SinkRun(op.sink, inst, ctx)
        if not self.instances.add(run):
            run.close(self.grace_s)
            context.abort(grpc.StatusCode.UNAVAILABLE, "the plugin is shutting down")
        context.add_callback(lambda: threading.Thread(target=self._close, args=(run,), daemon=True).start())
        try:
            yield _SINK_ACK  # configured and open: before any batch
            for req in request_iterator:
                if req.WhichOneof("message") != "batch":
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "OpenSink: only the first message may be a SinkOpen")
                batch = req.batch
                try:
                    events = [event_from_proto(e) for e in batch.events]
                except Exception as e:  # a value this SDK cannot read: refuse the batch
                    error = f"cannot read the batch: {_message(e)}"
                else:
                    error = run.collect(events)
                yield _OpenSinkResponse(batch_id=batch.batch_id, error=error)
        finally:
            self._close(run)

    # Shutdown -----------------------------------------------------------------

    def Shutdown(self, request: Any, context: grpc.ServicerContext) -> Any:
        # Most of the grace for the instances, the rest to answer and exit before
        # the server's kill.
        log.info("Shutdown: closing every instance (grace %.1f s)", self.grace_s)
        self.instances.close_all(self.grace_s * 0.8)
        if self._on_shutdown is not None:
            self._on_shutdown()
        return plugin_pb2.ShutdownResponse()


# Start-up -------------------------------------------------------------------


def _refuse(text: str) -> int:
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()
    return 1


def _grace_seconds(env: Dict[str, str]) -> float:
    raw = env.get("OORT_PLUGIN_SHUTDOWN_GRACE_MS", "")
    try:
        ms = int(raw)
        if ms >= 0:
            return ms / 1000
    except ValueError:
        pass
    if raw:
        log.warning("OORT_PLUGIN_SHUTDOWN_GRACE_MS=%r is not a number of milliseconds; using %d", raw, DEFAULT_GRACE_MS)
    return DEFAULT_GRACE_MS / 1000


def _watch_stdin(done: Callable[[str], None]) -> None:
    # The server holds the other end of stdin: EOF means it has gone.
    try:
        stream = sys.stdin.buffer if sys.stdin is not None else None
        while stream is not None:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
    except (OSError, ValueError):
        pass
    done("stdin closed")


class _Done:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self._lock = threading.Lock()

    def __call__(self, reason: str) -> None:
        with self._lock:
            if not self.event.is_set():
                self.reason = reason
                self.event.set()


def serve(config: PluginConfig, *, max_workers: int = 256) -> int:
    """Serves ``config`` as the Oort server expects, until stdin closes or the
    server calls Shutdown; returns the exit status (0, or 1 when the start-up
    environment is wrong, with the reason on stderr). ``max_workers`` bounds the
    streams open at once (each Invoke, OpenSource and OpenSink holds a thread)."""
    env = dict(os.environ)
    who = f"{config.name} {config.version}"
    if env.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        return _refuse(
            f"This program is an Oort plugin ({who}). It is meant to be started by oortd, the Oort server,\n"
            f"not run by hand: install its package with `oort plugin install` and use its symbols in rules.\n"
            f"({MAGIC_COOKIE_KEY} is not set to the value oortd uses.)")
    proto = env.get("OORT_PLUGIN_PROTOCOL", "")
    if proto != str(PROTOCOL_VERSION):
        return _refuse(
            f"Oort plugin {who}: the server speaks plugin protocol {proto or '(none)'!s}, this plugin "
            f"(oort-plugin SDK) speaks protocol {PROTOCOL_VERSION}; use a plugin and server that match.")
    path = env.get("OORT_PLUGIN_SOCKET", "")
    use_unix = hasattr(socket, "AF_UNIX")
    if use_unix and not path:
        return _refuse(f"Oort plugin {who}: OORT_PLUGIN_SOCKET (the socket path to listen on) is not set.")
    grace = _grace_seconds(env)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    done = _Done()
    servicer = PluginServicer(config, grace, on_shutdown=lambda: done("Shutdown"))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="oort-rpc"),
        options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
    )
    plugin_pb2_grpc.add_PluginServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    if use_unix:
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # a stale socket of an earlier run
        except FileNotFoundError:
            pass
        old_umask = os.umask(0o177)  # the socket is born 0600; chmod below makes sure
        try:
            server.add_insecure_port(f"unix:{path}")
        except RuntimeError as e:
            return _refuse(f"Oort plugin {who}: cannot listen on {path}: {e}")
        finally:
            os.umask(old_umask)
        server.start()
        os.chmod(path, 0o600)
        handshake = f"OORT_PLUGIN|{PROTOCOL_VERSION}|unix|{path}"
    else:  # no Unix sockets on this platform
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        handshake = f"OORT_PLUGIN|{PROTOCOL_VERSION}|tcp|127.0.0.1:{port}"

    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

    sys.stdout.write(handshake + "\n")
    sys.stdout.flush()
    # From here on stdout is stderr: a stray print must not reach (or fill) the
    # pipe the server read the handshake from.
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        sys.stdout = sys.stderr

    threading.Thread(target=_watch_stdin, args=(done,), name="oort stdin", daemon=True).start()
    try:
        signal.signal(signal.SIGTERM, lambda *_: done("SIGTERM"))
    except (ValueError, OSError):  # not the main thread
        pass
    log.info("%s serving on %s", who, handshake.split("|", 3)[3])
    try:
        while not done.event.wait(1.0):
            pass
    except KeyboardInterrupt:
        done("interrupted")

    log.info("%s stopping: %s", who, done.reason)
    health_servicer.enter_graceful_shutdown()
    servicer.instances.close_all(grace * 0.8)  # nothing left to do after Shutdown
    server.stop(min(grace * 0.2, 1.0)).wait()
    if use_unix:
        try:
            os.unlink(path)
        except OSError:
            pass
    return 0


def main(config: PluginConfig) -> None:
    """Runs :func:`serve` and exits the process with its status, without waiting
    for threads a plugin may have left running: a plugin must not outlive the
    server."""
    code = serve(config)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)
