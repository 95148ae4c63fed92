// TypeScript client of Oort's gRPC API (oort.v1): the generated messages and
// service descriptors (protoc-gen-es, in ./gen), and a thin wrapper over
// Connect's gRPC transport for Node.js (gRPC over HTTP/2, as oortd's tonic speaks).
//
//   const oort = new Oort("127.0.0.1:9081"); // the token: { token } or $OORT_TOKEN; TLS: { tls: { ca } }
//   await oort.streams.create('CREATE STREAM s (t FLOAT) WITH (TYPE="grpc", DATASOURCE="s")');
//
// Failed calls reject with ConnectError; its `code` is the gRPC status (Code.NotFound, ...).

import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { NullValue, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConnectionOptions, SecureContextOptions } from "node:tls";

import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { ConnectionService } from "./gen/oort/v1/connection_pb.js";
import { SchemaService } from "./gen/oort/v1/schema_pb.js";
import { ConnectorService } from "./gen/oort/v1/connector_pb.js";
import { EventService, PublishRequestSchema } from "./gen/oort/v1/event_pb.js";
import { ExternalService } from "./gen/oort/v1/external_pb.js";
import { FunctionService } from "./gen/oort/v1/function_pb.js";
import { PluginService } from "./gen/oort/v1/plugin_pb.js";
import { StateService } from "./gen/oort/v1/state_pb.js";
import {
  RuleService,
  TailEncoding,
  type GetRuleStatusResponse,
  type Rule,
  type RuleInfo,
  type RuleOptionsSchema,
  type TailRuleResponse,
} from "./gen/oort/v1/rule_pb.js";
import { StreamKind, StreamService, type Stream } from "./gen/oort/v1/stream_pb.js";
import { EventSchema, ValueSchema, type Event, type Value } from "./gen/oort/v1/value_pb.js";

export * from "./gen/oort/v1/connector_pb.js";
export * from "./gen/oort/v1/event_pb.js";
export * from "./gen/oort/v1/external_pb.js";
export * from "./gen/oort/v1/function_pb.js";
export * from "./gen/oort/v1/plugin_pb.js";
export * from "./gen/oort/v1/rule_pb.js";
export * from "./gen/oort/v1/stream_pb.js";
export * from "./gen/oort/v1/value_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";

/** A plain value: what `toValue` takes and `fromValue` gives. */
export type Plain = null | boolean | number | bigint | string | Uint8Array | Date | Plain[] | { [key: string]: Plain };

/** A row of an event: column name → value. */
export type Row = Record<string, Plain>;

/** A row to publish: plain values, or `Value`s (e.g. `float(25)`). */
export type RowInput = Record<string, Plain | Value>;

/** An action: a sink type ("grpc", "log", ...), or a type with eKuiper props. */
export type ActionLike = string | { type: string; props?: JsonObject };

/**
 * An `oort.v1.Value` from a plain value. A JS number that is an integer becomes
 * BIGINT (`intValue`), any other number FLOAT; use `float(x)` to send an
 * integral FLOAT into a schemaless stream. A `Value` passes through.
 */
export function toValue(v: Plain | Value | undefined): Value {
  if (v === null || v === undefined) return create(ValueSchema, { kind: { case: "nullValue", value: NullValue.NULL_VALUE } });
  if (typeof v === "boolean") return create(ValueSchema, { kind: { case: "boolValue", value: v } });
  if (typeof v === "bigint") return create(ValueSchema, { kind: { case: "intValue", value: v } });
  if (typeof v === "number") {
    return Number.isSafeInteger(v) ? int(v) : float(v);
  }
  if (typeof v === "string") return create(ValueSchema, { kind: { case: "stringValue", value: v } });
  if (v instanceof Uint8Array) return create(ValueSchema, { kind: { case: "bytesValue", value: v } });
  if (v instanceof Date) return create(ValueSchema, { kind: { case: "timestampValue", value: timestampFromDate(v) } });
  if (Array.isArray(v)) {
    return create(ValueSchema, { kind: { case: "listValue", value: { values: v.map((x) => toValue(x)) } } });
  }
  if (isValue(v)) return v;
  const fields: Record<string, Value> = {};
  for (const [k, x] of Object.entries(v)) fields[k] = toValue(x);
  return create(ValueSchema, { kind: { case: "mapValue", value: { fields } } });
}

/** A FLOAT value, even for an integral number. */
export function float(v: number): Value {
  return create(ValueSchema, { kind: { case: "floatValue", value: v } });
}

