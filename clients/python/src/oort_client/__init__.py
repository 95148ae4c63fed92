"""Python client of Oort's gRPC API.

    from oort_client import Oort

    oort = Oort("127.0.0.1:9081")  # the token: token="...", or $OORT_TOKEN
    oort.streams.create('CREATE STREAM s (t FLOAT) WITH (TYPE="grpc", DATASOURCE="s")')

The generated messages and stubs are importable as `oort.v1.<file>_pb2` and
`oort.v1.<file>_pb2_grpc`, for everything the wrapper does not cover.
"""

# The package's version, the one place it is written: pyproject.toml reads it
# from here (setuptools' dynamic version).
__version__ = "0.1.0"

from oort_client._client import (
    BearerToken,
    Events,
    Oort,
    OortError,
    Rules,
    Streams,
    Tail,
    from_value,
    to_event,
    to_value,
)

__all__ = [
    "BearerToken",
    "Events",
    "Oort",
    "OortError",
    "Rules",
    "Streams",
    "Tail",
    "from_value",
    "to_event",
    "to_value",
]
