// Regression corpus: every case in corpus/*.json once failed (or pins a documented behaviour). Each is
// replayed with the fuzzer's runner and checks: the expected outcome, and no crash, leak, guard break,
// double free, heap peak above budget or inconsistent cache. A `knownIssue` case (a bug in code this
// suite does not own, reported) runs as `it.fails`: when it starts passing, the bug is fixed and the
// `knownIssue` field (and the fuzzer's KNOWN_ISSUES entry) should go.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama2cTokenizer, MemorySource, openFlashModel } from "@flashllm/sdk/internal";
import { HeapWatch, flmSeed, flmSeedNames, llama2cSeeds, safetensorsSeeds } from "./harness.js";
import type { Case } from "./mutate.js";
import { failed, openSafetensors, runCase } from "./runner.js";

interface Entry {
  description: string;
  before: string;
  fixedBy: string;
  knownIssue?: string;
  case: Case;
  expect: string;
}

const dir = fileURLToPath(new URL("./corpus/", import.meta.url));
const entries = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => ({ file: f, entry: JSON.parse(readFileSync(dir + f, "utf8")) as Entry }));

function available(c: Case): boolean {
  if (c.target === "flm") return flmSeedNames().includes(c.seed);
  if (c.target === "safetensors") return openSafetensors !== undefined && safetensorsSeeds().some((s) => s.name === c.seed);
  if (c.target === "hftokenizer") return c.seed === "tiny-bpe";
  return llama2cSeeds().some((s) => s.name === c.seed);
}

let watch: HeapWatch;
beforeAll(async () => {
  watch = await HeapWatch.create();
});
afterAll(() => {
  console.log(`corpus: ${entries.length} cases (${entries.filter((e) => e.entry.knownIssue).length} known issues)`);
});

describe("regression corpus", () => {
  it("has cases", () => expect(entries.length).toBeGreaterThan(0));
  for (const { file, entry } of entries) {
    const run = !available(entry.case) ? it.skip : entry.knownIssue ? it.fails : it;
    run(`${file}: ${entry.expect}${entry.knownIssue ? " (known issue)" : ""}`, async () => {
      const r = await runCase(entry.case, watch);
      expect(r.problems, r.problems.join("; ")).toEqual([]);
      expect(failed(r), String(r.error)).toBe(false);
      expect(r.outcome, String(r.error)).toBe(entry.expect);
    });
  }
});

// Regressions that are not file mutations.
describe("unit regressions", () => {
  it("a tokenizer too short for the model's vocabulary fails before allocating for that vocabulary", () => {
    const tok = llama2cSeeds()[0].tok;
    const sizes: number[] = [];
    const Real = globalThis.Float32Array;
    globalThis.Float32Array = new Proxy(Real, {
      construct(target, args) {
        if (typeof args[0] === "number") sizes.push(args[0]);
        return Reflect.construct(target, args);
      },
    });
    let e: unknown;
    try {
      Llama2cTokenizer.parse(tok.subarray(0, 100), 1 << 22);
    } catch (x) {
      e = x;
    } finally {
      globalThis.Float32Array = Real;
    }
    expect((e as { code?: string }).code).toBe("TRUNCATED");
    expect(Math.max(0, ...sizes)).toBeLessThan(1 << 20); // was a 16 MiB Float32Array(2^22) first
  });

  it("disposing a flash model twice frees nothing twice", async () => {
    const { bytes } = await flmSeed("stories260K-f32");
    const model = await openFlashModel(new MemorySource(bytes), { kernels: watch.kernels, contextLength: 16 });
    await model.dispose();
    await model.dispose();
    expect(watch.end()).toEqual([]);
  });
});
