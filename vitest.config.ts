import { defineConfig } from "vitest/config";
import { fileURLToPath } from "node:url";

// Tests run against the TypeScript sources, not the built bundles, so a failing test points at a line
// of source. The packages' dist/ builds are exercised by the CLI tests.
export default defineConfig({
  resolve: {
    // Exact matches: "@flashllm/sdk" must not also rewrite "@flashllm/sdk/internal".
    alias: [
      { find: /^@flashllm\/sdk$/, replacement: fileURLToPath(new URL("./packages/sdk/src/index.ts", import.meta.url)) },
      { find: /^@flashllm\/sdk\/testing$/, replacement: fileURLToPath(new URL("./packages/sdk/src/testing/index.ts", import.meta.url)) },
      { find: /^@flashllm\/sdk\/internal$/, replacement: fileURLToPath(new URL("./packages/sdk/src/internal.ts", import.meta.url)) },
      { find: /^@flashllm\/node-io$/, replacement: fileURLToPath(new URL("./packages/node-io/src/index.ts", import.meta.url)) },
    ],
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    pool: "forks",
  },
});
