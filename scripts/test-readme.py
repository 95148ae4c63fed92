#!/usr/bin/env python3
"""Runs the marked shell blocks of the given Markdown files against a fresh
oortd and checks the outputs they show. Called by scripts/test-readme.sh,
which documents the convention; Python 3 standard library only.

Usage: test-readme.py --oortd BIN --bin-dir DIR FILE.md [FILE.md ...]
"""

import argparse
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MARKER = "<!-- checked by scripts/test-readme.sh -->"
# The addresses the docs show, replaced by those of the server under test.
DOC_API = "127.0.0.1:9081"
DOC_HTTP_PUSH = "127.0.0.1:10081"
READY_TIMEOUT = 30.0  # a debug oortd on a busy 2-core machine
COMMAND_TIMEOUT = 20.0
BACKGROUND_START = 1.5  # a `rule tail` sees only results published after it subscribed,
# and says nothing when it has: a pause is all a reader of the docs has too
BACKGROUND_WAIT = 5.0  # for the output of background commands to arrive


class Failure(Exception):
    pass


class Command:
    def __init__(self, source, line, text):
        self.source = source  # "README.md:42"
        self.line = line
        self.text = text
        self.expected = []  # lines of expected output, without "# "
        self.background = False


def blocks(path):
    """The marked ```sh blocks of a Markdown file: (first line number, lines)."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == MARKER:
            j = i + 1
            if j >= len(lines) or lines[j].strip() not in ("```sh", "```bash", "```shell"):
                raise Failure(f"{path}:{i + 1}: the marker must stand right above a ```sh block")
            k = j + 1
            while k < len(lines) and lines[k].strip() != "```":
                k += 1
            found.append((j + 2, lines[j + 1 : k]))
            i = k
        i += 1
    return found


def commands(path, first, lines):
    """Splits a block into commands, each with the `# ` lines right after it."""
    result = []
    current = None
    i = 0
    while i < len(lines):
        line = lines[i]
        number = first + i
        stripped = line.strip()
        if not stripped:
            current = None  # a blank line ends a command's expected output
            i += 1
            continue
        if stripped.startswith("#"):
            if current is None:
                raise Failure(f"{path}:{number}: an expected output line with no command above it")
            text = stripped[1:]
            current.expected.append(text[1:] if text.startswith(" ") else text)
            i += 1
            continue
        text = [line]
        # Continuations: a trailing backslash, or a here-document up to its end word.
        while text[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            text.append(lines[i])
        heredoc = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", "\n".join(text))
        if heredoc:
            end = heredoc.group(1)
            while i + 1 < len(lines):
                i += 1
                text.append(lines[i])
                if lines[i].strip() == end:
                    break
            else:
                raise Failure(f"{path}:{number}: here-document without its {end} line")
        current = Command(f"{path}:{number}", number, "\n".join(text))
        try:
            words = shlex.split(current.text, comments=True)
        except ValueError as e:
            raise Failure(f"{current.source}: cannot read the command: {e}")
        if words and words[-1] == "&":
            m = re.match(r"^(.*?)\s&\s*(#.*)?$", current.text, re.S)
            if not m or "\n" in current.text:
                raise Failure(f"{current.source}: a background command is one line ending in ` &`")
            current.text = m.group(1)
            current.background = True
        result.append(current)
        i += 1
    return result


def pattern(expected):
    """A regular expression of expected lines: `...` alone matches any lines,
    a line ending in `...` any line starting with what comes before it."""
    parts = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        elif line.endswith("..."):
            parts.append(re.escape(line[:-3].rstrip()) + r"[^\n]*\n")
        else:
            parts.append(re.escape(line.rstrip()) + r"\n")
    return re.compile("".join(parts))


def normalize(text):
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def kill_session(sid):
    """Ends every process of the session we created (our shell, its jobs)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                if os.getsid(pid) == sid:
                    os.kill(pid, sig)
                    alive.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
        if not alive:
            return
        time.sleep(0.3)


