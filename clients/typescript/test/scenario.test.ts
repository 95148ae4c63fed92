// The scenario every client proves against the real oortd: a grpc stream, a
// rule that filters and converts, events published, the rule's output tailed,
// and honest error codes.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";

import type { Interceptor } from "@connectrpc/connect";

import type { JsonObject } from "@bufbuild/protobuf";

import {
  Code,
  ConnectError,
  EventService,
  Oort,
  RuleService,
  RuleState,
  StreamKind,
  TAIL_BATCH,
  float,
  fromValue,
  toValue,
  type PublishRequest,
  type Row,
  type TailRuleRequest,
} from "../src/index.js";
import { Oortd } from "./oortd.js";

const STREAM_SQL = 'CREATE STREAM sensors (temperature FLOAT, deviceId STRING) WITH (TYPE="grpc", DATASOURCE="sensors")';
const RULE_SQL = "SELECT temperature * 1.8 + 32 AS f, deviceId FROM sensors WHERE temperature > 20";

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConnectError, `not a ConnectError: ${error}`);
    return error;
  }
  assert.fail("the call should fail");
}

describe("oortd", () => {
  let server: Oortd;
  let oort: Oort;

  before(async () => {
    server = await Oortd.start();
    oort = server.client();
  });

  after(async () => {
    oort?.close();
    await server?.stop();
  });

  it("creates a stream and a rule, publishes events and tails the results", async () => {
    const stream = await oort.streams.create(STREAM_SQL);
    assert.equal(stream.name, "sensors");
    assert.equal(stream.kind, StreamKind.STREAM);
    assert.deepEqual(
      stream.fields.map((f) => [f.name, f.type]),
      [
        ["temperature", "FLOAT"],
        ["deviceId", "STRING"],
      ],
    );
    assert.equal(stream.options.TYPE, "grpc");

    const rule = await oort.rules.create("hot", RULE_SQL, ["grpc"]);
    assert.equal(rule.id, "hot");
    assert.deepEqual(
      rule.actions.map((a) => a.type),
      ["grpc"],
    );
    assert.equal((await oort.rules.get("hot")).sql, RULE_SQL);
    assert.deepEqual(
      (await oort.rules.list()).map((r) => [r.rule?.id, r.state]),
      [["hot", RuleState.RUNNING]],
    );

    const abort = new AbortController();
    const tail = await oort.rules.tail("hot", abort.signal);
    const rows: Row[] = [];
    const threeRows = (async () => {
      for await (const row of tail) {
        rows.push(row);
        if (rows.length === 3) break;
      }
    })();

    const accepted = await oort.events.publish("sensors", [
      { temperature: float(25), deviceId: "a" },
      { temperature: 10.5, deviceId: "b" }, // not above 20
      { temperature: 30, deviceId: "c" }, // a BIGINT for a FLOAT column is converted
      { temperature: float(20), deviceId: "d" }, // not above 20
      { temperature: 21.5, deviceId: "e" },
    ]);
    assert.equal(accepted, 5);

    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      threeRows,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`3 rows within 10 s, got ${rows.length}`)), 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.equal(rows.length, 3);
    const expected = [
      [77, "a"],
      [86, "c"],
      [70.7, "e"],
    ] as const;
    rows.forEach((row, i) => {
      assert.deepEqual(Object.keys(row).sort(), ["deviceId", "f"]);
      assert.equal(typeof row.f, "number", "f is a FLOAT");
      assert.ok(Math.abs((row.f as number) - expected[i][0]) < 1e-9, `row ${i}: f=${row.f}`);
      assert.equal(row.deviceId, expected[i][1]);
    });
    abort.abort();

    const status = await oort.rules.status("hot");
    assert.equal(status.state, RuleState.RUNNING);
    const filter = status.operators.find((op) => op.name === "op_filter_0");
    assert.ok(filter, `op_filter_0 in ${status.operators.map((op) => op.name)}`);
    assert.equal(filter.recordsInTotal, 5n);
    assert.equal(filter.recordsOutTotal, 3n);

    // A tail ends when its rule stops.
    const open = await oort.rules.tail("hot");
    const ended = (async () => {
      let count = 0;
      for await (const _ of open) count++;
      return count;
    })();
    await oort.rules.stop("hot");
    assert.equal(await ended, 0);
    assert.equal((await oort.rules.status("hot")).state, RuleState.STOPPED);

    await oort.rules.delete("hot");
    assert.equal((await rejection(oort.rules.get("hot"))).code, Code.NotFound);
    assert.equal((await rejection(oort.rules.tail("hot"))).code, Code.NotFound);
    await oort.streams.delete("sensors");
  });

  it("tails results in batches and yields them one row at a time", async () => {
    // Records, at the gRPC level, the TailRule requests and the responses the wrapper reads.
    const maxBatch: number[] = [];
    let responses = 0;
    const count: Interceptor = (next) => async (req) => {
      if (!req.stream || req.method !== RuleService.method.tailRule) return next(req);
      const requests = req.message;
      const res = await next({
        ...req,
        message: (async function* () {
          for await (const message of requests) {
            maxBatch.push((message as TailRuleRequest).maxBatch);
            yield message;
          }
        })(),
      });
      if (!res.stream) return res;
      const received = res.message;
      return {
        ...res,
        message: (async function* () {
          for await (const message of received) {
            responses++;
            yield message;
          }
        })(),
      };
    };
    const counted = server.client({ interceptors: [count] });

    await oort.streams.create('CREATE STREAM burst (n BIGINT) WITH (TYPE="grpc", DATASOURCE="burst")');
    // The window hands its 1,000 rows to the tail at once: they come in
    // ceil(1000 / TAIL_BATCH) responses, where an unbatched tail takes 1,000.
    await oort.rules.create("burst", "SELECT n FROM burst GROUP BY COUNTWINDOW(1000)");
    const abort = new AbortController();
    const tail = await counted.rules.tail("burst", abort.signal);
    const all = Array.from({ length: 1000 }, (_, i) => BigInt(i));
    assert.equal(await oort.events.publish("burst", all.map((n) => ({ n }))), 1000);
    const rows: Row[] = [];
    for await (const row of tail) {
      rows.push(row);
      if (rows.length === all.length) break;
    }
    abort.abort();
    counted.close();
    assert.deepEqual(
      rows.map((row) => row.n),
      all,
    );
    assert.deepEqual(maxBatch, [TAIL_BATCH]);
    assert.equal(responses, Math.ceil(all.length / TAIL_BATCH));
    await oort.rules.delete("burst");
    await oort.streams.delete("burst");
  });

  it("publishes JSON where JSON carries the rows, typed events where not, and tails JSON", async () => {
    const sent: PublishRequest[] = [];
    const record: Interceptor = (next) => async (req) => {
      if (!req.stream || req.method !== EventService.method.publish) return next(req);
      const requests = req.message;
      return next({
        ...req,
        message: (async function* () {
          for await (const message of requests) {
            sent.push(message as PublishRequest);
            yield message;
          }
        })(),
      });
    };
    const recorded = server.client({ interceptors: [record] });
    await oort.streams.create('CREATE STREAM mixed (n BIGINT, x FLOAT, b BYTEA, at DATETIME) WITH (TYPE="grpc", DATASOURCE="mixed")');
    await oort.rules.create("mixed", "SELECT n, x, b, at FROM mixed");
    const abort = new AbortController();
    const typed = await oort.rules.tail("mixed", abort.signal);
    const json = await oort.rules.tailJson("mixed", abort.signal);
    const at = new Date("2026-12-01T12:30:00Z");
    // Two batches of plain rows (256 + 44): JSON; the last holds bytes and a Date: typed.
    const plain = Array.from({ length: 300 }, (_, i) => ({ n: BigInt(i), x: i + 0.5 }));
    const accepted = await recorded.events.publish("mixed", [...plain, { n: 300, x: 1, b: new Uint8Array([0, 255]), at }]);
    recorded.close();
    assert.equal(accepted, 301);
    assert.deepEqual(
      sent.map((r) => [r.json.length > 0, r.events.length]),
      [
        [true, 0],
        [false, 45],
      ],
    );
    const typedRows: Row[] = [];
    for await (const row of typed) if (typedRows.push(row) === 301) break;
    const jsonRows: JsonObject[] = [];
    for await (const row of json) if (jsonRows.push(row) === 301) break;
    abort.abort();
    // The same values either way; only their JS types differ.
    assert.deepEqual(typedRows.slice(0, 300), plain);
    assert.deepEqual(typedRows[300], { n: 300n, x: 1, b: new Uint8Array([0, 255]), at });
    assert.deepEqual(
      jsonRows.slice(0, 300),
      plain.map(({ n, x }) => ({ n: Number(n), x })),
    );
    assert.deepEqual(jsonRows[300], { n: 300, x: 1, b: "AP8=", at: "2026-12-01T12:30:00Z" });
    // A tail left before any result came ends at once, without waiting for one.
    const idle = await oort.rules.tailJson("mixed");
    const ended = await Promise.race([idle.return?.().then(() => "ended"), sleep(5000, "hung", { ref: false })]);
    assert.equal(ended, "ended");
    await oort.rules.delete("mixed");
    await oort.streams.delete("mixed");
  });

  it("reports honest error codes", async () => {
    const missing = await rejection(oort.streams.get("nope"));
    assert.equal(missing.code, Code.NotFound);
    assert.match(missing.rawMessage, /nope/);

    const bad = await rejection(oort.streams.create('CREATE STREAM bad (t FLAOT) WITH (DATASOURCE="x")'));
    assert.equal(bad.code, Code.InvalidArgument);
    assert.match(bad.rawMessage, /line 1, column 22/);
    assert.match(bad.rawMessage, /FLAOT/);

    const badRule = await rejection(oort.rules.create("r", "SELECT FROM WHERE", ["log"]));
    assert.equal(badRule.code, Code.InvalidArgument);
    assert.match(badRule.rawMessage, /line 1/);

    const noStream = await rejection(oort.events.publish("absent", [{ x: 1 }]));
    assert.equal(noStream.code, Code.NotFound);
  });
});

describe("values", () => {
  it("round-trips plain values", () => {
    const at = new Date("2026-01-02T03:04:05.006Z");
    for (const v of [null, true, -(2n ** 63n), 1.5, "text", new Uint8Array([0, 255]), at, [1n, "a"], { a: { b: false } }]) {
      assert.deepEqual(fromValue(toValue(v)), v);
    }
  });

  it("sends integral numbers as BIGINT unless float() says otherwise", () => {
    assert.equal(toValue(3).kind.case, "intValue");
    assert.equal(toValue(3.5).kind.case, "floatValue");
    assert.equal(float(3).kind.case, "floatValue");
  });
});
