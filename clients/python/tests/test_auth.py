"""The token and TLS: oortd asks every call but health for `authorization:
Bearer <token>`, and serves TLS with --tls-cert/--tls-key."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import grpc
import pytest

from conftest import Server
from oort.v1 import stream_pb2
from oort_client import Oort, OortError

STREAM_SQL = 'CREATE STREAM {} (temperature FLOAT, deviceId STRING) WITH (TYPE="grpc", DATASOURCE="{}")'


@pytest.fixture(scope="module")
def tls_server() -> Iterator[Server]:
    s = Server(tls=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def mtls_server() -> Iterator[Server]:
    s = Server(client_ca=True)
    yield s
    s.stop()


def test_a_call_without_a_token_or_with_a_wrong_one_is_unauthenticated(server: Server) -> None:
    for token in ["", "0" * 64]:
        with server.client(token=token) as oort:
            with pytest.raises(OortError) as error:
                oort.streams.list()
            assert error.value.code == grpc.StatusCode.UNAUTHENTICATED, token


def test_the_token_defaults_to_oort_token(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OORT_TOKEN", server.token + "\n")  # as read from a file: the newline goes
    with Oort(server.addr) as oort:
        assert oort.streams.list() == []
    with Oort(server.addr, token="") as oort:  # "" sends none, whatever the environment says
        with pytest.raises(OortError) as error:
            oort.streams.list()
        assert error.value.code == grpc.StatusCode.UNAUTHENTICATED


def check_stream(oort: Oort, name: str) -> None:
    created = oort.streams.create(STREAM_SQL.format(name, name))
    assert created.name == name
    got = oort.streams.get(name)
    assert got.name == name
    assert got.kind == stream_pb2.STREAM_KIND_STREAM
    assert [f.name for f in got.fields] == ["temperature", "deviceId"]
    oort.streams.delete(name)


def test_tls_with_the_servers_ca_and_the_token(tls_server: Server) -> None:
    with tls_server.client() as oort:  # the CA as a file path
        check_stream(oort, "secure")
    ca = pathlib.Path(tls_server.ca).read_bytes()
    with Oort(tls_server.addr, token=tls_server.token, root_certificates=ca) as oort:  # as PEM bytes
        check_stream(oort, "secure_bytes")
    with Oort(tls_server.addr, token="", root_certificates=ca) as oort:
        with pytest.raises(OortError) as error:
            oort.streams.list()
        assert error.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_mutual_tls_with_a_client_certificate_and_the_token(mtls_server: Server) -> None:
    certs = mtls_server.certs
    with mtls_server.client(certificate_chain=certs / "client.pem", private_key=certs / "client.key") as oort:
        check_stream(oort, "mutual")
