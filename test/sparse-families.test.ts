// The sparse model families: ProSparse (SparseLlamaForCausalLM, hidden_act "fatrelu" with its threshold)
// and Bamboo / TurboSparse-Mistral (BambooForCausalLM: dReLU, ReLU on gate and up). A small random
// checkpoint of each, written here as the releases ship them, converted and run dense, sparse (the
// flash engine with the exact selector at a budget under the FFN's size) and on 2 shards, against an
// independent float64 forward pass (test/sparse-family-helpers.ts).
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFlashModel } from "@flashllm/sdk";
import { GateExactSelector, type LanguageModel, type NeuronSelector, type ShardedFlashModel } from "@flashllm/sdk/internal";
import { NodeFileSource, convertFile, openModelFile } from "@flashllm/node-io";
import { F, FATRELU_T, L, P, V, makeWeights, reference, referenceGreedy, writeCheckpoint, type Family } from "./sparse-family-helpers.js";

/** Logits of the engine and of float64 differ by f32 rounding only: this model's logits are O(1). */
const LOGIT_TOL = 2e-5;
const PROMPT = [3, 7, 1, 12, 5];
const GREEDY = 16;

async function converted(family: Family, seed: number): Promise<{ path: string; w: ReturnType<typeof makeWeights> }> {
  const dir = mkdtempSync(join(tmpdir(), `flashllm-${family}-`));
  const w = makeWeights(seed);
  writeCheckpoint(dir, w, family);
  const path = join(dir, `${family}.flm`);
  await convertFile(dir, join(dir, "vocab.json"), path);
  return { path, w };
}

async function forced(model: LanguageModel, tokens: number[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let pos = 0; pos < tokens.length; pos++) out.push((await model.transformer.forward(tokens[pos], pos)).slice());
  return out;
}

function maxDiff(a: Float32Array[], b: number[][]): number {
  let m = 0;
  for (let p = 0; p < a.length; p++) for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(a[p][v] - b[p][v]));
  return m;
}

async function greedy(model: LanguageModel, n: number): Promise<number[]> {
  const tokens = [...PROMPT];
  for (let pos = 0; pos < PROMPT.length + n - 1; pos++) {
    const l = await model.transformer.forward(tokens[pos], pos);
    if (pos >= PROMPT.length - 1) tokens.push(l.indexOf(Math.max(...l)));
  }
  return tokens;
}

/** Wraps a selector and keeps what it chose, per call. */
class Recording implements NeuronSelector {
  readonly name = "recording";
  readonly calls: { layer: number; ids: number[] }[] = [];
  constructor(private readonly inner: NeuronSelector) {}
  select(layer: number, x: Float32Array, out: Int32Array): number {
    const n = this.inner.select(layer, x, out);
    this.calls.push({ layer, ids: Array.from(out.subarray(0, n)) });
    return n;
  }
}

describe.each([
  { family: "fatrelu" as const, seed: 11, arch: "SparseLlamaForCausalLM" },
  { family: "drelu" as const, seed: 12, arch: "BambooForCausalLM" },
])("$arch ($family)", ({ family, seed }) => {
  it("converts with the family's activation; dense logits and greedy tokens match the float64 forward pass", async () => {
    const { path, w } = await converted(family, seed);
    const source = await NodeFileSource.open(path);
    const model = await openFlashModel(source, { contextLength: P, selector: "all" });
    const c = model.file.manifest.config;
    expect(c.activation).toBe(family);
    if (family === "fatrelu") expect(c.activationThreshold).toBe(FATRELU_T);
    else expect(c.activationThreshold).toBeUndefined();
    const want = referenceGreedy(w, family, PROMPT, GREEDY);
    const ref = reference(w, family, want);
    const err = maxDiff(await forced(model, want), ref.logits);
    console.log(`${family}: dense max |logit - float64| = ${err.toExponential(2)}`);
    expect(err).toBeLessThan(LOGIT_TOL);
    await model.dispose();
    const again = await openFlashModel(source, { contextLength: P, selector: "all" });
    expect(await greedy(again, GREEDY)).toEqual(want);
    await again.dispose();
    await source.close();
  });

  it("sparse with the exact selector at a budget under the FFN: the family's rule picks the float64 model's active neurons; logits equal the dense ones bit for bit", async () => {
    const { path, w } = await converted(family, seed);
    const source = await NodeFileSource.open(path);
    const dense = await openFlashModel(source, { contextLength: P, selector: "all" });
    const all = dense.memoryPlan;
    // room for well under all neurons (a staging buffer takes its share too): the windowed cache evicts and reads again
    const budget = all.residentBytes + all.stateBytes + all.ffnScratchBytes + Math.floor(0.7 * all.cacheBytes);
    const exact = new Recording(await GateExactSelector.fromFile(dense.kernels, dense.file));
    const sparse = await openFlashModel(source, { contextLength: P, selector: exact, memoryBudget: budget });
    expect(sparse.memoryPlan.capacity).toBeLessThan(0.8 * L * F);
    const tokens = referenceGreedy(w, family, PROMPT, GREEDY);
    const ref = reference(w, family, tokens);
    const a = await forced(dense, tokens);
    const b = await forced(sparse, tokens);
    for (let p = 0; p < tokens.length; p++) expect(Array.from(b[p]), `position ${p}`).toEqual(Array.from(a[p]));
    expect(maxDiff(b, ref.logits)).toBeLessThan(LOGIT_TOL);

    // The selector's sets against the float64 model's active neurons (h ≠ 0); a disagreement is allowed
    // only where f32 rounding can flip the decision (the deciding value within 1e-5 of its threshold).
    expect(exact.calls.length).toBe(tokens.length * L);
    let active = 0, disagree = 0;
    exact.calls.forEach(({ layer, ids }, k) => {
      const pos = Math.floor(k / L);
      const chosen = new Set(ids);
      for (let i = 0; i < F; i++) {
        if (chosen.has(i) !== ref.active[pos][layer][i]) {
          disagree++;
          expect(ref.margin[pos][layer][i], `position ${pos} layer ${layer} neuron ${i}`).toBeLessThan(1e-5);
        }
      }
      active += ids.length;
    });
    const share = active / (tokens.length * L * F);
    console.log(`${family}: exact selection kept ${(100 * share).toFixed(1)}% of neurons (${disagree} decisions at f32 rounding distance); cache ${sparse.memoryPlan.capacity} of ${L * F} neurons`);
    expect(share).toBeGreaterThan(0.05);
    expect(share).toBeLessThan(0.8);
    expect(sparse.flash.stats.bytesRead).toBeGreaterThan(0);
    await sparse.dispose();
    await dense.dispose();
    await source.close();
  });

  it("on 2 shards: the same greedy tokens as the float64 model, logits within its tolerance", async () => {
    const { path, w } = await converted(family, seed);
    const model = (await openModelFile(path, { workers: 2, contextLength: P })) as ShardedFlashModel;
    expect(model.memoryPlan.shards.length).toBe(2);
    const want = referenceGreedy(w, family, PROMPT, GREEDY);
    const ref = reference(w, family, want);
    expect(maxDiff(await forced(model, want), ref.logits)).toBeLessThan(LOGIT_TOL);
    await model.dispose();
    const again = (await openModelFile(path, { workers: 2, contextLength: P })) as ShardedFlashModel;
    expect(await greedy(again, GREEDY)).toEqual(want);
    await again.dispose();
  });
});

