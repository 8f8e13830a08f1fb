// The built browser code imports no Node API: checked on the files browsers load, not on the sources.
import { beforeAll, describe, expect, it } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join } from "node:path";
import { SDK_DIST, WEB_IO, ensureWebIoBuilt } from "./build.js";

beforeAll(() => ensureWebIoBuilt(), 120_000);

/** Every module specifier a JS file imports, statically or dynamically, and every `require(` call. */
function specifiers(code: string): string[] {
  const out: string[] = [];
  for (const m of code.matchAll(/(?:^|[;\s}])(?:import|export)\s*(?:[\w*{}\s,$]+\s*from\s*)?["']([^"']+)["']/g)) out.push(m[1]);
  for (const m of code.matchAll(/\bimport\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g)) out.push(m[1]);
  for (const m of code.matchAll(/\brequire\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g)) out.push(`require:${m[1]}`);
  return out;
}

const node = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
// The SDK's entries (index, testing, internal) and the chunks they share: pure JS with one dependency.
const sdkDist = dirname(SDK_DIST);
const sdkFiles = readdirSync(sdkDist).filter((f) => f.endsWith(".js"));
const bundles: [string, string, string[]][] = [
  // Pure-JS, dependency-free libraries (no Node APIs): tokenizer.json, and Jinja for chat templates.
  ...sdkFiles.map((f): [string, string, string[]] => [`sdk dist/${f}`, join(sdkDist, f), ["@huggingface/jinja", "@huggingface/tokenizers"]]),
  ["web-io dist/index.js", join(WEB_IO, "dist/index.js"), ["@flashllm/sdk", "@flashllm/sdk/internal"]],
  ["web-io dist/worker.js", join(WEB_IO, "dist/worker.js"), []],
  ["web-io dist/shard-worker.js", join(WEB_IO, "dist/shard-worker.js"), []],
  ["web-io dist/demo.js", join(WEB_IO, "dist/demo.js"), []],
];

describe("built bundles have no Node imports", () => {
  it("the specifier scan finds what it should", () => {
    expect(specifiers(`import { a } from "node:fs";\nimport("os"); const x = require('path'); export * from "./y.js"`)).toEqual([
      "node:fs", "./y.js", "os", "require:path",
    ]);
  });

  for (const [name, path, allowed] of bundles) {
    it(`${name} imports only ${allowed.length ? allowed.join(", ") : "nothing"}`, () => {
      const code = readFileSync(path, "utf8");
      // Imports of the SDK's own shared chunks are part of the same checked set of files.
      const specs = specifiers(code).filter((s) => !/^\.\/chunk-[\w-]+\.js$/.test(s));
      expect(specs.filter((s) => node.has(s.replace(/^require:/, ""))), "Node built-ins").toEqual([]);
      expect(specs.filter((s) => s.startsWith("require:")), "require() calls").toEqual([]);
      expect([...new Set(specs)].sort().every((s) => allowed.includes(s)), `imports ${[...new Set(specs)]}`).toBe(true);
      expect(code).not.toMatch(/\bprocess\.(?:env|versions|platform|cwd)\b/);
    });
  }

  it("the published types need no @types/node", () => {
    const dts = readFileSync(join(WEB_IO, "dist/index.d.ts"), "utf8");
    expect(dts).not.toMatch(/reference types="node"|from ["']node:|NodeJS\./);
  });
});
