// Seeded fuzzing of every reader of untrusted bytes, bounded in time and in count so it runs in CI:
// `.flm` headers, manifests, section tables and section contents (opened and run through the flash
// engine), llama2.c checkpoints (converted and run, flash and dense), llama2.c tokenizers, and
// safetensors headers (when packages/sdk/src/hf has `openSafetensors`), stored tokenizer.json files and GGUF files. tokenizer.json is not fuzzed:
// there is no reader for it yet.
//
// Every case must end in success or a typed FlashError. A crash (other exception, WASM trap), a hang,
// a leak, an out-of-bounds write (guard bytes after every WASM block), a double free, a heap peak above
// the budget or a neuron cache that disagrees with the file fails the test and prints the case's recipe
// for corpus/.
//
// Knobs: FLASHLLM_FUZZ_SEED (default 1), FLASHLLM_FUZZ_SECONDS (total, default 24),
// FLASHLLM_FUZZ_CASES_SCALE (multiplies the per-target case caps, default 1).
import { afterAll, describe, expect, it } from "vitest";
import { FUZZ_CASES_SCALE, FUZZ_SECONDS, FUZZ_SEED, HeapWatch, Rng, Tally, flmSeed, flmSeedNames, ggufSeeds, hfTokenizerSeed, llama2cSeeds, safetensorsSeeds } from "./harness.js";
import { flmOps, ggufOps, hfTokenizerOps, llama2cOps, safetensorsOps, tokenizerOps, type Case, type Target } from "./mutate.js";
import { describeFailure, failed, openSafetensors, runCase } from "./runner.js";

interface Plan {
  target: Target;
  /** Share of FUZZ_SECONDS. */
  share: number;
  /** Case cap at scale 1. */
  cap: number;
}

const PLANS: Plan[] = [
  { target: "flm", share: 0.5, cap: 2500 },
  { target: "llama2c", share: 0.2, cap: 600 },
  { target: "tokenizer", share: 0.1, cap: 5000 },
  { target: "safetensors", share: 0.15, cap: 3000 },
  { target: "hftokenizer", share: 0.05, cap: 1500 },
  { target: "gguf", share: 0.1, cap: 1500 },
];

/**
 * Failures in code this suite does not own, reported to its owners. A matching case is counted as
 * `known:<id>` instead of failing the run; corpus/ pins each one with an `it.fails` case, which starts
 * failing once the bug is fixed: then delete the entry here and the `knownIssue` in the corpus file.
 */
const KNOWN_ISSUES: { id: string; target: Target; match: RegExp }[] = [];

const VERBOSE = process.env.FLASHLLM_FUZZ_VERBOSE === "1";
const summary: string[] = [];
afterAll(() => {
  console.log(`fuzz (seed ${FUZZ_SEED}, ${FUZZ_SECONDS} s):\n${summary.join("\n")}`);
});

async function fuzz(plan: Plan, seeds: string[], makeCase: (r: Rng, seed: string) => Promise<Case>): Promise<void> {
  const r = new Rng(FUZZ_SEED * 7919 + PLANS.indexOf(plan));
  const watch = await HeapWatch.create();
  const tally = new Tally();
  const failures: string[] = [];
  const deadline = performance.now() + plan.share * FUZZ_SECONDS * 1000;
  const cap = Math.max(1, Math.round(plan.cap * FUZZ_CASES_SCALE));
  let slowest = 0;
  while (tally.cases < cap && performance.now() < deadline) {
    const c = await makeCase(r, r.pick(seeds));
    const res = await runCase(c, watch);
    slowest = Math.max(slowest, res.ms);
    const message = res.error instanceof Error ? `${res.error.name}: ${res.error.message}` : "";
    const known = failed(res) && res.problems.length === 0 ? KNOWN_ISSUES.find((k) => k.target === c.target && k.match.test(message)) : undefined;
    tally.add(known ? `known:${known.id}` : failed(res) ? `FAILED(${res.outcome})` : res.outcome, message.slice(0, 200));
    if (failed(res) && !known) failures.push(describeFailure(c, res));
  }
  summary.push(`  ${plan.target}: ${tally.cases} cases over ${seeds.length} seeds: ${tally} (slowest ${slowest.toFixed(0)} ms; WASM memory ${(watch.kernels.memoryBytes / 2 ** 20).toFixed(1)} MiB at the end)`);
  if (VERBOSE) for (const [k, v] of tally.examples) summary.push(`    ${k}: ${v}`);
  if (failures.length > 0) console.log(`${plan.target} failures:\n${failures.slice(0, 20).join("\n")}`);
  expect(failures, failures.slice(0, 5).join("\n")).toEqual([]);
  expect(tally.cases).toBeGreaterThan(0);
}

