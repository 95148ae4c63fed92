"""Starts the real oortd (OORT_BIN, default <repo>/target/debug/oortd) on a free
port with a temporary data directory, as the Rust integration tests do: waits
for its ready line (JSON on stdout), then for grpc.health.v1 SERVING. Each
server asks for a fresh random admin token (OORT_AUTH_TOKEN); with `tls=True`
it serves TLS with a certificate of a throwaway CA made with the openssl CLI."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import re
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from oort_client import Oort

REPO = pathlib.Path(__file__).resolve().parents[3]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
START_TIMEOUT = 30.0
# Inherited variables that would change what the tests ask of the server or send it.
SCRUBBED = ("OORT_LISTEN", "OORT_DATA_DIR", "OORT_AUTH_TOKEN", "OORT_TOKEN", "OORT_TLS_CERT", "OORT_TLS_KEY", "OORT_TLS_CLIENT_CA")


def oortd_binary() -> str:
    return os.environ.get("OORT_BIN") or str(REPO / "target" / "debug" / "oortd")


def openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(directory: pathlib.Path) -> None:
    """A throwaway CA (ca.pem), a server certificate for 127.0.0.1 and localhost
    (server.pem, server.key) and a client certificate (client.pem, client.key), all signed by it."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=oort-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    for name, usage, extra in [
        ("server", "serverAuth", ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]),
        ("client", "clientAuth", []),
    ]:
        openssl("req", "-x509", *ec, "-CA", "ca.pem", "-CAkey", "ca.key", "-keyout", f"{name}.key", "-out", f"{name}.pem",
                "-subj", f"/CN=oort-test-{name}", "-addext", "basicConstraints=critical,CA:FALSE",
                "-addext", f"extendedKeyUsage={usage}", *extra, cwd=directory)



def ready_address(line: str) -> str | None:
    """The API address of oortd's ready line (one JSON object on stdout,
    `{"oortd": "ready", "api": ...}`), or None for any other line."""
    if not line.startswith("{"):
        return None
    try:
        ready = json.loads(line)
    except ValueError:
        return None
    if isinstance(ready, dict) and ready.get("oortd") == "ready":
        return str(ready["api"])
    return None

class Server:
    """A running oortd: `addr`, its admin `token`, and with TLS `ca` (the path of
    the CA's certificate) and `certs` (the directory of every certificate and key)."""

    def __init__(self, tls: bool = False, client_ca: bool = False) -> None:
        binary = oortd_binary()
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"no oortd at {binary}: build it (cargo build --bin oortd) or set OORT_BIN")
        self.data_dir = tempfile.TemporaryDirectory(prefix="oort-py-")
        self.token = secrets.token_hex(32)
        self.tls = tls or client_ca
        self.certs = pathlib.Path(self.data_dir.name) / "certs"
        self.ca = str(self.certs / "ca.pem")
        args = [binary, "--listen", "127.0.0.1:0", "--data-dir", self.data_dir.name, "--http-push-listen", "off"]
        if self.tls:
            self.certs.mkdir()
            make_certs(self.certs)
            args += ["--tls-cert", str(self.certs / "server.pem"), "--tls-key", str(self.certs / "server.key")]
        if client_ca:
            args += ["--tls-client-ca", self.ca]
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env["RUST_LOG"] = "info"
        env["OORT_AUTH_TOKEN"] = self.token
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        found = threading.Event()
        self.addr = ""
        last: collections.deque[str] = collections.deque(maxlen=20)

        def drain() -> None:  # reads every line, so the server never blocks on a full pipe
            assert self.process.stdout is not None
            for line in self.process.stdout:
                line = ANSI.sub("", line)
                last.append(line)
                if os.environ.get("OORT_TEST_LOG"):
                    print("[oortd]", line, end="")
                ready = ready_address(line)
                if ready and not found.is_set():
                    self.addr = ready
                    found.set()
            found.set()  # the server exited

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(START_TIMEOUT) or not self.addr:
            self.stop()
            raise RuntimeError("oortd did not say it is ready:\n" + "".join(last))
        self._wait_serving()

    def client(self, **kwargs: Any) -> Oort:
        """A client of this server with its token (and CA), unless kwargs say otherwise."""
        kwargs.setdefault("token", self.token)
        if self.tls and "channel" not in kwargs:
            kwargs.setdefault("root_certificates", self.ca)
        return Oort(self.addr, **kwargs)

    def _channel(self) -> grpc.Channel:
        if self.tls:
            return grpc.secure_channel(self.addr, grpc.ssl_channel_credentials(pathlib.Path(self.ca).read_bytes()))
        return grpc.insecure_channel(self.addr)

    def _wait_serving(self) -> None:
        # grpc.health.v1.Health/Check (which needs no token) with an empty HealthCheckRequest;
        # the answer HealthCheckResponse{status: SERVING (1)} encodes as b"\x08\x01".
        with self._channel() as channel:
            check = channel.unary_unary("/grpc.health.v1.Health/Check")
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    if check(b"", timeout=5, wait_for_ready=True) == b"\x08\x01":
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("oortd is not SERVING")
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.data_dir.cleanup()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.fixture()
def oort(server: Server) -> Iterator[Oort]:
    with server.client() as client:
        yield client
