"""A thin convenience layer over the generated stubs: plain Python values in,
plain Python values (or the generated messages) out, and one error type."""

from __future__ import annotations

import collections
import datetime
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, Union

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from oort.v1 import (
    event_pb2,
    event_pb2_grpc,
    rule_pb2,
    rule_pb2_grpc,
    stream_pb2,
    stream_pb2_grpc,
    value_pb2,
)

T = TypeVar("T")

# Events per PublishRequest: a message per event costs grpcio ~0.35 ms; the
# server takes any number in `events` or `json`.
PUBLISH_BATCH = 256

# Results per TailRuleResponse that `tail` asks for (`max_batch`): a message per
# result costs grpcio ~0.1 ms; the server sends what it has without waiting.
TAIL_BATCH = 256

#: An action: a sink type ("grpc", "log", "mqtt", ...), a (type, props) pair,
#: or a generated `rule_pb2.Action`.
ActionLike = Union[str, "tuple[str, Mapping[str, Any]]", rule_pb2.Action]


class OortError(Exception):
    """A failed call: the gRPC status code and the server's message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except grpc.RpcError as error:
        raise _error(error) from error


def _error(error: grpc.RpcError) -> OortError:
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    return OortError(code, details or "")


def to_value(value: Any) -> value_pb2.Value:
    """A Python value as an `oort.v1.Value`: None, bool, int, float, str, bytes,
    datetime (timestamp), list/tuple (ARRAY) and dict (STRUCT)."""
    if isinstance(value, value_pb2.Value):
        return value
    target = value_pb2.Value()
    _fill_value(target, value)
    return target


def _fill_value(target: value_pb2.Value, value: Any) -> None:
    """Sets `target` to `value`, in place: with upb, building each message and
    then copying it into its parent costs about four times as much."""
    # bool before int: True is an int too.
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, float):
        target.float_value = value
    elif value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, (bytes, bytearray)):
        target.bytes_value = bytes(value)
    elif isinstance(value, datetime.datetime):
        target.timestamp_value.FromDatetime(value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc))
    elif isinstance(value, (list, tuple)):
        values = target.list_value.values
        for item in value:
            _fill_value(values.add(), item)
        target.list_value.SetInParent()  # an empty list is still a list
    elif isinstance(value, Mapping):
        fields = target.map_value.fields
        for k, v in value.items():
            _fill_value(fields[str(k)], v)
        target.map_value.SetInParent()  # an empty map is still a map
    elif isinstance(value, value_pb2.Value):
        target.CopyFrom(value)
    else:
        raise TypeError(f"cannot convert {type(value).__name__} to oort.v1.Value")


def from_value(value: value_pb2.Value) -> Any:
    """An `oort.v1.Value` as a Python value (the inverse of `to_value`)."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime(tzinfo=datetime.timezone.utc)
    if kind == "list_value":
        return [from_value(v) for v in value.list_value.values]
    if kind == "map_value":
        return {k: from_value(v) for k, v in value.map_value.fields.items()}
    return getattr(value, kind)


def to_event(row: Mapping[str, Any] | value_pb2.Event) -> value_pb2.Event:
    """A dict of column values as an `oort.v1.Event`."""
    if isinstance(row, value_pb2.Event):
        return row
    event = value_pb2.Event()
    _fill_event(event, row)
    return event


def _fill_event(target: value_pb2.Event, row: Mapping[str, Any] | value_pb2.Event) -> None:
    if isinstance(row, value_pb2.Event):
        target.CopyFrom(row)
        return
    fields = target.fields
    for k, v in row.items():
        _fill_value(fields[k], v)


def _action(action: ActionLike) -> rule_pb2.Action:
    if isinstance(action, rule_pb2.Action):
        return action
    if isinstance(action, str):
        return rule_pb2.Action(type=action)
    kind, props = action
    struct = struct_pb2.Struct()
    struct.update(dict(props))
    return rule_pb2.Action(type=kind, props=struct)


class Streams:
    """StreamService: streams and tables, declared in eKuiper DDL."""

    def __init__(self, channel: grpc.Channel, timeout: float | None) -> None:
        self.stub = stream_pb2_grpc.StreamServiceStub(channel)
        self._timeout = timeout

    def create(self, sql: str) -> stream_pb2.Stream:
        """Creates a stream or table from `CREATE STREAM ...` / `CREATE TABLE ...`."""
        request = stream_pb2.CreateStreamRequest(sql=sql)
        return _call(lambda: self.stub.CreateStream(request, timeout=self._timeout)).stream

    def get(self, name: str) -> stream_pb2.Stream:
        request = stream_pb2.GetStreamRequest(name=name)
        return _call(lambda: self.stub.GetStream(request, timeout=self._timeout)).stream

    def list(self, kind: stream_pb2.StreamKind.ValueType = stream_pb2.STREAM_KIND_UNSPECIFIED) -> list[stream_pb2.Stream]:
        request = stream_pb2.ListStreamsRequest(kind=kind)
        return list(_call(lambda: self.stub.ListStreams(request, timeout=self._timeout)).streams)

    def update(self, sql: str) -> stream_pb2.Stream:
        request = stream_pb2.UpdateStreamRequest(sql=sql)
        return _call(lambda: self.stub.UpdateStream(request, timeout=self._timeout)).stream

    def delete(self, name: str) -> None:
        request = stream_pb2.DeleteStreamRequest(name=name)
        _call(lambda: self.stub.DeleteStream(request, timeout=self._timeout))


