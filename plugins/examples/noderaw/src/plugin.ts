// noderaw: an Oort portable plugin written without an SDK, from
// proto/oort/plugin/v1/plugin.proto and plugins/PROTOCOL.md alone. It uses the
// protoc-gen-es messages of clients/typescript/src/gen and of
// src/gen/grpc/health/v1, and serves them with Connect's Node.js server, which
// speaks gRPC over HTTP/2 (h2c) on the Unix socket the server names.
//
// Everything the protocol asks of a plugin is in this file, in order:
// environment checks, the socket (0600), the handshake line, PluginService,
// grpc.health.v1, exit on stdin EOF, and Shutdown. symbols.ts has the function,
// source and sink themselves.

import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import {
  PluginService,
  SymbolKind,
  type CallResultSchema,
  type InvokeRequest,
  type OpenSinkRequest,
} from "../../../../clients/typescript/src/gen/oort/plugin/v1/plugin_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "./gen/grpc/health/v1/health_pb.js";
import { ConfigError, NAME, VERSION, functions, sinks, sources } from "./symbols.js";

const MAGIC_COOKIE = "oort-plugin-7c2b1d9e";
const PROTOCOL_VERSION = 1;

function log(msg: string): void {
  process.stderr.write(`${NAME}: ${msg}\n`); // stdout carries the handshake line only
}

// ---- 1. The environment the server starts us with ----------------------------

if (process.env.OORT_PLUGIN_MAGIC_COOKIE !== MAGIC_COOKIE) {
  process.stderr.write(
    `This program is an Oort plugin (${NAME} ${VERSION}). It is meant to be started by oortd, ` +
      `not run directly: install its package with \`oort plugin install\`.\n`,
  );
  process.exit(1);
}
const protocol = process.env.OORT_PLUGIN_PROTOCOL ?? "";
if (protocol !== String(PROTOCOL_VERSION)) {
  process.stderr.write(
    `${NAME}: the server speaks plugin protocol ${JSON.stringify(protocol)}, this plugin speaks ` +
      `${PROTOCOL_VERSION} only: install a version of the plugin built for this server.\n`,
  );
  process.exit(1);
}
const useTcp = process.platform === "win32"; // no Unix sockets there: 127.0.0.1 instead
const socketPath = process.env.OORT_PLUGIN_SOCKET ?? "";
if (!useTcp && socketPath === "") {
  process.stderr.write(`${NAME}: OORT_PLUGIN_SOCKET is not set: the server names the socket to listen on.\n`);
  process.exit(1);
}
const graceMs = Number(process.env.OORT_PLUGIN_SHUTDOWN_GRACE_MS ?? "") || 5000;

// ---- Open source and sink instances, so that Shutdown and stdin EOF close them ---

const instances = new Set<() => Promise<void>>(); // each closes one instance

async function closeAll(): Promise<void> {
  const closing = Promise.allSettled([...instances].map((close) => close()));
  await Promise.race([closing, new Promise((r) => setTimeout(r, graceMs).unref())]);
}

let status = Status.SERVING; // what grpc.health.v1 answers; NOT_SERVING once Shutdown came
let shuttingDown = false;
let exiting = false;
async function exit(why: string): Promise<never> {
  if (!exiting) {
    exiting = true;
    log(`exiting: ${why}`);
    setTimeout(() => process.exit(0), graceMs + 1000).unref(); // whatever hangs
    await closeAll();
    if (!useTcp) rmSocket();
  }
  process.exit(0);
}

// ---- 2. oort.plugin.v1.PluginService -------------------------------------------

const invalid = (msg: string) => new ConnectError(msg, Code.InvalidArgument);
const notFound = (msg: string) => new ConnectError(msg, Code.NotFound);
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The first request of a client stream, and an iterable of the rest. */
async function splitFirst<T>(requests: AsyncIterable<T>): Promise<[T | undefined, AsyncIterable<T>]> {
  const it = requests[Symbol.asyncIterator]();
  const first = await it.next();
  return [first.done ? undefined : first.value, { [Symbol.asyncIterator]: () => it }];
}