/** A BIGINT value. */
export function int(v: number | bigint): Value {
  return create(ValueSchema, { kind: { case: "intValue", value: BigInt(v) } });
}

function isValue(v: object): v is Value {
  return (v as { $typeName?: string }).$typeName === "oort.v1.Value";
}

/** A plain value from an `oort.v1.Value`: BIGINT is a bigint, FLOAT a number. */
export function fromValue(v: Value | undefined): Plain {
  const kind = v?.kind;
  if (kind === undefined) return null;
  switch (kind.case) {
    case undefined:
    case "nullValue":
      return null;
    case "timestampValue":
      return timestampDate(kind.value);
    case "listValue":
      return kind.value.values.map(fromValue);
    case "mapValue":
      return fromFields(kind.value.fields);
    default:
      return kind.value;
  }
}

function fromFields(fields: Record<string, Value>): Row {
  const row: Row = {};
  for (const [k, v] of Object.entries(fields)) row[k] = fromValue(v);
  return row;
}

/** An `oort.v1.Event` from a row; an `Event` passes through. */
export function toEvent(row: RowInput | Event): Event {
  if ((row as { $typeName?: string }).$typeName === "oort.v1.Event") return row as Event;
  const fields: Record<string, Value> = {};
  for (const [k, x] of Object.entries(row as RowInput)) fields[k] = toValue(x);
  return create(EventSchema, { fields });
}

/** The row of an event. */
export function fromEvent(event: Event | undefined): Row {
  return fromFields(event?.fields ?? {});
}

/** The environment variable the token defaults to. */
export const TOKEN_ENV = "OORT_TOKEN";

/**
 * TLS settings, as Node's `tls.connect` takes them: PEM contents (read files
 * with `readFileSync`). `ca`: the CA that signed the server's certificate (Node's
 * bundled CAs when absent); `cert` and `key`: a client certificate, for mutual
 * TLS; `servername`: the name to check the server's certificate against, when
 * it is not the address's host.
 */
export type TlsOptions = Pick<SecureContextOptions, "ca" | "cert" | "key"> & Pick<ConnectionOptions, "servername">;

export interface OortOptions {
  /**
   * Sent as `authorization: Bearer <token>` on every call; default
   * `process.env.OORT_TOKEN`; "" sends none. The server's token is its
   * OORT_AUTH_TOKEN, or what it wrote to `<data_dir>/admin.token` at its first start.
   */
  token?: string;
  /** TLS (`true`: with Node's bundled CAs); also implied by an https:// address. */
  tls?: boolean | TlsOptions;
  /** More interceptors, after the one that adds the token. */
  interceptors?: Interceptor[];
  /** Use this transport instead of gRPC to the address: `token`, `tls` and `interceptors` do not apply (see `bearerToken`). */
  transport?: Transport;
  /** Deadline of unary calls in milliseconds (default 30000). */
  timeoutMs?: number;
}

/**
 * An interceptor that sends `authorization: Bearer <token>` on every call that
 * has none of its own, for a transport made by hand:
 * `createGrpcTransport({ baseUrl, interceptors: [bearerToken(token)] })`.
 */
export function bearerToken(token: string): Interceptor {
  const value = `Bearer ${token}`;
  return (next) => (req) => {
    if (!req.header.has("authorization")) req.header.set("authorization", value);
    return next(req);
  };
}

/** A connection to oortd: `new Oort("127.0.0.1:9081").streams.create(sql)`. */
export class Oort {
  readonly transport: Transport;
  /** The generated clients, for what the wrapper does not cover. */
  readonly streamService: Client<typeof StreamService>;
  readonly ruleService: Client<typeof RuleService>;
  readonly eventService: Client<typeof EventService>;
  readonly pluginService: Client<typeof PluginService>;
  readonly externalService: Client<typeof ExternalService>;
  readonly functionService: Client<typeof FunctionService>;
  readonly connectorService: Client<typeof ConnectorService>;
  readonly stateService: Client<typeof StateService>;
  readonly connectionService: Client<typeof ConnectionService>;
  readonly schemaService: Client<typeof SchemaService>;
  readonly streams: Streams;
  readonly rules: Rules;
  readonly events: Events;
  private readonly sessions?: Http2SessionManager;

