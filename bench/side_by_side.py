#!/usr/bin/env python3
"""Oort and eKuiper side by side: the same input, the same rules, one run.

For each connector (file, mqtt, kafka, nats), each rule (filter, window) and
each engine (eKuiper v2.4.0 built by bench/ekuiper/build.sh, Oort's release
oortd), in turn: a fresh server, a stream over the connector, the rule into a
`file` sink; the N events are read (file) or published by bench/pub (brokers);
the script waits until the rule's sink has written every result (from the
rule's counters), then reads the server's CPU time (utime + stime of
/proc/<pid>/stat) and peak RSS (VmHWM of /proc/<pid>/status), stops the rule,
checks the results in the sink's file, and stops the server.

The input: N JSON lines {"ts", "device", "temperature", "humidity"}, 10
devices round robin, ts one millisecond apart (1,000 events a second of event
time), temperature a seeded random 0.0..100.0.

The rules (the same SQL on both engines):
  filter  SELECT * FROM s WHERE temperature > 50
  window  SELECT device, count(*) AS n, avg(temperature) AS avg_t,
          max(temperature) AS max_t FROM s GROUP BY device, TUMBLINGWINDOW(ss, 1)
          in event time (isEventTime, TIMESTAMP="ts", lateTolerance 0), so that
          the windows do not depend on how fast the input is read: every
          window but the last (never closed: no later event) gives one row per
          device, checked against the values computed here.
Both rules block rather than drop when their input buffer is full (eKuiper
`disableBufferFullDiscard`, Oort `bufferFull: block`) and write one JSON line
per row (`sendSingle`).

Brokers (local, started here on free ports): mosquitto (QoS 0 both ways, no
queue limit), nats-server (core subject), Kafka 4.4 (scripts/run-kafka.sh;
one partition, a fresh topic per run, published while the rule runs since
eKuiper's kafka source without a group starts at the end of the partition).
eKuiper v2.4.0 has no NATS source (NATS only as EdgeX's message bus, in the
`edgex` build, reading EdgeX envelopes), so nats is measured for Oort alone.

Usage:
  bash bench/ekuiper/build.sh                      # eKuiper + kafka plugins
  nice -n 19 cargo build --release -p oortd -p oort-cli
  python3 bench/side_by_side.py                    # 1,000,000 events
  python3 bench/side_by_side.py --events 200000 --connectors file,mqtt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("OORT_TOOLS_DIR", Path.home() / ".cache" / "oort-tools"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
T0 = 1_700_000_000_000  # ms, a multiple of 1000: windows align on it
DEVICES = 10

FILTER_SQL = "SELECT * FROM s WHERE temperature > 50"
WINDOW_SQL = ("SELECT device, count(*) AS n, avg(temperature) AS avg_t, max(temperature) AS max_t "
              "FROM s GROUP BY device, TUMBLINGWINDOW(ss, 1)")
SCHEMA = "ts BIGINT, device STRING, temperature FLOAT, humidity BIGINT"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} not open after {timeout}s")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def mem_kib(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0])
    return out


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- the input

def write_input(path: Path, n: int) -> dict:
    """Writes the N events; returns what the rules must output."""
    rnd = random.Random(42)
    passed = 0
    windows: dict[tuple[int, str], list[float]] = {}
    with open(path, "w") as f:
        for i in range(n):
            t = rnd.randrange(0, 1001) / 10
            d = f"d{i % DEVICES}"
            ts = T0 + i
            f.write(f'{{"ts":{ts},"device":"{d}","temperature":{t},"humidity":{rnd.randrange(0, 100)}}}\n')
            if t > 50:
                passed += 1
            windows.setdefault((ts // 1000, d), []).append(t)
    last = (T0 + n - 1) // 1000  # the last window never closes
    rows, final = {}, {}
    for (w, d), ts in windows.items():
        (rows if w < last else final)[(w, d)] = (len(ts), sum(ts) / len(ts), max(ts))
    return {"filter": passed, "window": len(rows), "window_rows": rows, "final_window_rows": final}


def check_output(rule: str, path: Path, expected: dict) -> dict:
    """Counts the sink's lines and, for the window rule, compares the rows."""
    if not path.exists():
        return {"lines": 0, "ok": False, "note": "no output file"}
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                v = json.loads(line)
                rows.extend(v if isinstance(v, list) else [v])
    out = {"lines": len(rows), "expected": expected[rule]}
    if rule == "filter":
        bad = sum(1 for r in rows if not (r.get("temperature", 0) > 50))
        out["ok"] = len(rows) == expected["filter"] and bad == 0
        if rows:
            out["sample"] = rows[0]
        return out
    # window: match each row to an expected window by (device, n, avg, max)
    def keyed(windows):
        want: dict[tuple, int] = {}
        for (_, d), (cnt, avg, mx) in windows.items():
            key = (d, cnt, round(avg, 6), round(mx, 6))
            want[key] = want.get(key, 0) + 1
        return want
    want, final = keyed(expected["window_rows"]), keyed(expected["final_window_rows"])
    got: dict[tuple, int] = {}
    for r in rows:
        key = (r.get("device"), int(r.get("n", -1)), round(float(r.get("avg_t", math.nan)), 6),
               round(float(r.get("max_t", math.nan)), 6))
        got[key] = got.get(key, 0) + 1
    missing = sum((w - got.get(k, 0)) for k, w in want.items() if w > got.get(k, 0))
    extra = {k: g - want.get(k, 0) for k, g in got.items() if g > want.get(k, 0)}
    # rows of the last window, which only an engine that closes its windows
    # at the end of the input emits
    flushed = sum(min(n, final.get(k, 0)) for k, n in extra.items())
    unexpected = sum(extra.values()) - flushed
    out.update(ok=missing == 0 and unexpected == 0, missing=missing, unexpected=unexpected)
    if flushed:
        out["last_window_rows"] = flushed
        out["note"] = "the last window, closed at the end of the input (never closed by the other engine)"
    if rows:
        out["sample"] = rows[0]
    return out