/** The requests until the stream ends or `signal` aborts (Shutdown closing the instance). */
async function* until<T>(requests: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const it = requests[Symbol.asyncIterator]();
  const aborted = new Promise<IteratorReturnResult<undefined>>((resolve) =>
    signal.addEventListener("abort", () => resolve({ done: true, value: undefined }), { once: true }),
  );
  for (;;) {
    const r = await Promise.race([it.next(), aborted]);
    if (r.done) return;
    yield r.value;
  }
}

/** Registers an instance; returns its stop signal and the function that unregisters it. */
function track(closed: Promise<void>): [AbortSignal, () => void] {
  const stop = new AbortController();
  const close = async () => {
    stop.abort();
    await closed;
  };
  instances.add(close);
  return [stop.signal, () => instances.delete(close)];
}

const plugin: ServiceImpl<typeof PluginService> = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      protocolVersion: PROTOCOL_VERSION,
      symbols: [
        ...Object.entries(functions).map(([name, f]) => ({
          name,
          kind: SymbolKind.FUNCTION,
          aggregate: f.aggregate,
          description: f.description,
        })),
        ...Object.entries(sources).map(([name, s]) => ({ name, kind: SymbolKind.SOURCE, description: s.description })),
        ...Object.entries(sinks).map(([name, s]) => ({ name, kind: SymbolKind.SINK, description: s.description })),
      ],
    };
  },

  async *invoke(requests: AsyncIterable<InvokeRequest>) {
    const [first, batches] = await splitFirst(requests);
    if (first?.message.case !== "open") throw invalid("the first InvokeRequest must be open");
    const open = first.message.value;
    const fn = functions[open.function];
    if (!fn) throw notFound(`${NAME} has no function ${JSON.stringify(open.function)}`);
    const refused = fn.validate(open.argCount);
    if (refused !== undefined) throw invalid(refused);
    // The open acknowledgement, before any batch: many gRPC servers (Connect's
    // too) send response headers only with a first message, and the server
    // waits for them before it sends batches. It numbers batches from 1.
    yield { batchId: 0n, results: [] };
    for await (const req of batches) {
      if (req.message.case !== "batch") throw invalid("after open, every InvokeRequest is a batch");
      const batch = req.message.value;
      const results = batch.rows.map((row): MessageInitShape<typeof CallResultSchema> => {
        if (row.args.length !== open.argCount) {
          return { result: { case: "error", value: `${row.args.length} arguments, ${open.argCount} expected` } };
        }
        try {
          return { result: { case: "value", value: fn.exec(row.args) } };
        } catch (e) {
          return { result: { case: "error", value: message(e) } }; // this row only
        }
      });
      yield { batchId: batch.batchId, results };
    }
  },

  async *openSource(req, ctx) {
    const def = sources[req.source];
    if (!def) throw notFound(`${NAME} has no source ${JSON.stringify(req.source)}`);
    let source;
    try {
      source = def.open(req.datasource, req.config ?? {});
    } catch (e) {
      throw e instanceof ConfigError ? invalid(e.message) : e;
    }
    let closed!: () => void;
    const [stop, untrack] = track(new Promise<void>((r) => (closed = r)));
    log(`source ${req.source} opened for rule ${req.ruleId}`);
    try {
      yield { events: [] }; // the open acknowledgement: configured, before the first event
      // Ends when the server cancels the call (ctx.signal), on Shutdown (stop), or when the source ends.
      for await (const events of source.events(AbortSignal.any([ctx.signal, stop]))) yield { events };
    } finally {
      await source.close();
      untrack();
      closed();
      log(`source ${req.source} closed for rule ${req.ruleId}`);
    }
  },

  async *openSink(requests: AsyncIterable<OpenSinkRequest>) {
    const [first, batches] = await splitFirst(requests);
    if (first?.message.case !== "open") throw invalid("the first OpenSinkRequest must be open");
    const open = first.message.value;
    const def = sinks[open.sink];
    if (!def) throw notFound(`${NAME} has no sink ${JSON.stringify(open.sink)}`);
    let sink;
    try {
      sink = await def.open(open.config ?? {});
    } catch (e) {
      throw e instanceof ConfigError ? invalid(e.message) : e;
    }
    let closed!: () => void;
    const [stop, untrack] = track(new Promise<void>((r) => (closed = r)));
    log(`sink ${open.sink} opened for rule ${open.ruleId}`);
    try {
      yield { batchId: 0n, error: "" }; // the open acknowledgement: configured and open, before any batch
      for await (const req of until(batches, stop)) {
        if (req.message.case !== "batch") throw invalid("after open, every OpenSinkRequest is a batch");
        const batch = req.message.value;
        let error = "";
        try {
          await sink.write(batch.events);
        } catch (e) {
          error = message(e) || "write failed"; // the server sends this batch again
        }
        yield { batchId: batch.batchId, error };
      }
    } finally {
      await sink.close();
      untrack();
      closed();
      log(`sink ${open.sink} closed for rule ${open.ruleId}`);
    }
  },

  async shutdown() {
    log("Shutdown: closing every instance");
    status = Status.NOT_SERVING;
    shuttingDown = true;
    setTimeout(() => void exit("Shutdown"), graceMs).unref(); // if the response never goes out
    await closeAll();
    return {}; // and exit once it is sent (see the request handler below)
  },
};

