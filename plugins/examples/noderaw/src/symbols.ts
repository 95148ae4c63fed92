// What noderaw provides: one function, one source, one sink. plugin.ts serves
// them over oort.plugin.v1; this file knows nothing of gRPC. The small
// interfaces below are this example's own, not an SDK's.

import { open, type FileHandle } from "node:fs/promises";

import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";

import { EventSchema, type Event, type Value } from "../../../../clients/typescript/src/gen/oort/v1/value_pb.js";
import { eventJson, toValue, typeName } from "./values.js";

/** A configuration the symbol refuses: the stream ends with INVALID_ARGUMENT. */
export class ConfigError extends Error {}

export interface FunctionDef {
  description: string;
  aggregate: boolean;
  /** Why a call with this many arguments is refused, or undefined to accept it. */
  validate(argCount: number): string | undefined;
  /** One call; a throw fails this row only. */
  exec(args: Value[]): Value;
}

export interface SourceDef {
  description: string;
  /** Checks the configuration (throws ConfigError) and makes an instance. */
  open(datasource: string, config: JsonObject): SourceInstance;
}

export interface SourceInstance {
  /** Batches of events until the source ends or `signal` aborts. */
  events(signal: AbortSignal): AsyncIterable<Event[]>;
  close(): Promise<void>;
}

export interface SinkDef {
  description: string;
  /** Checks the configuration (throws ConfigError) and opens an instance. */
  open(config: JsonObject): Promise<SinkInstance>;
}

export interface SinkInstance {
  /** Writes a batch; a throw is acknowledged as an error and the server re-sends. */
  write(events: Event[]): Promise<void>;
  close(): Promise<void>;
}

export const NAME = "noderaw";
export const VERSION = "1.0.0";

export const functions: Record<string, FunctionDef> = {
  node_double: {
    description: "a number times 2 (BIGINT stays BIGINT, FLOAT stays FLOAT)",
    aggregate: false,
    validate: (n) => (n === 1 ? undefined : `node_double takes 1 argument, got ${n}`),
    exec([x]) {
      switch (x.kind.case) {
        case "intValue": {
          const r = x.kind.value * 2n;
          if (r !== BigInt.asIntN(64, r)) throw new Error(`node_double: ${x.kind.value} * 2 overflows BIGINT`);
          return toValue(r);
        }
        case "floatValue":
          return toValue(x.kind.value * 2);
        default:
          throw new Error(`node_double: expects a number, got ${typeName(x)}`);
      }
    },
  },
};

export const sources: Record<string, SourceDef> = {
  nodeseq: {
    description: 'emits {"seq": 1, 2, ...} every interval_ms (default 100); idle after count events, if set',
    open(datasource, config) {
      // Options from the configuration, overridden by the DATASOURCE's query string, as in
      // the native counter: DATASOURCE="s?interval_ms=10&count=5". The configuration also
      // carries the stream's own WITH options (TYPE, DATASOURCE, FORMAT...): only the
      // query string's keys must all be known.
      const query = datasource.includes("?") ? datasource.slice(datasource.indexOf("?") + 1) : "";
      const fromQuery = Object.fromEntries(new URLSearchParams(query));
      for (const key of Object.keys(fromQuery)) {
        if (key !== "interval_ms" && key !== "count") throw new ConfigError(`nodeseq: unknown option ${key}; valid options are interval_ms, count`);
      }
      const options: JsonObject = { ...config, ...fromQuery };
      const intervalMs = numberOption(options, "interval_ms", 100);
      const count = numberOption(options, "count", Infinity);
      if (!(intervalMs > 0)) throw new ConfigError(`nodeseq: interval_ms must be > 0, got ${intervalMs}`);
      if (count !== Infinity && !(Number.isInteger(count) && count >= 0)) {
        throw new ConfigError(`nodeseq: count must be an integer >= 0, got ${count}`);
      }
      return {
        async *events(signal) {
          const start = Date.now();
          for (let seq = 1; seq <= count; seq++) {
            // On a fixed schedule from the start, so a slow consumer does not make it drift.
            if (!(await sleep(start + seq * intervalMs - Date.now(), signal))) return;
            yield [
              create(EventSchema, {
                fields: { seq: toValue(BigInt(seq)) },
                timestamp: timestampNow(),
                meta: { datasource },
              }),
            ];
          }
          // After count events the source stays open, idle, until the server cancels:
          // in protocol 1 a source stream that ends is a source that stopped.
          await sleep(Infinity, signal);
        },
        async close() {},
      };
    },
  },
};

export const sinks: Record<string, SinkDef> = {
  nodelog: {
    description: "appends each event's fields as a JSON line to the file at path",
    async open(config) {
      const path = config.path;
      if (typeof path !== "string" || path === "") throw new ConfigError("nodelog: path (a file name) is required");
      let file: FileHandle;
      try {
        file = await open(path, "a");
      } catch (e) {
        throw new ConfigError(`nodelog: cannot open ${path}: ${(e as Error).message}`);
      }
      return {
        async write(events) {
          if (events.length === 0) return;
          await file.appendFile(events.map((e) => JSON.stringify(eventJson(e)) + "\n").join(""));
        },
        close: () => file.close(),
      };
    },
  },
};

function numberOption(config: JsonObject, name: string, dflt: number): number {
  const v: JsonValue | undefined = config[name];
  if (v === undefined || v === null) return dflt;
  // Stream options arrive as strings from SQL WITH clauses, as numbers from JSON.
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  if (typeof n !== "number" || Number.isNaN(n)) throw new ConfigError(`${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/** Waits ms; false if the signal aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = Number.isFinite(ms) ? setTimeout(() => done(true), Math.max(0, ms)) : undefined;
    signal.addEventListener("abort", onAbort);
  });
}