class Tail:
    """The live results of a rule (RuleService.TailRule): iterate for rows as
    dicts; `cancel()` (or leaving a `with` block) ends the call.

    Rows come as JSON (the default of `Rules.tail`), with the values a JSON sink
    writes: BYTEA as base64 text, DATETIME as RFC 3339 text; or, with
    `typed=True`, as `Event` messages: BYTEA as bytes, DATETIME as datetime,
    and `next_event()` gives each result with its timestamp and metadata."""

    def __init__(self, call: Any, typed: bool) -> None:
        self._call = call
        self._typed = typed
        self._rows: collections.deque[Any] = collections.deque()  # received, not yet read

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._typed:
            return {k: from_value(v) for k, v in self.next_event().fields.items()}
        row: dict[str, Any] = self._next()
        return row

    def next_event(self) -> value_pb2.Event:
        """The next result as the generated `Event` (with timestamp and meta);
        only for a tail opened with `typed=True`."""
        if not self._typed:
            raise TypeError("next_event() needs a tail opened with rules.tail(id, typed=True)")
        event: value_pb2.Event = self._next()
        return event

    def _next(self) -> Any:
        while not self._rows:
            try:
                response: rule_pb2.TailRuleResponse = next(self._call)
            except grpc.RpcError as error:
                raise _error(error) from error
            if self._typed:
                if response.HasField("event"):  # an oortd older than `max_batch` answers in `event`
                    self._rows.append(response.event)
                self._rows.extend(response.events)
            else:
                self._rows.extend(json.loads(response.json))
        return self._rows.popleft()

    def cancel(self) -> None:
        self._call.cancel()

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Rules:
    """RuleService: rules, their lifecycle, status and live output."""

    def __init__(self, channel: grpc.Channel, timeout: float | None) -> None:
        self.stub = rule_pb2_grpc.RuleServiceStub(channel)
        self._timeout = timeout

    def create(
        self,
        id: str,
        sql: str,
        actions: Sequence[ActionLike] = ("grpc",),
        *,
        options: rule_pb2.RuleOptions | None = None,
        triggered: bool | None = None,
    ) -> rule_pb2.Rule:
        """Creates (and, unless `triggered=False`, starts) a rule. Actions are sink
        types or (type, props) pairs; the default `grpc` sink is read with `tail`."""
        rule = rule_pb2.Rule(id=id, sql=sql, actions=[_action(a) for a in actions], options=options)
        if triggered is not None:
            rule.triggered = triggered
        request = rule_pb2.CreateRuleRequest(rule=rule)
        return _call(lambda: self.stub.CreateRule(request, timeout=self._timeout)).rule

    def get(self, id: str) -> rule_pb2.Rule:
        request = rule_pb2.GetRuleRequest(id=id)
        return _call(lambda: self.stub.GetRule(request, timeout=self._timeout)).rule

    def list(self) -> list[rule_pb2.RuleInfo]:
        request = rule_pb2.ListRulesRequest()
        return list(_call(lambda: self.stub.ListRules(request, timeout=self._timeout)).rules)

    def delete(self, id: str) -> None:
        request = rule_pb2.DeleteRuleRequest(id=id)
        _call(lambda: self.stub.DeleteRule(request, timeout=self._timeout))

    def start(self, id: str) -> None:
        request = rule_pb2.StartRuleRequest(id=id)
        _call(lambda: self.stub.StartRule(request, timeout=self._timeout))

    def stop(self, id: str) -> None:
        request = rule_pb2.StopRuleRequest(id=id)
        _call(lambda: self.stub.StopRule(request, timeout=self._timeout))

    def restart(self, id: str) -> None:
        request = rule_pb2.RestartRuleRequest(id=id)
        _call(lambda: self.stub.RestartRule(request, timeout=self._timeout))

    def status(self, id: str) -> rule_pb2.GetRuleStatusResponse:
        """State and per-operator counters (records_in_total, records_out_total, ...)."""
        request = rule_pb2.GetRuleStatusRequest(id=id)
        return _call(lambda: self.stub.GetRuleStatus(request, timeout=self._timeout))

    def explain(self, id: str) -> str:
        request = rule_pb2.ExplainRuleRequest(id=id)
        return _call(lambda: self.stub.ExplainRule(request, timeout=self._timeout)).plan

    def tail(self, id: str, *, typed: bool = False) -> Tail:
        """Streams the rule's results as they are produced, one row at a time
        (received up to `TAIL_BATCH` a message); no deadline. Rows come as JSON,
        or as typed `Event`s with `typed=True` (see `Tail`). Returns once the
        server has opened the tail, so events published after it are seen;
        raises OortError (e.g. NOT_FOUND) if it refuses."""
        encoding = rule_pb2.TAIL_ENCODING_UNSPECIFIED if typed else rule_pb2.TAIL_ENCODING_JSON
        call = self.stub.TailRule(rule_pb2.TailRuleRequest(id=id, max_batch=TAIL_BATCH, encoding=encoding))
        call.initial_metadata()  # blocks until the server answered with headers (or an error)
        if call.done() and call.code() != grpc.StatusCode.OK:
            raise OortError(call.code(), call.details() or "")
        return Tail(call, typed)