// ---- 3. grpc.health.v1 ---------------------------------------------------------

const healthServices = new Set(["", PluginService.typeName]);

const health: ServiceImpl<typeof Health> = {
  check(req) {
    if (!healthServices.has(req.service)) throw notFound(`unknown service ${JSON.stringify(req.service)}`);
    return { status };
  },
  async *watch(req, ctx) {
    yield { status: healthServices.has(req.service) ? status : Status.SERVICE_UNKNOWN };
    await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
  },
  list() {
    return { statuses: Object.fromEntries([...healthServices].map((s) => [s, { status }])) };
  },
};

// ---- 4. Serve: gRPC over HTTP/2 on the socket, then the handshake line ---------

const routes = (router: ConnectRouter) => {
  router.service(PluginService, plugin);
  router.service(Health, health);
};
const handler = connectNodeAdapter({ routes, grpc: true, connect: false, grpcWeb: false });
const shutdownPath = `/${PluginService.typeName}/${PluginService.method.shutdown.name}`;

const server = http2.createServer((req, res) => {
  // The :authority of a call over a Unix socket means nothing, and clients send
  // what they like: grpcio sends the socket path, percent-encoded, which is no
  // valid URL host and makes Connect's URL parsing throw. Give it a plain one.
  Object.defineProperty(req, "authority", { value: "localhost" });
  if (req.url === shutdownPath) res.on("close", () => shuttingDown && void exit("Shutdown"));
  // One bad request must not take the process down.
  const fail = (e: unknown) => {
    log(`request ${req.url}: ${message(e)}`);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  };
  try {
    Promise.resolve(handler(req, res)).catch(fail);
  } catch (e) {
    fail(e);
  }
});
server.on("error", (e) => {
  log(`cannot serve: ${e.message}`);
  process.exit(1);
});

function rmSocket(): void {
  try {
    if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
  } catch {
    // already gone
  }
}

if (useTcp) {
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`OORT_PLUGIN|${PROTOCOL_VERSION}|tcp|127.0.0.1:${port}\n`);
  });
} else {
  rmSocket(); // a stale socket of an earlier process at the same path
  const umask = process.umask(0o177); // the socket is born 0600: nobody else can connect, not even briefly
  server.listen(socketPath, () => {
    process.umask(umask); // files the plugin creates later (nodelog's) get the usual mode
    chmodSync(socketPath, 0o600);
    // A pipe's writes are synchronous in Node.js on POSIX: the line is out when this returns.
    process.stdout.write(`OORT_PLUGIN|${PROTOCOL_VERSION}|unix|${socketPath}\n`);
    log(`serving on ${socketPath} (pid ${process.pid})`);
  });
}

// ---- 5. Never outlive the server: it holds our stdin ----------------------------

process.stdin.on("data", () => {}); // read and drop whatever comes, so that "end" fires
process.stdin.on("end", () => void exit("stdin closed"));
process.stdin.on("error", () => void exit("stdin closed"));