describe("fuzz", () => {
  it(".flm files: header, manifest, section table, section contents", async () => {
    const names = flmSeedNames();
    const seeds = await Promise.all(names.map((n) => flmSeed(n)));
    await fuzz(PLANS[0], names, async (r, seed) => {
      const bytes = seeds[names.indexOf(seed)].bytes;
      return {
        target: "flm",
        seed,
        ops: [...flmOps(r, bytes), ...(r.chance(0.2) ? flmOps(r, bytes) : [])],
        run: {
          strategy: r.pick(["windowed", "windowed", "bundled", "naive"] as const),
          verifyReads: r.chance(0.5),
          contextLength: r.pick([undefined, 8, 64]),
          temperature: r.pick([0, 0, 0.9]),
          tokens: 4,
        },
      };
    });
  }, 300_000);

  it("llama2.c checkpoints: converted and run (flash under a budget, dense)", async () => {
    const seeds = llama2cSeeds();
    await fuzz(PLANS[1], seeds.map((s) => s.name), async (r, seed) => ({
      target: "llama2c",
      seed,
      ops: llama2cOps(r, seeds.find((s) => s.name === seed)!.bin),
      run: { temperature: r.pick([0, 0.9]), tokens: 3 },
    }));
  }, 300_000);

  it("llama2.c tokenizers: parse, encode, decode", async () => {
    const seeds = llama2cSeeds();
    await fuzz(PLANS[2], seeds.map((s) => s.name), async (r, seed) => ({
      target: "tokenizer",
      seed,
      ops: [...tokenizerOps(r, seeds.find((s) => s.name === seed)!.tok), ...(r.chance(0.3) ? tokenizerOps(r, seeds.find((s) => s.name === seed)!.tok) : [])],
    }));
  }, 300_000);

  const st = safetensorsSeeds();
  it.skipIf(!openSafetensors || st.length === 0)("safetensors headers: open and read every tensor", async () => {
    await fuzz(PLANS[3], st.map((s) => s.name), async (r, seed) => ({
      target: "safetensors",
      seed,
      ops: safetensorsOps(r, st.find((s) => s.name === seed)!.bytes),
    }));
  }, 300_000);
  if (!openSafetensors || st.length === 0) console.log("safetensors fuzzing skipped: no openSafetensors export");

  it("Hugging Face tokenizer.json (as stored in a .flm): parse, encode, decode in context", async () => {
    const seed = hfTokenizerSeed();
    await fuzz(PLANS[4], ["tiny-bpe"], async (r) => ({ target: "hftokenizer", seed: "tiny-bpe", ops: hfTokenizerOps(r, seed) }));
  }, 300_000);

  it("GGUF files: header, metadata, tensor infos; dequantize every tensor, convert and run", async () => {
    const seeds = await ggufSeeds();
    await fuzz(PLANS[5], seeds.map((s) => s.name), async (r, seed) => {
      const s = seeds.find((x) => x.name === seed)!;
      return { target: "gguf", seed, ops: [...ggufOps(r, s.bytes, s.headerBytes), ...(r.chance(0.2) ? ggufOps(r, s.bytes, s.headerBytes) : [])], run: { temperature: r.pick([0, 0.9]), tokens: 3 } };
    });
  }, 300_000);
});
