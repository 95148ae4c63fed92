"""What a plugin author implements, in the style of eKuiper's Python SDK:
:class:`Function`, :class:`Source` and :class:`Sink`, and the :class:`Context`
each of their calls receives.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from typing import Any, Dict, Iterator, List, Optional, Union

from oort_plugin.values import Event

__all__ = ["Context", "Function", "Sink", "Source", "SourceContext", "SourceStopped"]


def _doc_line(obj: object) -> str:
    doc = type(obj).__doc__ or ""
    for line in doc.strip().splitlines():
        return line.strip()
    return ""


class Context:
    """What a call sees besides its arguments: the rule and the symbol it serves,
    and a logger (to stderr, which the server copies into its log)."""

    __slots__ = ("rule_id", "name", "logger")

    def __init__(self, rule_id: str, name: str, logger: Optional[logging.Logger] = None) -> None:
        #: Id of the rule that calls the function or runs the source/sink.
        self.rule_id = rule_id
        #: The symbol's name (function, source or sink).
        self.name = name
        #: A logger named ``oort_plugin.<name>``.
        self.logger = logger or logging.getLogger(f"oort_plugin.{name}")

    # eKuiper's spelling.
    def get_rule_id(self) -> str:
        return self.rule_id

    def get_logger(self) -> logging.Logger:
        return self.logger

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rule_id={self.rule_id!r}, name={self.name!r})"


class SourceStopped(Exception):
    """Raised by :meth:`SourceContext.emit` once the source has been stopped, so a
    loop that only emits still ends."""


class SourceContext(Context):
    """The context of a source instance: :meth:`emit` sends an event to the
    rule; :attr:`stopped` and :meth:`wait` tell when to stop."""

    __slots__ = ("_emit", "_stop")

    def __init__(self, rule_id: str, name: str, emit: Any, stop: threading.Event,
                 logger: Optional[logging.Logger] = None) -> None:
        super().__init__(rule_id, name, logger)
        self._emit = emit
        self._stop = stop

    def emit(self, fields: Union[Dict[str, Any], Event], meta: Optional[Dict[str, str]] = None,
             timestamp: Optional[_dt.datetime] = None) -> None:
        """Sends one event: ``fields`` (column → value; see :mod:`oort_plugin.values`
        for the types), optional ``meta`` (str → str) and event time. Blocks while
        the server is slower than the source (a bounded queue). Raises ``TypeError``
        for a value with no Oort type, and :class:`SourceStopped` once stopped."""
        if isinstance(fields, Event):
            self._emit(fields.fields, meta or fields.meta, timestamp or fields.timestamp)
        else:
            self._emit(fields, meta, timestamp)

    @property
    def stopped(self) -> bool:
        """True once the server has closed the stream (or the plugin shuts down)."""
        return self._stop.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Sleeps up to ``timeout`` seconds (forever if ``None``), waking early when the
        source is stopped; returns :attr:`stopped`. ``while not ctx.wait(0.1): ...``
        is a polling loop that ends promptly."""
        return self._stop.wait(timeout)


class Function:
    """A SQL function (eKuiper's ``Function``). One instance serves every rule
    that calls it, possibly from several threads at once, so keep per-call state
    in locals. Override :meth:`exec`; the other methods have defaults."""

    def validate(self, args: List[Any]) -> Optional[str]:
        """Checks a call when a rule opens it. ``args`` has one entry per argument
        of the SQL call; the protocol tells only their number, so each entry is
        ``None`` (not a literal). Return an error message to refuse the call, or
        ``None`` (or ``""``) to accept it."""
        return None

    def exec(self, args: List[Any], ctx: Context) -> Any:
        """Computes one call. ``args`` are Python values; an aggregate receives, for
        each argument, a ``list`` of that argument's values over the group. Return
        the result (``None`` is SQL NULL); raise to fail this row only (the message
        becomes the row's error, the other rows of the batch still count)."""
        raise NotImplementedError(f"{type(self).__name__}.exec")

    def is_aggregate(self) -> bool:
        """Whether the function aggregates over a group or window."""
        return False

    def description(self) -> str:
        """One line for the server's function list; by default the first line of
        the class docstring."""
        return _doc_line(self)


class Source:
    """A source of events (eKuiper's ``Source``): one instance per stream that a
    rule reads (a new one per ``OpenSource``). The SDK calls :meth:`configure`,
    then :meth:`open` on a thread of its own, and :meth:`close` when the rule
    stops reading."""

    def configure(self, datasource: str, conf: Dict[str, Any]) -> None:
        """Takes the stream's DATASOURCE and options (a ``dict``). Raise (e.g.
        ``ValueError``) to refuse a bad configuration: the stream then ends with
        INVALID_ARGUMENT."""

    def open(self, ctx: SourceContext) -> Optional[Iterator[Any]]:
        """Produces events until ``ctx.stopped``: either call ``ctx.emit(fields)``
        (here, or from threads or callbacks it starts), or be a generator that
        yields ``dict`` fields or :class:`Event` objects. Returning (or the
        generator ending) means nothing more comes from here: the stream stays
        open, idle, until the rule stops reading (then :meth:`close`). Raising
        ends the stream with UNAVAILABLE, and the server reopens the source."""
        raise NotImplementedError(f"{type(self).__name__}.open")

    def close(self, ctx: Context) -> None:
        """Releases what :meth:`open` took. Called once, after ``ctx.stopped`` is
        set, even when :meth:`open` failed or already returned."""

    def description(self) -> str:
        """One line for the server's source list; by default the first line of the
        class docstring."""
        return _doc_line(self)


class Sink:
    """A sink of results (eKuiper's ``Sink``): one instance per rule action (a new
    one per ``OpenSink``). The SDK calls :meth:`configure`, :meth:`open`, then
    :meth:`collect` once per batch (never concurrently), and :meth:`close`."""

    def configure(self, conf: Dict[str, Any]) -> None:
        """Takes the action's properties (a ``dict``). Raise to refuse a bad
        configuration: the stream then ends with INVALID_ARGUMENT."""

    def open(self, ctx: Context) -> None:
        """Connects. Raise if the sink cannot work: the stream ends with UNAVAILABLE."""

    def collect(self, ctx: Context, events: List[Event]) -> None:
        """Writes one batch of :class:`Event` objects (``event.fields`` is the
        result row). Return once written: the SDK acknowledges the batch. Raise if
        it was not written: the batch is acknowledged with the error, and the
        server sends it again."""
        raise NotImplementedError(f"{type(self).__name__}.collect")

    def close(self, ctx: Context) -> None:
        """Flushes and disconnects. Called once, when the rule stops writing."""

    def description(self) -> str:
        """One line for the server's sink list; by default the first line of the
        class docstring."""
        return _doc_line(self)