# ---------------------------------------------------------------- brokers

class Brokers:
    def __init__(self, work: Path, wanted: set[str]):
        self.work = work
        self.procs: list[subprocess.Popen] = []
        self.mqtt_port = self.nats_port = self.kafka_port = None
        if "mqtt" in wanted:
            self.mqtt_port = free_port()
            conf = work / "mosquitto.conf"
            conf.write_text(f"listener {self.mqtt_port} 127.0.0.1\nallow_anonymous true\n"
                            "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n"
                            "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n")
            self._start(["mosquitto", "-c", str(conf)], "mosquitto", self.mqtt_port)
        if "nats" in wanted:
            self.nats_port = free_port()
            conf = work / "nats.conf"
            # a consumer slower than the publisher is buffered, not cut off
            conf.write_text(f'listen: "127.0.0.1:{self.nats_port}"\nmax_pending: 1GB\n'
                            'write_deadline: "120s"\nmax_payload: 1MB\n')
            gobin = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True).stdout.strip()
            exe = shutil.which("nats-server") or str(Path(gobin) / "bin" / "nats-server")
            self._start([exe, "-c", str(conf)], "nats", self.nats_port)
        if "kafka" in wanted:
            self.kafka_port = free_port()
            env = dict(os.environ, KAFKA_LOG_LEVEL="WARN", KAFKA_HEAP_OPTS="-Xms256m -Xmx1g")
            self._start(["bash", str(ROOT / "scripts" / "run-kafka.sh"), str(self.kafka_port),
                         str(work / "kafka")], "kafka", self.kafka_port, env=env, timeout=120)

    def _start(self, cmd, name, port, env=None, timeout=30):
        logf = open(self.work / f"{name}.log", "w")
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(p)
        wait_port(port, timeout, p)
        log(f"{name} on 127.0.0.1:{port} (pid {p.pid})")

    def stop(self):
        for p in reversed(self.procs):
            stop_process(p, 30)