  /**
   * `address` is host:port (plaintext gRPC, or TLS with the `tls` option) or a
   * URL such as "http://host:port" or "https://host:port".
   */
  constructor(address = "127.0.0.1:9081", options: OortOptions = {}) {
    if (options.transport) {
      this.transport = options.transport;
    } else {
      const tls = options.tls ?? false;
      const baseUrl = address.includes("://") ? address : `${tls === false ? "http" : "https"}://${address}`;
      if (tls !== false && !baseUrl.startsWith("https://")) throw new Error(`TLS asked for, but the address ${address} is not https://`);
      const token = (options.token ?? process.env[TOKEN_ENV] ?? "").trim(); // e.g. read from admin.token, with its newline
      const interceptors = [...(token ? [bearerToken(token)] : []), ...(options.interceptors ?? [])];
      this.sessions = new Http2SessionManager(baseUrl, undefined, typeof tls === "object" ? tls : undefined);
      this.transport = createGrpcTransport({ baseUrl, sessionManager: this.sessions, interceptors });
    }
    this.streamService = createClient(StreamService, this.transport);
    this.ruleService = createClient(RuleService, this.transport);
    this.eventService = createClient(EventService, this.transport);
    this.pluginService = createClient(PluginService, this.transport);
    this.externalService = createClient(ExternalService, this.transport);
    this.functionService = createClient(FunctionService, this.transport);
    this.connectorService = createClient(ConnectorService, this.transport);
    this.stateService = createClient(StateService, this.transport);
    this.connectionService = createClient(ConnectionService, this.transport);
    this.schemaService = createClient(SchemaService, this.transport);
    const timeoutMs = options.timeoutMs ?? 30_000;
    this.streams = new Streams(this.streamService, timeoutMs);
    this.rules = new Rules(this.ruleService, timeoutMs);
    this.events = new Events(this.eventService, timeoutMs);
  }

  /** Closes the HTTP/2 connection this client opened (not a transport passed in). */
  close(): void {
    this.sessions?.abort();
  }
}

/** StreamService: streams and tables, declared in eKuiper DDL. */
export class Streams {
  constructor(
    private readonly client: Client<typeof StreamService>,
    private readonly timeoutMs: number,
  ) {}

  /** Creates a stream or table from `CREATE STREAM ...` / `CREATE TABLE ...`. */
  async create(sql: string): Promise<Stream> {
    return required((await this.client.createStream({ sql }, { timeoutMs: this.timeoutMs })).stream);
  }

  async get(name: string): Promise<Stream> {
    return required((await this.client.getStream({ name }, { timeoutMs: this.timeoutMs })).stream);
  }

  async list(kind: StreamKind = StreamKind.UNSPECIFIED): Promise<Stream[]> {
    return (await this.client.listStreams({ kind }, { timeoutMs: this.timeoutMs })).streams;
  }

  async update(sql: string): Promise<Stream> {
    return required((await this.client.updateStream({ sql }, { timeoutMs: this.timeoutMs })).stream);
  }

  async delete(name: string): Promise<void> {
    await this.client.deleteStream({ name }, { timeoutMs: this.timeoutMs });
  }
}

export interface CreateRuleOptions {
  options?: MessageInitShape<typeof RuleOptionsSchema>;
  /** false creates the rule stopped. */
  triggered?: boolean;
}

/**
 * Results per TailRuleResponse that `tail` asks for (`maxBatch`): a message per
 * result costs connect-node ~0.1 ms; the server sends what it has without waiting.
 */
export const TAIL_BATCH = 256;

/** RuleService: rules, their lifecycle, status and live output. */
export class Rules {
  constructor(
    private readonly client: Client<typeof RuleService>,
    private readonly timeoutMs: number,
  ) {}

  /** Creates (and, unless `triggered: false`, starts) a rule; the default `grpc` sink is read with `tail`. */
  async create(id: string, sql: string, actions: ActionLike[] = ["grpc"], more: CreateRuleOptions = {}): Promise<Rule> {
    const rule = {
      id,
      sql,
      actions: actions.map((a) => (typeof a === "string" ? { type: a } : a)),
      options: more.options,
      triggered: more.triggered,
    };
    return required((await this.client.createRule({ rule }, { timeoutMs: this.timeoutMs })).rule);
  }

  async get(id: string): Promise<Rule> {
    return required((await this.client.getRule({ id }, { timeoutMs: this.timeoutMs })).rule);
  }

  async list(): Promise<RuleInfo[]> {
    return (await this.client.listRules({}, { timeoutMs: this.timeoutMs })).rules;
  }

  async delete(id: string): Promise<void> {
    await this.client.deleteRule({ id }, { timeoutMs: this.timeoutMs });
  }

  async start(id: string): Promise<void> {
    await this.client.startRule({ id }, { timeoutMs: this.timeoutMs });
  }

