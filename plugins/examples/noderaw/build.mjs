// Bundles src/plugin.ts and everything it imports (the generated code, Connect,
// protobuf-es) into one ES module, dist/plugin.mjs, that needs nothing but
// `node` (>= 20) to run: the package ships that file, not node_modules.
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));

// The generated code in clients/typescript/src/gen imports @bufbuild/protobuf;
// resolve it (and every other package) from this folder, so that one copy, the
// version pinned in package-lock.json, is bundled.
const fromHere = {
  name: "resolve-packages-from-noderaw",
  setup(build) {
    build.onResolve({ filter: /^@bufbuild\/protobuf(\/|$)/ }, (args) => {
      if (args.pluginData === "fromHere") return undefined;
      return build.resolve(args.path, { kind: args.kind, resolveDir: here, pluginData: "fromHere" });
    });
  },
};

const result = await esbuild.build({
  entryPoints: [`${here}src/plugin.ts`],
  outfile: `${here}dist/plugin.mjs`,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  minify: process.argv.includes("--minify"),
  legalComments: "eof",
  banner: { js: "// noderaw: an Oort portable plugin (Node.js, no SDK). Built by build.mjs with esbuild; source in src/." },
  plugins: [fromHere],
  metafile: true,
  logLevel: "warning",
});
const inputs = Object.keys(result.metafile.inputs);
const protobufCopies = new Set(inputs.map((p) => p.match(/^(.*node_modules\/@bufbuild\/protobuf)\//)?.[1]).filter(Boolean));
if (protobufCopies.size !== 1) throw new Error(`expected one @bufbuild/protobuf in the bundle, got ${[...protobufCopies]}`);
const [out] = Object.values(result.metafile.outputs);
console.error(`dist/plugin.mjs: ${(out.bytes / 1024).toFixed(0)} KiB from ${inputs.length} files`);
