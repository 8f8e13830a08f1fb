import { defineConfig } from "tsup";

export default defineConfig({
  // The curated public entry, the test helpers, and every building block for flashllm's own packages.
  // ESM code splitting puts shared modules in common chunks, so a class is the same class from any entry.
  entry: { index: "src/index.ts", testing: "src/testing/index.ts", internal: "src/internal.ts" },
  splitting: true,
  format: ["esm"],
  dts: true,
  clean: true,
  target: "es2022",
  platform: "neutral",
  sourcemap: true,
});
