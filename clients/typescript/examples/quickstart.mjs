// The README's quick start, as JavaScript that Node runs as it is (an ES
// module, with top-level await). Against a running oortd:
//
//   OORT_TOKEN=$(cat data/admin.token) node quickstart.mjs [host:port]
//
// The address defaults to 127.0.0.1:9081, the token to $OORT_TOKEN. It creates
// the stream `sensors` and the rule `hot`, publishes two rows, prints what the
// rule sends, and deletes the rule and the stream again, so it can run twice.
import { Code, ConnectError, Oort, float } from "@oort-edge/oort-client";

const oort = new Oort(process.argv[2] ?? "127.0.0.1:9081");
await oort.streams.create('CREATE STREAM sensors (temperature FLOAT, deviceId STRING) WITH (TYPE="grpc", DATASOURCE="sensors")');
await oort.rules.create("hot", "SELECT temperature * 1.8 + 32 AS f, deviceId FROM sensors WHERE temperature > 20", ["grpc"]);
const tail = await oort.rules.tail("hot"); // RuleService.TailRule, open: an async iterator of rows
await oort.events.publish("sensors", [{ temperature: float(25), deviceId: "a" }, { temperature: float(10), deviceId: "b" }]);
console.log((await tail.next()).value); // { f: 77, deviceId: 'a' }
await oort.streams.get("nope").catch((e) => {
  if (!(e instanceof ConnectError)) throw e;
  console.log(e.code === Code.NotFound, e.rawMessage); // true stream 'nope' not found
});
await oort.rules.delete("hot");
await oort.streams.delete("sensors");
oort.close();