class Publisher:
    def __init__(self, exe: Path, brokers: Brokers):
        self.exe, self.b = exe, brokers

    def addr(self, proto):
        return {"mqtt": f"tcp://127.0.0.1:{self.b.mqtt_port}", "nats": f"nats://127.0.0.1:{self.b.nats_port}",
                "kafka": f"127.0.0.1:{self.b.kafka_port}"}[proto]

    def create_topic(self, proto, topic):
        if proto == "kafka":
            subprocess.run([str(self.exe), "-proto", "kafka", "-addr", self.addr(proto), "-topic", topic,
                            "-create"], check=True, capture_output=True, timeout=60)

    def start(self, proto, topic, file: Path, rate: float) -> subprocess.Popen:
        cmd = [str(self.exe), "-proto", proto, "-addr", self.addr(proto), "-topic", topic, "-file", str(file)]
        if rate:
            cmd += ["-rate", str(rate)]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---------------------------------------------------------------- engines

class Server:
    name = "?"
    proc: subprocess.Popen

    @property
    def pid(self):
        return self.proc.pid


class EKuiper(Server):
    name = "ekuiper"

    def __init__(self, home: Path, work: Path, brokers: Brokers, input_dir: Path, conn: str):
        self.home, self.brokers = home, brokers
        self.base = work / "ekuiper"
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.copytree(home / "etc", self.base / "etc")
        for d in ("data", "log"):
            (self.base / d).mkdir(parents=True)
        # The native kafka plugins (Go .so, loaded at start-up: +45 MiB RSS)
        # only where they are used; eKuiper's default build ships none.
        if conn == "kafka":
            (self.base / "plugins").symlink_to(home / "plugins")
        else:
            for d in ("sources", "sinks", "functions", "portable", "wasm"):
                (self.base / "plugins" / d).mkdir(parents=True)
        etc = self.base / "etc"
        (etc / "sources" / "file.yaml").write_text(
            "default:\n  fileType: json\n  path: data\n  interval: 0\n"
            f"bench:\n  fileType: lines\n  path: {input_dir}\n  interval: 0\n  sendInterval: 0\n")
        if brokers.mqtt_port:
            (etc / "mqtt_source.yaml").write_text(
                f"default:\n  qos: 1\n  server: tcp://127.0.0.1:1883\n  protocolVersion: \"3.1.1\"\n"
                f"bench:\n  qos: 0\n  server: tcp://127.0.0.1:{brokers.mqtt_port}\n  protocolVersion: \"3.1.1\"\n")
        if brokers.kafka_port:
            (etc / "sources" / "kafka.yaml").write_text(
                "default:\n  brokers: 127.0.0.1:9092\n  groupID: \"\"\n  partition: 0\n  maxBytes: 1000000\n"
                f"bench:\n  brokers: 127.0.0.1:{brokers.kafka_port}\n  groupID: \"\"\n  partition: 0\n"
                "  maxBytes: 1000000\n")
        self.port = free_port()
        env = dict(os.environ, KuiperBaseKey=str(self.base), KUIPER__BASIC__RESTPORT=str(self.port),
                   KUIPER__BASIC__RESTIP="127.0.0.1", KUIPER__BASIC__PORT=str(free_port()),
                   KUIPER__BASIC__IP="127.0.0.1", KUIPER__BASIC__PPROFPORT=str(free_port()))
        self.logf = open(work / "ekuiper.out", "w")
        self.proc = subprocess.Popen([str(home / "bin" / "kuiperd")], cwd=self.base, env=env,
                                     stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + 60
        while True:
            try:
                self._req("GET", "/ping")
                break
            except (OSError, urllib.error.URLError):
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"kuiperd did not start: see {work / 'ekuiper.out'} and {self.base / 'log'}")
                time.sleep(0.1)

    def _req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"eKuiper {method} {path}: {e.code} {e.read().decode()}") from None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def create_stream(self, conn: str, topic: str, input_file: Path):
        opts = {"file": f'TYPE="file", CONF_KEY="bench", DATASOURCE="{input_file.name}"',
                "mqtt": f'TYPE="mqtt", CONF_KEY="bench", DATASOURCE="{topic}"',
                "kafka": f'TYPE="kafka", CONF_KEY="bench", DATASOURCE="{topic}"'}[conn]
        self._req("POST", "/streams", {"sql": f'CREATE STREAM s ({SCHEMA}) WITH ({opts}, FORMAT="json", TIMESTAMP="ts")'})

    def create_rule(self, rid, sql, out: Path, event_time: bool):
        opts = {"disableBufferFullDiscard": True, "isEventTime": event_time}
        if event_time:
            opts["lateTolerance"] = 0
        self._req("POST", "/rules", {"id": rid, "sql": sql, "options": opts, "actions": [{"file": {
            "path": str(out), "fileType": "lines", "format": "json", "sendSingle": True,
            "rollingCount": 1_000_000_000}}]})

    def counters(self, rid) -> dict:
        st = self._req("GET", f"/rules/{rid}/status")
        if not isinstance(st, dict):
            return {"state": str(st)}
        src = sum(v for k, v in st.items() if k.startswith("source_") and k.endswith("_records_out_total")
                  and isinstance(v, (int, float)))
        sink = sum(v for k, v in st.items() if k.startswith("sink_") and k.endswith("_records_out_total")
                   and isinstance(v, (int, float)))
        exc = sum(v for k, v in st.items() if k.endswith("_exceptions_total") and isinstance(v, (int, float)))
        return {"state": st.get("status"), "source_out": src, "sink_out": sink, "exceptions": exc,
                "last_exception": next((v for k, v in st.items() if k.endswith("_last_exception") and v), "")}

    def stop_rule(self, rid):
        self._req("POST", f"/rules/{rid}/stop")

    def stop(self):
        stop_process(self.proc)
        self.logf.close()