describe("sparse family config mapping", () => {
  it("refuses fatrelu without its threshold and Bamboo with another activation, naming the field", async () => {
    const { mapHfConfig } = await import("@flashllm/sdk/internal");
    const base = { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 24 };
    expect(() => mapHfConfig({ ...base, architectures: ["SparseLlamaForCausalLM"], hidden_act: "fatrelu" })).toThrow(/hidden_act_param/);
    expect(() => mapHfConfig({ ...base, architectures: ["BambooForCausalLM"], hidden_act: "silu" })).toThrow(/BambooForCausalLM/);
    const bamboo = mapHfConfig({ ...base, architectures: ["BambooForCausalLM"], hidden_act: "relu", max_position_embeddings: 32768, sliding_window: 4096 });
    expect(bamboo.config.activation).toBe("drelu");
    expect(bamboo.config.seqLen).toBe(4096);
    const prosparse = mapHfConfig({ ...base, architectures: ["SparseLlamaForCausalLM"], hidden_act: "fatrelu", hidden_act_param: 0.01 });
    expect(prosparse.config).toMatchObject({ activation: "fatrelu", activationThreshold: 0.01 });
  });

  it("calibration counts a neuron active iff its h is non-zero for every ReLU-family activation", async () => {
    const { ruleFor } = await import("../packages/node-io/src/commands/sparsity-common.js");
    const { markActive } = await import("@flashllm/sdk/internal");
    const base = { dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 24, seqLen: 32, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "neox" as const, gated: true, sharedClassifier: false, norm: "rmsnorm" as const };
    for (const activation of ["relu", "fatrelu", "drelu"] as const) {
      const rule = ruleFor({ ...base, activation, ...(activation === "fatrelu" ? { activationThreshold: 0.01 } : {}) }, 0.95);
      expect(rule).toEqual({ kind: "nonzero" });
      const active = new Uint8Array(4);
      markActive(rule, Int32Array.from([0, 1, 2, 3]), Float32Array.from([0, 1e-9, -0, -2]), active);
      expect(Array.from(active)).toEqual([0, 1, 0, 1]);
    }
    expect(ruleFor({ ...base, activation: "silu" }, 0.95)).toEqual({ kind: "norm-share", share: 0.95 });
  });

  it("the manifest refuses a fatrelu without threshold, a threshold on another activation, and ungated dReLU", async () => {
    const { validateConfig } = await import("@flashllm/sdk/internal");
    const c = { dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 24, seqLen: 32, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "neox", gated: true, sharedClassifier: false, norm: "rmsnorm" };
    expect(() => validateConfig({ ...c, activation: "fatrelu" })).toThrow(/activationThreshold/);
    expect(() => validateConfig({ ...c, activation: "relu", activationThreshold: 0.1 })).toThrow(/activationThreshold/);
    expect(() => validateConfig({ ...c, activation: "drelu", gated: false })).toThrow(/drelu/);
    expect(validateConfig({ ...c, activation: "fatrelu", activationThreshold: 0.01 }).activationThreshold).toBe(0.01);
  });
});

// keep the file's own bytes honest: the manifest says what the test wrote
it("a converted ProSparse file records fatrelu and its threshold in the manifest JSON", async () => {
  const { path } = await converted("fatrelu", 11);
  const text = new TextDecoder().decode(readFileSync(path).subarray(16, 4096));
  expect(text).toContain('"activation":"fatrelu"');
  expect(text).toContain('"activationThreshold":0.01');
});