  async stop(id: string): Promise<void> {
    await this.client.stopRule({ id }, { timeoutMs: this.timeoutMs });
  }

  async restart(id: string): Promise<void> {
    await this.client.restartRule({ id }, { timeoutMs: this.timeoutMs });
  }

  /** State and per-operator counters (recordsInTotal, recordsOutTotal, ...). */
  async status(id: string): Promise<GetRuleStatusResponse> {
    return this.client.getRuleStatus({ id }, { timeoutMs: this.timeoutMs });
  }

  async explain(id: string): Promise<string> {
    return (await this.client.explainRule({ id }, { timeoutMs: this.timeoutMs })).plan;
  }

  /**
   * The rule's results as they are produced, as events, one at a time (received
   * up to TAIL_BATCH a message); the iteration ends when the rule stops.
   * Resolves once the server has opened the tail, so events published after it
   * are seen; rejects with the server's error (e.g. NotFound).
   * Abort `signal` (or leave the `for await` loop) to end the call.
   */
  async tailEvents(id: string, signal?: AbortSignal): Promise<AsyncIterableIterator<Event>> {
    return new TailRows(await this.openTail(id, TailEncoding.UNSPECIFIED, signal), eventsOf);
  }

  /** As `tailEvents`, with rows (column → plain value: BIGINT a bigint, DATETIME a Date, BYTEA a Uint8Array). */
  async tail(id: string, signal?: AbortSignal): Promise<AsyncIterableIterator<Row>> {
    const responses = await this.openTail(id, TailEncoding.UNSPECIFIED, signal);
    return new TailRows(responses, (response) => eventsOf(response).map(fromEvent));
  }

  /**
   * As `tail`, with the rows as JSON objects, as the rule's JSON sinks write
   * them (TAIL_ENCODING_JSON: one JSON.parse a message, several times cheaper a
   * row than `Event` messages): numbers are JS numbers (integers past 2^53
   * lose precision, as JSON.parse has it), BYTEA base64 text, DATETIME RFC 3339 text.
   */
  async tailJson(id: string, signal?: AbortSignal): Promise<AsyncIterableIterator<JsonObject>> {
    const decoder = new TextDecoder();
    const responses = await this.openTail(id, TailEncoding.JSON, signal);
    return new TailRows(responses, (response) => JSON.parse(decoder.decode(response.json)) as JsonObject[]);
  }

  /** Opens a TailRule call: resolves once the server sent its headers, rejects on a refusal. */
  private async openTail(id: string, encoding: TailEncoding, signal?: AbortSignal): Promise<OpenTail> {
    let opened!: () => void;
    const headers = new Promise<void>((resolve) => (opened = resolve));
    const request = { id, maxBatch: TAIL_BATCH, encoding };
    const responses = this.client.tailRule(request, { signal, onHeader: () => opened() })[Symbol.asyncIterator]();
    const first = responses.next(); // sends the request
    first.catch(() => undefined); // handled by whoever awaits it below
    await Promise.race([headers, first]); // a refusal (trailers only, no headers) rejects here
    return { first, responses };
  }
}

/** A TailRule call once open: its first response, under way, and the rest. */
interface OpenTail {
  first: Promise<IteratorResult<TailRuleResponse>>;
  responses: AsyncIterator<TailRuleResponse>;
}

/** The events of a typed TailRule response (an oortd older than maxBatch answers in `event`). */
function eventsOf(response: TailRuleResponse): Event[] {
  return response.event ? [response.event, ...response.events] : response.events;
}

/**
 * The rows of a TailRule call, one `next()` a row. An iterator of its own
 * rather than an async generator: a generator's `yield*` over each response's
 * rows costs several microtasks a row (1.2–1.7 ms for 1,000 rows, against
 * 0.4–0.5 ms so). Leaving a `for await` loop (or `return()`) ends the call.
 */
class TailRows<R> implements AsyncIterableIterator<R> {
  private rows: R[] = [];
  private read = 0;
  private pending?: Promise<IteratorResult<TailRuleResponse>>;
  private readonly responses: AsyncIterator<TailRuleResponse>;

  constructor(
    open: OpenTail,
    private readonly unpack: (response: TailRuleResponse) => R[],
  ) {
    this.pending = open.first;
    this.responses = open.responses;
  }

  async next(): Promise<IteratorResult<R, undefined>> {
    while (this.read >= this.rows.length) {
      const next = await (this.pending ?? this.responses.next());
      this.pending = undefined;
      if (next.done) return { done: true, value: undefined };
      this.rows = this.unpack(next.value);
      this.read = 0;
    }
    return { done: false, value: this.rows[this.read++] };
  }

