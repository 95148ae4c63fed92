"""Starts a portable plugin as oortd does (plugin.proto's start-up rules): the
environment variables, a private directory (0700) for the socket, stdin a pipe
that the plugin watches, the handshake line read from stdout with a timeout;
then a gRPC channel over ``unix:``. Used by the tests and bench_throughput.py."""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.normpath(os.path.join(HERE, "..", "..", "examples", "pydemo"))
COOKIE = "oort-plugin-7c2b1d9e"


def plugin_env(socket_path, **extra):
    env = dict(os.environ)
    env.update({
        "OORT_PLUGIN_MAGIC_COOKIE": COOKIE,
        "OORT_PLUGIN_PROTOCOL": "1",
        "OORT_PLUGIN_SOCKET": socket_path,
        "OORT_PLUGIN_SHUTDOWN_GRACE_MS": "2000",
    })
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class PluginProcess:
    """One plugin process. ``folder`` holds the unpacked package (main.py)."""

    def __init__(self, folder, executable="main.py", python=sys.executable, **env):
        self.folder = str(folder)
        self.executable = executable
        self.python = python
        # A short private directory: a Unix socket path must stay under ~100 bytes.
        self.dir = tempfile.mkdtemp(prefix="oort-py-")
        os.chmod(self.dir, 0o700)
        self.socket = os.path.join(self.dir, "plugin.sock")
        self.env = plugin_env(self.socket, **env)
        self.proc = None
        self.handshake = None
        self.stderr_lines = []
        self.channel = None

    def spawn(self):
        self.proc = subprocess.Popen(
            [self.python, self.executable], cwd=self.folder, env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        return self.proc

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line.decode("utf-8", "replace"))

    @property
    def stderr(self):
        return "".join(self.stderr_lines)

    def read_handshake(self, timeout=15.0):
        """The first stdout line, or an AssertionError after ``timeout`` seconds."""
        box = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not box:
            raise AssertionError(f"no handshake line within {timeout} s; stderr:\n{self.stderr}")
        return box[0].decode("utf-8").rstrip("\n")

    def start(self, timeout=15.0):
        self.spawn()
        self.handshake = self.read_handshake(timeout)
        parts = self.handshake.split("|")
        assert parts[:3] == ["OORT_PLUGIN", "1", "unix"], self.handshake
        assert parts[3] == self.socket, self.handshake
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        grpc.channel_ready_future(self.channel).result(timeout=timeout)
        return self

    def close_stdin(self):
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def wait(self, timeout=10.0):
        return self.proc.wait(timeout)

    def stop(self):
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None and self.proc.poll() is None:
            self.close_stdin()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_until(predicate, timeout=5.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
