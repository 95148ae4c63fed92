// The client scenario, timed (see scenario.py), with the TypeScript client:
// ROUNDS rounds on one client, the milliseconds of each printed one a line.
// Usage: node scenario.mjs ADDRESS NAME [ROUNDS] (after `npm test` built clients/typescript/dist).
import { Oort } from "../typescript/dist/src/index.js";

const EVENTS = 1000;
const [address, name, rounds = "1"] = process.argv.slice(2);
const oort = new Oort(address);

async function scenario(name) {
  const started = performance.now();
  await oort.streams.create(`CREATE STREAM ${name} (t BIGINT) WITH (TYPE="grpc", DATASOURCE="${name}")`);
  await oort.rules.create(name, `SELECT t FROM ${name}`, ["grpc"]);
  const abort = new AbortController();
  const tail = await oort.rules.tailJson(name, abort.signal);
  await oort.events.publish(name, Array.from({ length: EVENTS }, (_, i) => ({ t: BigInt(i) })));
  for (let i = 0; i < EVENTS; i++) {
    const { value } = await tail.next();
    if (Number(value.t) !== i) throw new Error(`result ${i}: ${JSON.stringify(value, (_, v) => (typeof v === "bigint" ? Number(v) : v))}`);
  }
  const elapsed = performance.now() - started;
  // Untimed: every round starts from the same catalog.
  abort.abort();
  await oort.rules.delete(name);
  await oort.streams.delete(name);
  return elapsed;
}

for (let round = 0; round < Number(rounds); round++) {
  console.log((await scenario(`${name}_${round}`)).toFixed(1));
}
oort.close();
