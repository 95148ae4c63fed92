"""Throughput of a trivial Python portable function: pydemo's py_upper, started
as oortd starts it (packaged by its package.sh, unpacked, env, Unix socket), fed
batches of --rows rows (default 1024) over one Invoke stream with --window
batches in flight. Prints rows/s end to end, and the percentiles of a batch's
round trip.

    plugins/python/.venv/bin/python plugins/python/bench/throughput.py [--seconds 5] [--rows 1024] [--window 4]

oortd keeps one batch in flight per stream (--window 1); --rows 1 --window 1 is
the latency of one unbatched call.

The client pre-encodes its requests so that the figure is the plugin's cost,
not this script's; it still shares the machine's cores with the plugin.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from oort_plugin._proto import plugin_pb2 as P  # noqa: E402
from oort_plugin._proto import value_pb2 as V  # noqa: E402
from plugin_process import EXAMPLE, PluginProcess  # noqa: E402

METHOD = "/oort.plugin.v1.PluginService/Invoke"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="how long to measure (after a 1 s warm-up)")
    ap.add_argument("--rows", type=int, default=1024, help="rows per InvokeBatch")
    ap.add_argument("--window", type=int, default=4, help="batches in flight (at most 64)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="oort-bench-") as tmp:
        zip_path = os.path.join(tmp, "pydemo.zip")
        subprocess.run([os.path.join(EXAMPLE, "package.sh"), zip_path, "release"], cwd=EXAMPLE, check=True,
                       stdout=subprocess.DEVNULL)
        folder = os.path.join(tmp, "pydemo")
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(folder)
        plugin = PluginProcess(folder).start()
        try:
            rate, trips = run(plugin, args)
        finally:
            plugin.stop()
    trips.sort()
    pct = {p: trips[min(len(trips) - 1, int(len(trips) * p / 100))] * 1e6 for p in (50, 90, 99)}
    print(f"py_upper: {rate:,.0f} rows/s ({args.rows} rows per batch, {args.window} batches in flight, "
          f"{args.seconds:g} s, Python {sys.version.split()[0]}); batch round trip "
          f"p50 {pct[50]:,.0f} us, p90 {pct[90]:,.0f} us, p99 {pct[99]:,.0f} us")


def run(plugin, args):
    # Requests encoded once: the open message and a few batches with distinct ids,
    # numbered from 1 as oortd does (batch_id 0 is the plugin's open acknowledgement).
    open_req = P.InvokeRequest(open=P.InvokeOpen(function="py_upper", rule_id="bench", arg_count=1))
    row_args = [P.ArgRow(args=[V.Value(string_value=f"sensor-{i % 97}-reading")]) for i in range(args.rows)]
    encoded = [P.InvokeRequest(batch=P.InvokeBatch(batch_id=b + 1, rows=row_args)).SerializeToString()
               for b in range(64)]
    window = threading.Semaphore(args.window)
    stop = threading.Event()
    sent = [0.0] * len(encoded)

    def requests():
        yield open_req.SerializeToString()
        b = 0
        while not stop.is_set():
            window.acquire()
            sent[b % len(encoded)] = time.perf_counter()
            yield encoded[b % len(encoded)]
            b += 1

    call = plugin.channel.stream_stream(METHOD, request_serializer=lambda x: x,
                                        response_deserializer=P.InvokeResponse.FromString)
    responses = call(requests())
    ack = next(responses)  # the open acknowledgement comes first: not a batch, skip it
    if ack.batch_id != 0 or len(ack.results) != 0:
        raise SystemExit(f"expected the open acknowledgement first, got batch {ack.batch_id}")
    warm_until = time.monotonic() + 1.0
    rows = 0
    started = None
    trips = []
    for resp in responses:
        trips.append(time.perf_counter() - sent[resp.batch_id - 1])
        window.release()
        if len(resp.results) != args.rows or resp.results[0].WhichOneof("result") != "value":
            raise SystemExit(f"unexpected response: {len(resp.results)} results, first {resp.results[0]}")
        now = time.monotonic()
        if started is None:
            if now >= warm_until:
                started, rows, trips = now, 0, []
            continue
        rows += len(resp.results)
        if now - started >= args.seconds:
            break
    elapsed = time.monotonic() - started
    stop.set()
    window.release()  # let the request generator see stop
    responses.cancel()
    return rows / elapsed, trips


if __name__ == "__main__":
    main()
