// Runs the real oortd (OORT_BIN, default <repo>/target/debug/oortd) on a free
// port with a temporary data directory, as the Rust integration tests do: waits
// for its "oortd listening addr=..." line, then for grpc.health.v1 SERVING.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, accessSync, constants } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/test
const repo = path.resolve(here, "..", "..", "..", "..");
const START_TIMEOUT_MS = 30_000;

export function oortdBinary(): string {
  return process.env.OORT_BIN || path.join(repo, "target", "debug", "oortd");
}

export class Oortd {
  private constructor(
    readonly addr: string,
    private readonly child: ChildProcess,
    private readonly dataDir: string,
  ) {}

  static async start(): Promise<Oortd> {
    const bin = oortdBinary();
    accessSync(bin, constants.X_OK); // no oortd: build it, or set OORT_BIN
    const dataDir = mkdtempSync(path.join(tmpdir(), "oort-ts-"));
    const env: NodeJS.ProcessEnv = { ...process.env, RUST_LOG: "info" };
    delete env.OORT_LISTEN;
    delete env.OORT_DATA_DIR;
    const child = spawn(bin, ["--listen", "127.0.0.1:0", "--data-dir", dataDir, "--http-push-listen", "off"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const addr = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("oortd did not log the address it listens on")), START_TIMEOUT_MS);
      child.on("exit", (code) => reject(new Error(`oortd exited with ${code} before listening`)));
      for (const stream of [child.stdout!, child.stderr!]) {
        // Every line is read, so the server never blocks on a full pipe.
        createInterface({ input: stream }).on("line", (raw) => {
          const line = raw.replace(/\x1b\[[0-9;]*m/g, "");
          if (process.env.OORT_TEST_LOG) console.error("[oortd]", line);
          const match = /oortd listening.*addr=(\S+)/.exec(line);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        });
      }
    });
    const server = new Oortd(addr, child, dataDir);
    await server.waitServing();
    return server;
  }

  /** grpc.health.v1.Health/Check over raw HTTP/2 until it answers SERVING. */
  private async waitServing(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if ((await healthCheck(this.addr).catch(() => -1)) === 1) return;
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
function healthCheck(addr: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${addr}`);
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
