// Runs the real oortd (OORT_BIN, default <repo>/target/debug/oortd) on a free
// port with a temporary data directory, as the Rust integration tests do: waits
// for its ready line (JSON on stdout), then for grpc.health.v1 SERVING. Each
// server asks for a fresh random admin token (OORT_AUTH_TOKEN); with TLS it
// serves a certificate of a throwaway CA made with the openssl CLI.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, accessSync, constants } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { Oort, type OortOptions } from "../src/index.js";

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/test
const repo = path.resolve(here, "..", "..", "..", "..");
const START_TIMEOUT_MS = 30_000;

export function oortdBinary(): string {
  return process.env.OORT_BIN || path.join(repo, "target", "debug", "oortd");
}

/** Inherited variables that would change what the tests ask of the server or send it. */
const SCRUBBED = ["OORT_LISTEN", "OORT_DATA_DIR", "OORT_AUTH_TOKEN", "OORT_TOKEN", "OORT_TLS_CERT", "OORT_TLS_KEY", "OORT_TLS_CLIENT_CA"];

/** Plaintext, TLS, or TLS accepting client certificates signed by the test CA. */
export type ServerTls = "none" | "server" | "mutual";

/** The API address of oortd's ready line (one JSON object on stdout, `{"oortd": "ready", "api": ...}`), or undefined. */
function readyAddress(line: string): string | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const ready = JSON.parse(line) as { oortd?: string; api?: string };
    return ready.oortd === "ready" ? ready.api : undefined;
  } catch {
    return undefined;
  }
}

export class Oortd {
  private constructor(
    readonly addr: string,
    /** The admin token the server was started with (OORT_AUTH_TOKEN). */
    readonly token: string,
    /** With TLS, the directory of ca.pem, server.pem/.key and client.pem/.key. */
    readonly certs: string | undefined,
    private readonly child: ChildProcess,
    private readonly dataDir: string,
  ) {}

  static async start(tls: ServerTls = "none"): Promise<Oortd> {
    const bin = oortdBinary();
    accessSync(bin, constants.X_OK); // no oortd: build it, or set OORT_BIN
    const dataDir = mkdtempSync(path.join(tmpdir(), "oort-ts-"));
    const token = randomBytes(32).toString("hex");
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of SCRUBBED) delete env[name];
    Object.assign(env, { RUST_LOG: "info", OORT_AUTH_TOKEN: token });
    const args = ["--listen", "127.0.0.1:0", "--data-dir", dataDir, "--http-push-listen", "off"];
    let certs: string | undefined;
    if (tls !== "none") {
      certs = path.join(dataDir, "certs");
      makeCerts(certs);
      args.push("--tls-cert", path.join(certs, "server.pem"), "--tls-key", path.join(certs, "server.key"));
      if (tls === "mutual") args.push("--tls-client-ca", path.join(certs, "ca.pem"));
    }
    const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const last: string[] = [];
    const addr = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("oortd did not say it is ready")), START_TIMEOUT_MS);
      child.on("exit", (code) => reject(new Error(`oortd exited with ${code} before listening:\n${last.join("\n")}`)));
      for (const stream of [child.stdout!, child.stderr!]) {
        // Every line is read, so the server never blocks on a full pipe.
        createInterface({ input: stream }).on("line", (raw) => {
          const line = raw.replace(/\x1b\[[0-9;]*m/g, "");
          if (last.push(line) > 20) last.shift();
          if (process.env.OORT_TEST_LOG) console.error("[oortd]", line);
          const ready = readyAddress(line);
          if (ready) {
            clearTimeout(timer);
            resolve(ready);
          }
        });
      }
    });
    const server = new Oortd(addr, token, certs, child, dataDir);
    await server.waitServing();
    return server;
  }

  /** The PEM of a file of the test CA's: "ca.pem", "client.pem", "client.key"... */
  pem(name: string): Buffer {
    if (!this.certs) throw new Error("the server does not serve TLS");
    return readFileSync(path.join(this.certs, name));
  }

  /** A client of this server with its token (and with TLS its CA); options add to or replace them. */
  client(options: OortOptions = {}): Oort {
    return new Oort(this.addr, { token: this.token, ...(this.certs ? { tls: { ca: this.pem("ca.pem") } } : {}), ...options });
  }

  /** grpc.health.v1.Health/Check (which needs no token) over raw HTTP/2 until it answers SERVING. */
  private async waitServing(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    const tls = this.certs ? { ca: this.pem("ca.pem") } : undefined;
    for (;;) {
      if ((await healthCheck(this.addr, tls).catch(() => -1)) === 1) return;
      if (Date.now() > deadline) throw new Error("oortd is not SERVING");
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** The status number of HealthCheckResponse (1 = SERVING); the request is empty. */
function healthCheck(addr: string, tls?: { ca: Buffer }): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = tls ? http2.connect(`https://${addr}`, tls) : http2.connect(`http://${addr}`);
    session.on("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Check",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", reject);
    req.on("end", () => {
      session.close();
      const body = Buffer.concat(chunks);
      // 5-byte frame header, then field 1 (varint): 0x08 <status>.
      resolve(body.length >= 7 && body[5] === 0x08 ? body[6] : 0);
    });
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

/**
 * Writes a throwaway CA (ca.pem), a certificate of the server for 127.0.0.1 and
 * localhost (server.pem, server.key) and one of a client (client.pem,
 * client.key), both signed by the CA, into dir with the openssl CLI.
 */
function makeCerts(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"];
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=oort-test-ca",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  for (const [name, usage, extra] of [
    ["server", "serverAuth", ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]],
    ["client", "clientAuth", []],
  ] as const) {
    openssl("req", "-x509", ...ec, "-CA", "ca.pem", "-CAkey", "ca.key", "-keyout", `${name}.key`, "-out", `${name}.pem`,
      "-subj", `/CN=oort-test-${name}`, "-addext", "basicConstraints=critical,CA:FALSE", "-addext", `extendedKeyUsage=${usage}`, ...extra);
  }
}
