"""The example external service of Oort's tests: demo.v1.Demo (proto/demo/v1/demo.proto)
over gRPC (grpcio) and over HTTP + JSON along its google.api.http annotations
(the standard library's HTTP server), plus a few schemaless REST endpoints.

Run with the venv of setup.sh:
    .venv/bin/python demo_server.py --grpc-port 0 --http-port 0 --include ../../server/oort-external/proto
It generates its stubs from the .proto files into a temporary directory, then
prints one line `READY grpc=<port> http=<port>` on stdout, and serves until
SIGINT or SIGTERM (Ctrl-C, `kill`, `docker stop`), in the foreground, in the
background (`&`, whose stdin is /dev/null) or as a container's first process
alike. With --exit-on-stdin-close it also stops when its stdin closes, so a
test harness that holds a pipe to it stops it by closing the pipe, or by dying.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_stubs(include):
    """Compiles the .proto files with grpcio-tools into a temporary package root
    on sys.path; returns it, to be removed once the stubs are imported (the
    tests stop this server with a signal, so nothing would remove it later)."""
    import grpc_tools
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="oort-demo-stubs-")
    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    proto_dir = os.path.join(HERE, "proto")
    files = [
        "demo/v1/types.proto",
        "demo/v1/demo.proto",
    ]
    args = ["protoc", f"-I{proto_dir}", f"-I{include}", f"-I{wkt}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + files) != 0:
        sys.exit("generating the demo stubs failed")
    if protoc.main(["protoc", f"-I{include}", f"-I{wkt}", f"--python_out={out}",
                    "google/api/http.proto", "google/api/annotations.proto"]) != 0:
        sys.exit("generating the google.api stubs failed")
    sys.path.insert(0, out)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--include", required=True, help="folder with google/api/*.proto")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--exit-on-stdin-close", action="store_true",
                        help="also stop when stdin reaches its end (a harness holds a pipe; the service ends with it)")
    opts = parser.parse_args()
    stubs = generate_stubs(opts.include)

    import grpc
    from google.protobuf import json_format, wrappers_pb2
    from demo.v1 import demo_pb2, demo_pb2_grpc, types_pb2

    shutil.rmtree(stubs, ignore_errors=True)

    def square(req):
        return demo_pb2.SquareReply(y=req.x * req.x)

    def get_feature(req):
        result = demo_pb2.FeatureResult(device=req.device, count=len(req.values) + req.hint.w)
        for i, v in enumerate(req.values):
            result.feature.append(types_pb2.Feature(
                label=f"{req.device}-{i}", box=types_pb2.Box(w=int(v), h=int(v * 2)), scores=[v, v / 2]))
        return result

    class Demo(demo_pb2_grpc.DemoServicer):
        def Square(self, request, context):
            return square(request)

        def GetFeature(self, request, context):
            return get_feature(request)

        def Upper(self, request, context):
            return wrappers_pb2.StringValue(value=request.value.upper())

        def Size(self, request, context):
            return wrappers_pb2.Int64Value(value=len(request.value))

        def Scale(self, request, context):
            return wrappers_pb2.DoubleValue(value=request.value * request.factor)

        def Slow(self, request, context):
            time.sleep(request.ms / 1000.0)
            return demo_pb2.SquareReply(y=request.ms)

        def Check(self, request, context):
            if request.x < 0:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"x must not be negative, got {request.x}")
            return demo_pb2.SquareReply(y=request.x)

        def GetItem(self, request, context):
            return demo_pb2.Item(shelf=request.shelf, id=request.id, name=f"item {request.id}", color=request.color)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=opts.workers))
    demo_pb2_grpc.add_DemoServicer_to_server(Demo(), server)
    grpc_port = server.add_insecure_port(f"{opts.host}:{opts.grpc_port}")
    server.start()

    flaky = {}
    flaky_lock = threading.Lock()

    def dump(message):
        return json_format.MessageToJson(message, preserving_proto_field_name=True)

    class Http(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, text):
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length).decode() if length else ""

        def handle_any(self, verb):
            url = urlparse(self.path)
            path, query = url.path, parse_qs(url.query)
            raw = self.body()
            if self.headers.get("X-Demo-Token") != "secret":
                return self.reply(401, json.dumps({"error": "missing X-Demo-Token"}))
            try:
                if verb == "POST" and path == "/v1/square":
                    return self.reply(200, dump(square(json_format.Parse(raw, demo_pb2.SquareRequest()))))
                m = re.fullmatch(r"/v1/devices/([^/]+)/features", path)
                if verb == "POST" and m:
                    req = json_format.Parse(raw or "{}", demo_pb2.FeatureRequest())
                    req.device = m.group(1)
                    return self.reply(200, dump(get_feature(req)))
                if verb == "POST" and path == "/v1/upper":
                    # The body is whatever the caller pre-encoded; answer a JSON string.
                    return self.reply(200, json.dumps(raw.upper()))
                if verb == "POST" and path == "/v1/check":
                    req = json_format.Parse(raw, demo_pb2.SquareRequest())
                    if req.x < 0:
                        return self.reply(400, json.dumps({"error": f"x must not be negative, got {req.x}"}))
                    return self.reply(200, dump(demo_pb2.SquareReply(y=req.x)))
                m = re.fullmatch(r"/v1/shelves/([^/]+)/items/(\d+)", path)
                if verb == "GET" and m:
                    color = query.get("color", [""])[0]
                    item = demo_pb2.Item(shelf=m.group(1), id=int(m.group(2)), name=f"item {m.group(2)}", color=color)
                    return self.reply(200, dump(item))
                # Schemaless endpoints.
                if path == "/echo":
                    return self.reply(200, json.dumps({"verb": verb, "body": json.loads(raw) if raw else None}))
                m = re.fullmatch(r"/flaky/(\w+)", path)
                if m:
                    with flaky_lock:
                        flaky[m.group(1)] = flaky.get(m.group(1), 0) + 1
                        attempts = flaky[m.group(1)]
                    if attempts <= 2:
                        return self.reply(503, json.dumps({"error": "try again"}))
                    return self.reply(200, json.dumps({"attempts": attempts}))
                return self.reply(404, json.dumps({"error": f"no route {verb} {path}"}))
            except json_format.ParseError as e:
                return self.reply(400, json.dumps({"error": str(e)}))

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_DELETE(self):
            self.handle_any("DELETE")

    # Handlers before READY, so a signal sent as soon as READY is read stops
    # the service cleanly. As a container's first process it must have them:
    # the kernel drops signals with the default action sent to PID 1.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if opts.exit_on_stdin_close:
        def until_stdin_closes():
            sys.stdin.buffer.read()
            stop.set()
        threading.Thread(target=until_stdin_closes, daemon=True).start()

    http = ThreadingHTTPServer((opts.host, opts.http_port), Http)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(f"READY grpc={grpc_port} http={http.server_address[1]}", flush=True)
    try:
        # A timeout, so that the wait returns to the interpreter, which runs
        # signal handlers between waits, on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        http.shutdown()
        server.stop(0)


if __name__ == "__main__":
    main()