class Oort(Server):
    name = "oort"

    def __init__(self, oortd: Path, cli: Path, work: Path, brokers: Brokers, input_dir: Path, out_dir: Path, conn: str):
        self.cli = cli
        self.data = work / "oort-data"
        shutil.rmtree(self.data, ignore_errors=True)
        (self.data / "files").mkdir(parents=True)
        self.port = free_port()
        self.token = "bench-token-0123456789"
        env = dict(os.environ, OORT_AUTH_TOKEN=self.token, OORT_FILE_ROOTS=f"{input_dir}:{out_dir}",
                   OORT_EGRESS_ALLOW="127.0.0.0/8", RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        if brokers.mqtt_port:
            env["OORT_MQTT_SERVER"] = f"tcp://127.0.0.1:{brokers.mqtt_port}"
        self.logf = open(work / "oortd.out", "w")
        self.proc = subprocess.Popen([str(oortd), "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data),
                                      "--http-push-listen", "off", "--metrics-listen", "off"], env=env,
                                     stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port, 60, self.proc)
        self.brokers = brokers
        if conn == "nats":
            self._cli("connection", "create", "bus", "--type", "nats", "--set", f"server=nats://127.0.0.1:{brokers.nats_port}")
        if conn == "kafka":
            self._cli("connection", "create", "kbus", "--type", "kafka", "--set", f"brokers=127.0.0.1:{brokers.kafka_port}")

    def _cli(self, *args, json_out=False):
        cmd = [str(self.cli), "--server", f"http://127.0.0.1:{self.port}", "--token", self.token]
        if json_out:
            cmd.append("--json")
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"oort {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
        return json.loads(r.stdout) if json_out else r.stdout

    def create_stream(self, conn: str, topic: str, input_file: Path):
        opts = {"file": f'TYPE="file", DATASOURCE="{input_file}"',
                "mqtt": f'TYPE="mqtt", DATASOURCE="{topic}", QOS="0"',
                "nats": f'TYPE="nats", CONF_KEY="bus", DATASOURCE="{topic}"',
                "kafka": f'TYPE="kafka", CONF_KEY="kbus", DATASOURCE="{topic}", OFFSET_RESET="earliest"'}[conn]
        self._cli("stream", "create", f'CREATE STREAM s ({SCHEMA}) WITH ({opts}, FORMAT="json", TIMESTAMP="ts")')

    def create_rule(self, rid, sql, out: Path, event_time: bool):
        opts = {"bufferFull": "block", "isEventTime": event_time}
        if event_time:
            opts["lateTolerance"] = 0
        rule = {"id": rid, "sql": sql, "options": opts,
                "actions": [{"file": {"path": str(out), "fileType": "lines", "sendSingle": True}}]}
        f = out.parent / f"{rid}.rule.json"
        f.write_text(json.dumps(rule))
        self._cli("rule", "create", "--file", str(f))

    def counters(self, rid) -> dict:
        st = self._cli("rule", "status", rid, json_out=True)
        ops = st.get("operators", [])

        def total(op, k):
            return int(op.get(k, op.get(_camel(k), 0)) or 0)
        src = sum(total(o, "records_out_total") for o in ops if o.get("name", "").startswith("source_"))
        sinks = [o for o in ops if o.get("name", "").startswith("sink_")]
        sink = sum(total(o, "records_out_total") for o in sinks)
        exc = sum(total(o, "exceptions_total") for o in ops)
        last = next((o.get("last_exception") or o.get("lastException") for o in ops
                     if o.get("last_exception") or o.get("lastException")), "")
        return {"state": st.get("state"), "source_out": src, "sink_out": sink, "exceptions": exc,
                "last_exception": last, "_ops": [o.get("name") for o in ops]}

    def stop_rule(self, rid):
        self._cli("rule", "stop", rid)

    def stop(self):
        stop_process(self.proc)
        self.logf.close()


def _camel(k):
    a, *rest = k.split("_")
    return a + "".join(x.title() for x in rest)


# ---------------------------------------------------------------- one run

def run_one(engine: str, conn: str, rule: str, args, work: Path, inp: Path, expected: dict,
            brokers: Brokers, pub: Publisher | None) -> dict:
    run_dir = work / f"{engine}-{conn}-{rule}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    (run_dir / "out").mkdir()
    out = run_dir / "out" / "out.jsonl"
    topic = f"bench_{conn}_{rule}_{engine}_{int(time.time())}"
    n = args.events
    want = expected[rule]
    res = {"engine": engine, "connector": conn, "rule": rule, "events": n}
    if engine == "ekuiper":
        srv = EKuiper(args.ekuiper_home, run_dir, brokers, inp.parent, conn)
    else:
        srv = Oort(args.oortd, args.oort_cli, run_dir, brokers, inp.parent, out.parent, conn)
    publisher = None
    try:
        if pub:
            pub.create_topic(conn, topic)
        srv.create_stream(conn, topic, inp)
        time.sleep(0.5)
        cpu0, mem0 = cpu_seconds(srv.pid), mem_kib(srv.pid)
        t0 = time.monotonic()
        srv.create_rule("r", FILTER_SQL if rule == "filter" else WINDOW_SQL, out, rule == "window")
        if pub:
            time.sleep(args.subscribe_wait)  # the rule subscribed (mqtt, nats) / at the partition's end (kafka)
            publisher = pub.start(conn, topic, inp, args.rate.get(conn, 0))
            t0 = time.monotonic()  # wall time from the first message published
        last_change, last_sink, last = time.monotonic(), -1, {}
        deadline = t0 + args.timeout
        while True:
            time.sleep(args.poll)
            c = srv.counters("r")
            last = c
            now = time.monotonic()
            if c.get("sink_out", 0) != last_sink or (publisher and publisher.poll() is None):
                if c.get("sink_out", 0) != last_sink:
                    last_change = now
                last_sink = c.get("sink_out", 0)
            if last_sink >= want and (publisher is None or publisher.poll() is not None):
                break
            if now - last_change > args.stall and (publisher is None or publisher.poll() is not None):
                res["note"] = f"stalled: {last_sink} of {want} results after {args.stall}s without progress"
                break
            if now > deadline:
                res["note"] = f"timeout: {last_sink} of {want} results after {args.timeout}s"
                break
        t_end = last_change if last_sink < want else time.monotonic()
        cpu1, mem1 = cpu_seconds(srv.pid), mem_kib(srv.pid)
        res.update(
            wall_s=round(t_end - t0, 3),
            cpu_s=round(cpu1 - cpu0, 3),
            cpu_s_per_1m=round((cpu1 - cpu0) * 1e6 / n, 3),
            peak_rss_mib=round(mem1["VmHWM"] / 1024, 1),
            idle_rss_mib=round(mem0["VmRSS"] / 1024, 1),
            events_per_s=round(n / max(t_end - t0, 1e-9)),
            source_events=last.get("source_out"),
            sink_results=last.get("sink_out"),
            exceptions=last.get("exceptions"),
        )
        if last.get("last_exception"):
            res["last_exception"] = str(last["last_exception"])[:300]
        if publisher:
            so, se = publisher.communicate(timeout=600)
            if publisher.returncode != 0:
                res["publisher_error"] = se.strip()[-300:]
            else:
                res["publisher"] = json.loads(so.strip().splitlines()[-1])
        try:
            srv.stop_rule("r")
        except Exception as e:  # noqa: BLE001 - reported, the results are still read
            res["stop_error"] = str(e)[:200]
        time.sleep(1.5)
        res["check"] = check_output(rule, out, expected)
    finally:
        if publisher and publisher.poll() is None:
            publisher.kill()
        srv.stop()
    if not args.keep:
        out.unlink(missing_ok=True)
    return res


# ---------------------------------------------------------------- main

def build_pub(args) -> Path:
    exe = TOOLS / "bench" / "benchpub"
    src = ROOT / "bench" / "pub"
    newest = max(p.stat().st_mtime for p in src.iterdir())
    if not exe.exists() or exe.stat().st_mtime < newest:
        exe.parent.mkdir(parents=True, exist_ok=True)
        log("building bench/pub ...")
        subprocess.run(["nice", "-n", "19", "go", "build", "-o", str(exe), "."], cwd=src, check=True,
                       env=dict(os.environ, GOTOOLCHAIN="local", GOWORK="off"))
    return exe


def default_oort(name: str) -> Path:
    for d in ("target/release", "target/dist"):
        p = ROOT / d / name
        if p.exists():
            return p
    return ROOT / "target" / "release" / name


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--engines", default="ekuiper,oort")
    ap.add_argument("--connectors", default="file,mqtt,kafka,nats")
    ap.add_argument("--rules", default="filter,window")
    ap.add_argument("--ekuiper-home", type=Path, default=TOOLS / "ekuiper-2.4.0")
    ap.add_argument("--oortd", type=Path, default=default_oort("oortd"))
    ap.add_argument("--oort-cli", type=Path, default=default_oort("oort"))
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "side_by_side.json")
    ap.add_argument("--poll", type=float, default=0.25, help="seconds between two status reads")
    ap.add_argument("--stall", type=float, default=15, help="give up after this long without a new result")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--subscribe-wait", type=float, default=2.0)
    ap.add_argument("--rate", default="nats=100000",
                    help="messages/s per broker, 0 = as fast as the publisher can (default nats=100000: core NATS "
                         "drops what a subscriber cannot take, and Oort's async-nats client does so when its "
                         "64 Ki-message subscription buffer is full)")
    ap.add_argument("--keep", action="store_true", help="keep the sinks' output files")
    args = ap.parse_args()
    args.rate = {k: float(v) for k, v in (kv.split("=") for kv in args.rate.split(",") if kv)}
    engines = args.engines.split(",")
    conns = args.connectors.split(",")
    rules = args.rules.split(",")

    if "ekuiper" in engines and not (args.ekuiper_home / "bin" / "kuiperd").exists():
        sys.exit(f"no {args.ekuiper_home}/bin/kuiperd: run bash bench/ekuiper/build.sh")
    if "oort" in engines and not (args.oortd.exists() and args.oort_cli.exists()):
        sys.exit(f"no {args.oortd} / {args.oort_cli}: nice -n 19 cargo build --release -p oortd -p oort-cli")
    ek_kafka = (args.ekuiper_home / "plugins" / "sources").glob("Kafka*.so")
    ek_can = {"file": True, "mqtt": True, "kafka": any(True for _ in ek_kafka), "nats": False}

    work = args.work or Path(tempfile.mkdtemp(prefix="oort-side-by-side-"))
    work.mkdir(parents=True, exist_ok=True)
    inp_dir = work / "input"
    inp_dir.mkdir(exist_ok=True)
    inp = inp_dir / "events.jsonl"
    log(f"writing {args.events} events to {inp}")
    expected = write_input(inp, args.events)
    log(f"expected: filter {expected['filter']} rows, window {expected['window']} rows")

    brokers = Brokers(work, set(conns) - {"file"})
    pub_exe = build_pub(args) if set(conns) - {"file"} else None
    results = []
    try:
        for conn in conns:
            pub = Publisher(pub_exe, brokers) if conn != "file" else None
            for rule in rules:
                for engine in engines:
                    if engine == "ekuiper" and not ek_can[conn]:
                        why = ("eKuiper v2.4.0 has no NATS source (only EdgeX's message bus over NATS, "
                               "EdgeX envelopes, in the edgex build)" if conn == "nats"
                               else "no kafka plugin built")
                        results.append({"engine": engine, "connector": conn, "rule": rule, "skipped": why})
                        continue
                    log(f"--- {engine} {conn} {rule}")
                    try:
                        r = run_one(engine, conn, rule, args, work, inp, expected, brokers, pub)
                    except Exception as e:  # noqa: BLE001 - one failed run must not lose the others
                        r = {"engine": engine, "connector": conn, "rule": rule, "error": str(e)[:500]}
                    log(json.dumps(r))
                    results.append(r)
    finally:
        brokers.stop()

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "events": args.events,
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "ekuiper": str(args.ekuiper_home), "oortd": str(args.oortd),
        "oortd_version": subprocess.run([str(args.oortd), "--version"], capture_output=True,
                                        text=True).stdout.strip() if args.oortd.exists() else None,
        "oortd_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(args.oortd.stat().st_mtime))
        if args.oortd.exists() else None,
        "repo_head_at_run": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                      capture_output=True, text=True).stdout.strip(),
        "rules": {"filter": FILTER_SQL, "window": WINDOW_SQL + " (event time, TIMESTAMP ts, lateTolerance 0)"},
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print_table(results, args.events)
    log(f"JSON: {args.json}; scratch: {work}")


