import { Oort } from "../typescript/dist/src/index.js";
const oort = new Oort("127.0.0.1:19081");
const base = Date.now();
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  for (let i = 0; i < 50; i++) await oort.streams.create(`CREATE STREAM cs${base}_${r}_${i} (t BIGINT) WITH (TYPE="grpc", DATASOURCE="x${i}")`);
  const t1 = performance.now();
  for (let i = 0; i < 50; i++) await oort.rules.get("nope").catch(() => 0);
  const t2 = performance.now();
  console.log("create", ((t1 - t0) / 50).toFixed(3), "ms; get", ((t2 - t1) / 50).toFixed(3), "ms");
}
oort.close();
