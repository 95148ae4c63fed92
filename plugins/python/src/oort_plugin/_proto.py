"""The generated oort.plugin.v1 and oort.v1 modules, imported in one place.

They live in ``oort_plugin/_gen`` (``scripts/gen-clients.sh`` writes them), so
the SDK needs no other package of Oort's and a plugin zip carries them with it.
"""

from oort_plugin._gen.oort.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from oort_plugin._gen.oort.v1 import value_pb2

__all__ = ["plugin_pb2", "plugin_pb2_grpc", "value_pb2"]
