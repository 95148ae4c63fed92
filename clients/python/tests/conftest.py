"""Starts the real oortd (OORT_BIN, default <repo>/target/debug/oortd) on a free
port with a temporary data directory, as the Rust integration tests do: waits
for its `oortd listening addr=...` line, then for grpc.health.v1 SERVING."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from oort_client import Oort

REPO = pathlib.Path(__file__).resolve().parents[3]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
START_TIMEOUT = 30.0


def oortd_binary() -> str:
    return os.environ.get("OORT_BIN") or str(REPO / "target" / "debug" / "oortd")


class Server:
    def __init__(self) -> None:
        binary = oortd_binary()
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"no oortd at {binary}: build it (cargo build --bin oortd) or set OORT_BIN")
        self.data_dir = tempfile.TemporaryDirectory(prefix="oort-py-")
        env = {k: v for k, v in os.environ.items() if k not in ("OORT_LISTEN", "OORT_DATA_DIR")}
        env["RUST_LOG"] = "info"
        self.process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--data-dir", self.data_dir.name, "--http-push-listen", "off"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        found = threading.Event()
        self.addr = ""

        def drain() -> None:  # reads every line, so the server never blocks on a full pipe
            assert self.process.stdout is not None
            for line in self.process.stdout:
                line = ANSI.sub("", line)
                if os.environ.get("OORT_TEST_LOG"):
                    print("[oortd]", line, end="")
                match = re.search(r"oortd listening.*addr=(\S+)", line)
                if match and not found.is_set():
                    self.addr = match.group(1)
                    found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(START_TIMEOUT):
            self.stop()
            raise RuntimeError("oortd did not log the address it listens on")
        self._wait_serving()

    def _wait_serving(self) -> None:
        # grpc.health.v1.Health/Check with an empty HealthCheckRequest; the answer
        # HealthCheckResponse{status: SERVING (1)} encodes as b"\x08\x01".
        with grpc.insecure_channel(self.addr) as channel:
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
    with Oort(server.addr) as client:
        yield client
