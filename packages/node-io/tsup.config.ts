import { defineConfig } from "tsup";

export default defineConfig({
  entry: { index: "src/index.ts", cli: "src/cli.ts", "shard-worker": "src/shards/shard-worker.ts", "reader-worker": "src/source/reader-worker.ts", "peer-llama-cpp": "src/peer/llama-cpp-child.ts" },
  format: ["esm"],
  dts: { entry: "src/index.ts" },
  clean: true,
  target: "node20",
  platform: "node",
  sourcemap: true,
  external: [/^@flashllm\/sdk(\/|$)/],
});