class Server:
    def __init__(self, oortd, work):
        self.log = open(os.path.join(work, "oortd.log"), "w")
        self.process = subprocess.Popen(
            [oortd, "--listen", "127.0.0.1:0", "--http-push-listen", "127.0.0.1:0"],
            cwd=work,  # data in ./data, as when the README's command runs
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ready = self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        out = self.process.stdout
        buffer = b""
        while time.monotonic() < deadline:
            readable, _, _ = select.select([out], [], [], 0.2)
            if readable:
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.split(b"\n")[:-1]:
                    try:
                        ready = json.loads(line)
                    except ValueError:
                        continue
                    if ready.get("oortd") == "ready":
                        return ready
            if self.process.poll() is not None:
                break
        raise Failure(f"oortd did not print its ready line within {READY_TIMEOUT:.0f} s "
                      f"(exit status {self.process.poll()}); its log: {self.log.name}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Shell:
    """One bash for all the blocks, so variables and files carry over as in a
    terminal. Job control is on so that each background job is a process group
    of its own, stopped at the end of its block."""

    def __init__(self, work, env):
        self.work = work
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=work,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.buffer = b""
        self.count = 0
        self.background = []  # (output file, bytes read so far, pid)
        self._send("set -m\n")

    def _send(self, script):
        self.process.stdin.write(script.encode())
        self.process.stdin.flush()

    def _marker(self, tag, timeout):
        deadline = time.monotonic() + timeout
        out = self.process.stdout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(tag + " "):
                    return text[len(tag) + 1 :]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([out], [], [], left)
            if readable:
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    raise Failure("the shell running the commands exited")
                self.buffer += chunk

    def run(self, command):
        """Runs one command; returns (exit status, its output)."""
        self.count += 1
        output = os.path.join(self.work, f".cmd{self.count}.out")
        tag = f"__readme_test_{self.count}"
        if command.background:
            self._send(f"{{\n{command.text}\n}} > {shlex.quote(output)} 2>&1 < /dev/null &\n"
                       f"echo {tag} $!\n")
            pid = self._marker(tag, COMMAND_TIMEOUT)
            if pid is None:
                raise Failure(f"{command.source}: the shell did not start the background command")
            self.background.append([output, 0, int(pid)])
            time.sleep(BACKGROUND_START)
            return 0, ""
        self._send(f"{{\n{command.text}\n}} > {shlex.quote(output)} 2>&1 < /dev/null\n"
                   f"echo {tag} $?\n")
        status = self._marker(tag, COMMAND_TIMEOUT)
        if status is None:
            raise Failure(f"{command.source}: still running after {COMMAND_TIMEOUT:.0f} s:\n  {command.text}")
        with open(output, encoding="utf-8", errors="replace") as f:
            return int(status), f.read()

    def background_output(self):
        """What the background commands printed since the last call (whole lines)."""
        text = ""
        for entry in self.background:
            path, offset, _ = entry
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
            end = data.rfind(b"\n") + 1
            entry[1] += end
            text += data[:end].decode(errors="replace")
        return text

    def stop_background(self):
        for _, _, pid in self.background:
            self._send(f"kill -- -{pid} 2>/dev/null; wait {pid} 2>/dev/null\n")
        self.background = []

    def close(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        kill_session(self.process.pid)


def check(shell, command, substitute):
    status, output = shell.run(command)
    if command.background:
        return
    expected = [substitute(line) for line in command.expected]
    wants_error = bool(expected) and expected[0].lower().startswith("error:")
    if not expected:
        shell.background_output()  # not checked; not left for the next command either
    else:
        regex = pattern(expected)
        actual = normalize(output)
        deadline = time.monotonic() + (BACKGROUND_WAIT if shell.background else 0)
        while True:
            actual += normalize(shell.background_output())
            if regex.fullmatch(actual) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if not regex.fullmatch(actual):
            raise Failure(
                f"{command.source}: the output differs from what the docs show\n"
                f"command:\n{indent(command.text)}\n"
                f"expected (`...` matches anything):\n{indent(chr(10).join(expected))}\n"
                f"actual (exit status {status}):\n{indent(actual.rstrip())}"
            )
    if wants_error and status == 0:
        raise Failure(f"{command.source}: the docs show an error, but the command exited 0:\n{indent(command.text)}")
    if not wants_error and status != 0:
        raise Failure(
            f"{command.source}: exit status {status}\ncommand:\n{indent(command.text)}\n"
            f"output:\n{indent(output.rstrip())}"
        )


def indent(text):
    return "\n".join("    " + line for line in text.split("\n"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oortd", required=True)
    parser.add_argument("--bin-dir", required=True, help="the folder of the oort CLI, put first on PATH")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    plan = []
    for path in args.files:
        for first, lines in blocks(path):
            plan.append((path, first, commands(path, first, lines)))
    if not plan:
        raise Failure(f"no block marked `{MARKER}` in {', '.join(args.files)}")

    work = tempfile.mkdtemp(prefix="oort-readme-")
    server = shell = None

    def on_signal(signum, _frame):
        raise Failure(f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = Server(os.path.abspath(args.oortd), work)
        api, http_push = server.ready["api"], server.ready["http_push"]
        home = os.path.join(work, "home")
        os.mkdir(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OORT_")}
        env.update(
            PATH=os.path.abspath(args.bin_dir) + os.pathsep + env.get("PATH", ""),
            HOME=home,
            OORT_SERVER=api,
        )

        def substitute(text):
            return text.replace(DOC_API, api).replace(DOC_HTTP_PUSH, http_push)

        shell = Shell(work, env)
        count = 0
        for path, first, cmds in plan:
            for command in cmds:
                command.text = substitute(command.text)
                check(shell, command, substitute)
                count += 1
            shell.stop_background()
        print(f"ok: {count} commands of {len(plan)} blocks ({', '.join(args.files)}) "
              f"ran as the docs show", file=sys.stderr)
        return 0
    except Failure as e:
        print(f"test-readme: FAILED: {e}", file=sys.stderr)
        if server is not None:
            print(f"(the server's log: {server.log.name}, kept)", file=sys.stderr)
            work = None
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if shell is not None:
            shell.close()
        if server is not None:
            server.stop()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"test-readme: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
