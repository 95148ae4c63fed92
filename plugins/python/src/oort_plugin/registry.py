"""The list of what a plugin provides: :class:`PluginConfig`, made by :func:`plugin`.

Like eKuiper's ``PluginConfig``: explicit dictionaries from symbol name to
implementation, no decorators and no global registry.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from oort_plugin.api import Function, Sink, Source

__all__ = ["PluginConfig", "plugin"]

SourceFactory = Callable[[], Source]
SinkFactory = Callable[[], Sink]


def _function_of(name: str, f: Any) -> Function:
    # A Function instance, a Function subclass, or a factory of one.
    obj = f() if inspect.isclass(f) or (callable(f) and not isinstance(f, Function)) else f
    if not isinstance(obj, Function):
        raise TypeError(f"function {name!r}: expected an oort_plugin.Function (or a factory of one), "
                        f"got {type(obj).__name__}")
    return obj


def _check_factory(kind: str, name: str, factory: Any, base: type) -> str:
    if not callable(factory) or isinstance(factory, base):
        raise TypeError(f"{kind} {name!r}: expected a class or factory that makes a new "
                        f"oort_plugin.{base.__name__} per instance, got {type(factory).__name__}")
    # One throwaway instance: it checks the factory and gives the description.
    obj: Any = factory()
    if not isinstance(obj, base):
        raise TypeError(f"{kind} {name!r}: the factory made a {type(obj).__name__}, "
                        f"not an oort_plugin.{base.__name__}")
    description: Callable[[], str] = getattr(obj, "description")
    return str(description() or "")


class PluginConfig:
    """A plugin: its name and version (as in ``manifest.json``), and its functions,
    sources and sinks by name.

    - ``functions``: name → a :class:`Function` instance (or a class or factory
      of one, called once). Function names are lower-cased, as SQL does.
    - ``sources``: name → a class or zero-argument factory making a new
      :class:`Source` for each stream that reads it.
    - ``sinks``: name → a class or zero-argument factory making a new
      :class:`Sink` for each rule action.

    Each source and sink factory is called once here, to check it and read the
    description, so it should be cheap and have no side effects (connect in
    ``open``, not in ``__init__``)."""

    def __init__(
        self,
        name: str,
        version: str,
        functions: Optional[Mapping[str, Any]] = None,
        sources: Optional[Mapping[str, SourceFactory]] = None,
        sinks: Optional[Mapping[str, SinkFactory]] = None,
    ) -> None:
        if not name:
            raise ValueError("a plugin needs a name")
        self.name = name
        self.version = version
        self.functions: Dict[str, Function] = {}
        self.sources: Dict[str, SourceFactory] = {}
        self.sinks: Dict[str, SinkFactory] = {}
        # (kind, name, aggregate, description) in registration order, for Describe.
        self.symbols: List[Tuple[str, str, bool, str]] = []
        for fname, f in (functions or {}).items():
            fn = _function_of(fname, f)
            key = fname.lower()
            self.functions[key] = fn
            self.symbols.append(("function", key, bool(fn.is_aggregate()), str(fn.description() or "")))
        for sname, factory in (sources or {}).items():
            desc = _check_factory("source", sname, factory, Source)
            self.sources[sname] = factory
            self.symbols.append(("source", sname, False, desc))
        for kname, sink_factory in (sinks or {}).items():
            desc = _check_factory("sink", kname, sink_factory, Sink)
            self.sinks[kname] = sink_factory
            self.symbols.append(("sink", kname, False, desc))

    def function(self, name: str) -> Optional[Function]:
        """The function called ``name`` (any case), or ``None``."""
        return self.functions.get(name) or self.functions.get(name.lower())

    def source(self, name: str) -> Optional[SourceFactory]:
        """The factory of the source called ``name``, or ``None``."""
        return self.sources.get(name) or _folded(self.sources, name)

    def sink(self, name: str) -> Optional[SinkFactory]:
        """The factory of the sink called ``name``, or ``None``."""
        return self.sinks.get(name) or _folded(self.sinks, name)

    def __repr__(self) -> str:
        return (f"PluginConfig({self.name!r}, {self.version!r}, functions={list(self.functions)}, "
                f"sources={list(self.sources)}, sinks={list(self.sinks)})")


def _folded(d: Mapping[str, Any], name: str) -> Any:
    low = name.lower()
    for k, v in d.items():
        if k.lower() == low:
            return v
    return None


def plugin(
    name: str,
    version: str,
    functions: Optional[Mapping[str, Any]] = None,
    sources: Optional[Mapping[str, SourceFactory]] = None,
    sinks: Optional[Mapping[str, SinkFactory]] = None,
) -> PluginConfig:
    """Shorthand for :class:`PluginConfig`."""
    return PluginConfig(name, version, functions=functions, sources=sources, sinks=sinks)
