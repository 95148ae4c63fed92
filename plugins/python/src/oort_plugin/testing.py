"""Run one symbol without oortd (like eKuiper's ``sdk/go/mock``): the same code
paths the server reaches over gRPC, in-process, for a plugin's unit tests::

    from oort_plugin.testing import call, run_source, run_sink

    assert call(Upper(), [["a"], [None]]) == ["A", None]
    events = run_source(Counter, "t", {"interval_ms": 1, "count": 3}, events=3)
    assert run_sink(JsonFile, {"path": p}, [[{"a": 1}]]) == [""]
"""

from __future__ import annotations

import queue
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from oort_plugin._proto import plugin_pb2
from oort_plugin.api import Context, Function
from oort_plugin.server import _Failure, _SinkRun, _SourceRun, call_batch
from oort_plugin.values import Event, dict_to_struct, event_from_proto, event_to_proto, from_value, set_value, struct_to_dict

__all__ = ["CallError", "call", "run_sink", "run_source"]


class CallError(Exception):
    """The error of one row, as the server would receive it."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallError) and self.args == other.args

    def __hash__(self) -> int:
        return hash(self.args)


def call(function: Function, rows: Iterable[Sequence[Any]], rule_id: str = "test") -> List[Any]:
    """Calls ``function`` on each row of arguments as one InvokeBatch would, with
    the values converted to oort.v1 and back: a result per row, or a
    :class:`CallError` for a row that failed. Raises ``ValueError`` if
    ``validate`` refuses the argument count of the first row."""
    rows = [list(r) for r in rows]
    if rows:
        refusal = function.validate([None] * len(rows[0]))
        if refusal:
            raise ValueError(refusal)
    batch = plugin_pb2.InvokeBatch(batch_id=1)
    for r in rows:
        arg_row = batch.rows.add()
        for a in r:
            set_value(arg_row.args.add(), a)
    resp = call_batch(function.exec, Context(rule_id, type(function).__name__), batch)
    out: List[Any] = []
    for res in resp.results:
        if res.WhichOneof("result") == "error":
            out.append(CallError(res.error))
        else:
            out.append(from_value(res.value))
    return out


def run_source(factory: Callable[[], Any], datasource: str = "", conf: Optional[Dict[str, Any]] = None, *,
               events: Optional[int] = None, timeout: float = 5.0, rule_id: str = "test") -> List[Event]:
    """Configures and opens a new source from ``factory``, collects its events
    until it has produced ``events`` of them, its ``open`` returned (and what it
    emitted is read), or ``timeout`` seconds passed, then closes it. Raises ``RuntimeError`` if the source failed."""
    inst = factory()
    inst.configure(datasource, struct_to_dict(dict_to_struct(conf or {})))
    run = _SourceRun(getattr(factory, "__name__", "source"), inst, rule_id)
    run.thread.start()
    got: List[Event] = []
    deadline = time.monotonic() + timeout
    try:
        while events is None or len(got) < events:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = run.queue.get(timeout=min(left, 0.1))
            except queue.Empty:
                if run.finished.is_set() and run.queue.empty():
                    break  # open() returned and nothing is left
                continue
            if isinstance(item, _Failure):
                raise RuntimeError(item.message)
            got.append(event_from_proto(item))
    finally:
        run.close(timeout)
    return got


def run_sink(factory: Callable[[], Any], conf: Optional[Dict[str, Any]], batches: Iterable[Iterable[Any]],
             rule_id: str = "test") -> List[str]:
    """Configures and opens a new sink from ``factory``, sends each batch (a list
    of field dicts or :class:`Event` objects), closes it, and returns the
    acknowledgement of each batch: ``""`` when written, else the error."""
    inst = factory()
    inst.configure(struct_to_dict(dict_to_struct(conf or {})))
    ctx = Context(rule_id, getattr(factory, "__name__", "sink"))
    inst.open(ctx)
    run = _SinkRun(ctx.name, inst, ctx)
    acks = []
    try:
        for batch in batches:
            events = [event_from_proto(event_to_proto(e)) for e in batch]
            acks.append(run.collect(events))
    finally:
        run.close(5.0)
    return acks
