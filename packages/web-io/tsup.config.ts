import { defineConfig } from "tsup";

// Three outputs in dist/ (emptied by the build script first: parallel configs must not `clean` each other):
// - index.js + index.d.ts: the library; "@flashllm/sdk" stays an import, as for any dependency.
// - worker.js: the ready-made worker module, self-contained (SDK and its embedded kernels bundled in),
//   found by FlashWorkerClient.create() as `new URL("./worker.js", import.meta.url)`.
// - shard-worker.js: the shard worker module the engine's worker starts for `workers` > 1, self-contained
//   too, found as `new URL("./shard-worker.js", import.meta.url)` beside worker.js (and index.js).
// - demo.js: the demo page's script, self-contained, beside worker.js for the same reason.
const common = { format: ["esm" as const], target: "es2022", platform: "browser" as const, sourcemap: true, clean: false };

export default defineConfig([
  { ...common, entry: { index: "src/index.ts" }, dts: true, external: ["@flashllm/sdk"] },
  { ...common, entry: { worker: "src/worker/main.ts", "shard-worker": "src/worker/shard-main.ts", demo: "demo/demo.ts" }, noExternal: [/.*/], splitting: false },
]);
