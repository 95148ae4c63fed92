import { Oort } from "../typescript/dist/src/index.js";
const oort = new Oort("127.0.0.1:19081");
for (let i = 0; i < 100; i++) await oort.rules.get("nope").catch(() => 0);
const t0 = performance.now(); const c0 = process.cpuUsage();
for (let i = 0; i < 1000; i++) await oort.rules.get("nope").catch(() => 0);
const c = process.cpuUsage(c0);
console.log(((performance.now() - t0) / 1000).toFixed(3), "ms wall", ((c.user + c.system) / 1000 / 1000).toFixed(3), "ms cpu");
oort.close();