  async return(): Promise<IteratorResult<R, undefined>> {
    this.rows = [];
    this.pending = undefined;
    await this.responses.return?.(); // cancels the call, even before its first response
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Events per PublishRequest: a message per event costs a round of framing each. */
export const PUBLISH_BATCH = 256;

/** EventService: events into `TYPE="grpc"` streams. */
export class Events {
  constructor(
    private readonly client: Client<typeof EventService>,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Publishes rows (or Events) in one client stream, up to PUBLISH_BATCH a
   * message; resolves to how many the server accepted. A batch of rows that
   * JSON carries as they are (no Uint8Array, Date, Value, Event, NaN, nor an
   * integer past 2^53) goes as one JSON document (`PublishRequest.json`: one
   * JSON.stringify instead of a message per value), others as typed events;
   * both give the server the same values.
   */
  async publish(stream: string, events: Iterable<RowInput | Event> | AsyncIterable<RowInput | Event>): Promise<number> {
    let pending: (RowInput | Event)[] = [];
    // The request that `event` completes, if it does.
    const add = (event: RowInput | Event) => {
      pending.push(event);
      if (pending.length < PUBLISH_BATCH) return undefined;
      const request = publishRequest(stream, pending);
      pending = [];
      return request;
    };
    async function* requests() {
      if (Symbol.iterator in events) {
        // A plain array or iterable is read without a microtask per element.
        for (const event of events as Iterable<RowInput | Event>) {
          const request = add(event);
          if (request) yield request;
        }
      } else {
        for await (const event of events) {
          const request = add(event);
          if (request) yield request;
        }
      }
      if (pending.length > 0) yield publishRequest(stream, pending);
    }
    const response = await this.client.publish(requests(), { timeoutMs: this.timeoutMs });
    return Number(response.accepted);
  }
}

const encoder = new TextEncoder();

/** One PublishRequest of a batch: in JSON when JSON carries its values as they are, typed otherwise. */
function publishRequest(stream: string, batch: (RowInput | Event)[]) {
  const json = jsonOf(batch);
  if (json !== undefined) return create(PublishRequestSchema, { stream, json: encoder.encode(json) });
  return create(PublishRequestSchema, { stream, events: batch.map(toEvent) });
}

/** What `jsonSafe` answers for a value that JSON would not carry as `toValue` sends it. */
const NOT_JSON = Symbol("not JSON");

/** The batch as JSON text, or undefined if a value would not arrive as toValue sends it. */
function jsonOf(batch: (RowInput | Event)[]): string | undefined {
  const rows = jsonSafe(batch);
  // No replacer: one called for every key and value tripled the time of a batch.
  return rows === NOT_JSON ? undefined : JSON.stringify(rows);
}

/**
 * `v` as JSON.stringify can write it with the values toValue would send: its
 * bigints as numbers (copying only the arrays and objects that hold one), or
 * NOT_JSON for what JSON would change: NaN and infinities (null), integers
 * past 2^53 (toValue sends FLOAT, JSON would read BIGINT), bigints past 2^53,
 * bytes, dates, `Value`s and `Event`s, objects with a toJSON of their own.
 */
function jsonSafe(v: unknown): unknown {
  switch (typeof v) {
    case "string":
    case "boolean":
    case "undefined":
      return v;
    case "number":
      return Number.isFinite(v) && (!Number.isInteger(v) || Number.isSafeInteger(v)) ? v : NOT_JSON;
    case "bigint":
      return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : NOT_JSON;
    case "object": {
      if (v === null) return v;
      if (Array.isArray(v)) {
        let copy: unknown[] | undefined;
        for (let i = 0; i < v.length; i++) {
          const x = jsonSafe(v[i]);
          if (x === NOT_JSON) return NOT_JSON;
          if (x !== v[i]) (copy ??= v.slice())[i] = x;
        }
        return copy ?? v;
      }
      if (v instanceof Uint8Array || v instanceof Date || "$typeName" in v || typeof (v as { toJSON?: unknown }).toJSON === "function") {
        return NOT_JSON;
      }
      const fields = v as Record<string, unknown>;
      let copy: Record<string, unknown> | undefined;
      for (const key of Object.keys(fields)) {
        const x = jsonSafe(fields[key]);
        if (x === NOT_JSON) return NOT_JSON;
        if (x !== fields[key]) (copy ??= { ...fields })[key] = x;
      }
      return copy ?? v;
    }
    default:
      return NOT_JSON;
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("oortd answered without the expected message");
  return value;
}