def print_table(results, n):
    by = {(r["connector"], r["rule"], r["engine"]): r for r in results}
    print(f"\n{n:,} events; CPU seconds and peak RSS of the server, CPU scaled to 1,000,000 events\n")
    print("| connector | rule | eKuiper CPU s /1M | Oort CPU s /1M | Oort/eKuiper CPU | eKuiper peak RSS MiB "
          "| Oort peak RSS MiB | eKuiper wall s | Oort wall s | results eKuiper / Oort / expected |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for conn in dict.fromkeys(r["connector"] for r in results):
        for rule in dict.fromkeys(r["rule"] for r in results if r["connector"] == conn):
            e, o = by.get((conn, rule, "ekuiper"), {}), by.get((conn, rule, "oort"), {})

            def f(r, k):
                if "skipped" in r:
                    return "n/a"
                if "error" in r:
                    return "error"
                v = r.get(k)
                return "" if v is None else f"{v}"

            ratio = ""
            if e.get("cpu_s_per_1m") and o.get("cpu_s_per_1m") is not None:
                ratio = f"{o['cpu_s_per_1m'] / e['cpu_s_per_1m']:.2f}"

            def cnt(r):
                c = r.get("check", {})
                if not r or "error" in r:
                    return "-" if not r else "error"
                if "skipped" in r:
                    return "n/a"
                extra = f" (+{c['last_window_rows']} last window)" if c.get("last_window_rows") else ""
                return f"{c.get('lines', '?') - c.get('last_window_rows', 0)}{extra}{'' if c.get('ok') else ' ✘'}"
            exp = (o.get("check") or e.get("check") or {}).get("expected", "")
            print(f"| {conn} | {rule} | {f(e, 'cpu_s_per_1m')} | {f(o, 'cpu_s_per_1m')} | {ratio} | "
                  f"{f(e, 'peak_rss_mib')} | {f(o, 'peak_rss_mib')} | {f(e, 'wall_s')} | {f(o, 'wall_s')} | "
                  f"{cnt(e)} / {cnt(o)} / {exp} |")


if __name__ == "__main__":
    main()
