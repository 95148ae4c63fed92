// The token and TLS: oortd asks every call but health for `authorization:
// Bearer <token>`, and serves TLS with --tls-cert/--tls-key.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { Code, ConnectError, Oort, StreamKind, TOKEN_ENV, bearerToken } from "../src/index.js";
import { Oortd } from "./oortd.js";

async function code(promise: Promise<unknown>): Promise<Code> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConnectError, `not a ConnectError: ${error}`);
    return error.code;
  }
  assert.fail("the call should fail");
}

/** Creates a stream, reads it back and deletes it. */
async function checkStream(oort: Oort, name: string): Promise<void> {
  const created = await oort.streams.create(`CREATE STREAM ${name} (temperature FLOAT, deviceId STRING) WITH (TYPE="grpc", DATASOURCE="${name}")`);
  assert.equal(created.name, name);
  const got = await oort.streams.get(name);
  assert.equal(got.name, name);
  assert.equal(got.kind, StreamKind.STREAM);
  assert.deepEqual(
    got.fields.map((f) => f.name),
    ["temperature", "deviceId"],
  );
  await oort.streams.delete(name);
}

/** Runs body with the client, then closes it. */
async function using<T>(oort: Oort, body: (oort: Oort) => Promise<T>): Promise<T> {
  try {
    return await body(oort);
  } finally {
    oort.close();
  }
}

describe("the token", () => {
  let server: Oortd;
  before(async () => {
    server = await Oortd.start();
  });
  after(async () => {
    await server?.stop();
  });

  it("is required: a call without one, or with a wrong one, is UNAUTHENTICATED", async () => {
    for (const token of ["", "0".repeat(64)]) {
      await using(server.client({ token }), async (oort) => assert.equal(await code(oort.streams.list()), Code.Unauthenticated, token));
    }
  });

  it("defaults to $OORT_TOKEN, and goes on a transport of one's own with bearerToken", async () => {
    const saved = process.env[TOKEN_ENV];
    process.env[TOKEN_ENV] = `${server.token}\n`; // as read from a file: the newline goes
    try {
      await using(new Oort(server.addr), async (oort) => assert.deepEqual(await oort.streams.list(), []));
      // "" sends none, whatever the environment says.
      await using(new Oort(server.addr, { token: "" }), async (oort) => assert.equal(await code(oort.streams.list()), Code.Unauthenticated));
    } finally {
      if (saved === undefined) delete process.env[TOKEN_ENV];
      else process.env[TOKEN_ENV] = saved;
    }
    const baseUrl = `http://${server.addr}`;
    const sessionManager = new Http2SessionManager(baseUrl);
    const transport = createGrpcTransport({ baseUrl, sessionManager, interceptors: [bearerToken(server.token)] });
    try {
      assert.deepEqual(await new Oort(server.addr, { transport }).streams.list(), []);
    } finally {
      sessionManager.abort();
    }
  });
});

describe("TLS", () => {
  let server: Oortd;
  before(async () => {
    server = await Oortd.start("server");
  });
  after(async () => {
    await server?.stop();
  });

  it("connects with the server's CA and the token", async () => {
    await using(server.client(), (oort) => checkStream(oort, "secure")); // host:port with { tls: { ca } }
    const url = `https://${server.addr}`;
    await using(new Oort(url, { token: server.token, tls: { ca: server.pem("ca.pem") } }), (oort) => checkStream(oort, "secure_url"));
    await using(server.client({ token: "" }), async (oort) => assert.equal(await code(oort.streams.list()), Code.Unauthenticated));
  });

  it("refuses a server whose certificate no known CA signed", async () => {
    // Node's bundled CAs did not sign the test CA.
    await using(new Oort(server.addr, { token: server.token, tls: true }), async (oort) => {
      const error = await oort.streams.list().then(
        () => assert.fail("the call should fail"),
        (e: unknown) => ConnectError.from(e),
      );
      assert.match(error.message, /certificate/);
    });
  });
});

describe("mutual TLS", () => {
  let server: Oortd;
  before(async () => {
    server = await Oortd.start("mutual");
  });
  after(async () => {
    await server?.stop();
  });

  it("connects with a client certificate, the server's CA and the token", async () => {
    const tls = { ca: server.pem("ca.pem"), cert: server.pem("client.pem"), key: server.pem("client.key") };
    await using(server.client({ tls }), (oort) => checkStream(oort, "mutual"));
  });
});