class Events:
    """EventService: events into `TYPE="grpc"` streams."""

    def __init__(self, channel: grpc.Channel, timeout: float | None) -> None:
        self.stub = event_pb2_grpc.EventServiceStub(channel)
        self._timeout = timeout

    def publish(self, stream: str, events: Iterable[Mapping[str, Any] | value_pb2.Event]) -> int:
        """Publishes events (dicts of column values, or `Event`s) in one client
        stream, up to `PUBLISH_BATCH` events a message; returns how many the
        server accepted. Dicts of JSON's types go as one JSON document a
        message (`PublishRequest.json`: the C JSON encoder is many times faster
        than building messages); a batch with bytes, datetimes, NaN or `Event`s
        goes as typed events."""

        def requests() -> Iterator[event_pb2.PublishRequest]:
            batch: list[Mapping[str, Any] | value_pb2.Event] = []
            for e in events:
                batch.append(e)
                if len(batch) == PUBLISH_BATCH:
                    yield _publish_request(stream, batch)
                    batch = []
            if batch:
                yield _publish_request(stream, batch)

        return _call(lambda: self.stub.Publish(requests(), timeout=self._timeout)).accepted


def _publish_request(stream: str, batch: list[Mapping[str, Any] | value_pb2.Event]) -> event_pb2.PublishRequest:
    """One PublishRequest of a batch: in JSON when JSON can carry it, typed otherwise."""
    request = event_pb2.PublishRequest(stream=stream)
    if not any(isinstance(e, value_pb2.Event) for e in batch):
        try:
            request.json = json.dumps(batch, allow_nan=False, separators=(",", ":")).encode()
            return request
        except (TypeError, ValueError):
            pass  # bytes, datetimes, NaN...: values that only typed events carry
    for e in batch:
        _fill_event(request.events.add(), e)
    return request


#: A PEM file's contents, or the path of the file.
PemLike = Union[bytes, str, "os.PathLike[str]"]

#: The environment variable the token defaults to.
TOKEN_ENV = "OORT_TOKEN"


def _pem(value: PemLike | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as file:
        return file.read()


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    """The details of a call, with other metadata (grpc.ClientCallDetails is abstract)."""


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds `authorization: Bearer <token>` to every call of a channel:
    `grpc.intercept_channel(channel, BearerToken(token))`. An interceptor rather
    than call credentials, which gRPC sends over TLS only: oortd on a loopback
    address in plaintext asks for the token too."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or ())
        if not any(key == "authorization" for key, _ in metadata):  # a call's own wins
            metadata.append(self._header)
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


class Oort:
    """A connection to `oortd`: `Oort("127.0.0.1:9081").streams.create(sql)`.

    `target` is host:port or any gRPC target. `token` is sent as
    `authorization: Bearer <token>` on every call; by default it is `$OORT_TOKEN`
    (`token=""` sends none). The connection is plaintext unless `tls=True` or
    one of `root_certificates` (the CA that signed the server's certificate;
    the system's CAs when absent), `certificate_chain` and `private_key` (a
    client certificate, for mutual TLS) is given: each as PEM bytes or the path
    of a PEM file. Or pass `channel` to use your own (the token is added to its
    calls too). `timeout` is the deadline of unary calls, in seconds. Use as a
    context manager, or call `close()`.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:9081",
        *,
        channel: grpc.Channel | None = None,
        timeout: float | None = 30.0,
        token: str | None = None,
        tls: bool = False,
        root_certificates: PemLike | None = None,
        certificate_chain: PemLike | None = None,
        private_key: PemLike | None = None,
    ) -> None:
        if channel is None:
            if tls or root_certificates is not None or certificate_chain is not None or private_key is not None:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=_pem(root_certificates),
                    private_key=_pem(private_key),
                    certificate_chain=_pem(certificate_chain),
                )
                channel = grpc.secure_channel(target, credentials)
            else:
                channel = grpc.insecure_channel(target)
        if token is None:
            token = os.environ.get(TOKEN_ENV)
        token = (token or "").strip()  # e.g. read from <data_dir>/admin.token, with its newline
        if token:
            channel = grpc.intercept_channel(channel, BearerToken(token))
        self.channel = channel
        self.streams = Streams(self.channel, timeout)
        self.rules = Rules(self.channel, timeout)
        self.events = Events(self.channel, timeout)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Blocks until the channel connects, or raises OortError(UNAVAILABLE)."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as error:
            raise OortError(grpc.StatusCode.UNAVAILABLE, f"not connected within {timeout} s") from error

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Oort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
