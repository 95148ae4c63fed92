"""Python SDK for Oort portable plugins.

A plugin is a :class:`PluginConfig` (made by :func:`plugin`) of
:class:`Function`, :class:`Source` and :class:`Sink` implementations, served with
:func:`main` (or :func:`serve`) over the oort.plugin.v1 gRPC protocol::

    import oort_plugin

    class Upper(oort_plugin.Function):
        "Upper-cases a string."
        def validate(self, args):
            return None if len(args) == 1 else "upper takes 1 argument"
        def exec(self, args, ctx):
            return args[0].upper()

    if __name__ == "__main__":
        oort_plugin.main(oort_plugin.plugin("demo", "1.0.0", functions={"upper": Upper()}))

Modules:

- :mod:`oort_plugin.api`: ``Function``, ``Source``, ``Sink``, ``Context``, ``SourceContext``
- :mod:`oort_plugin.registry`: ``PluginConfig`` and ``plugin()``
- :mod:`oort_plugin.values`: Python values ⇄ ``oort.v1.Value``/``Event``, and ``Event``
- :mod:`oort_plugin.server`: ``serve()`` and ``main()``, the protocol itself
- :mod:`oort_plugin.testing`: run a function, source or sink without oortd
- ``oort_plugin._gen``: the generated messages (``scripts/gen-clients.sh``)
"""

from oort_plugin.api import Context, Function, Sink, Source, SourceContext, SourceStopped
from oort_plugin.registry import PluginConfig, plugin
from oort_plugin.server import PROTOCOL_VERSION, main, serve
from oort_plugin.values import Event

__version__ = "0.1.0"

__all__ = [
    "Context",
    "Event",
    "Function",
    "PROTOCOL_VERSION",
    "PluginConfig",
    "Sink",
    "Source",
    "SourceContext",
    "SourceStopped",
    "main",
    "plugin",
    "serve",
]
