// PowerInfer's GGUF files (SJTU-IPADS/PowerInfer): magic "PWRI", `ffn_down_t`, and trained predictors
// `blk.N.fc1`/`blk.N.fc2` with `powerinfer.sparse_threshold`. A small file in that layout is written here
// (architectures `llama`, which PowerInfer's sparse graph runs with ReLU, and `bamboo`, dReLU), converted,
// and run sparse on its imported predictors, against an independent float64 evaluation of PowerInfer's
// form: `idx = fc2·relu(fc1·ffn_inp)` on the residual stream entering the FFN block, a neuron computed
// iff `idx >= threshold` (ggml.c skips `idx < threshold`).
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFlashModel } from "@flashllm/sdk";
import { GgmlType, f32Below, type FlashModel, type LanguageModel, type ShardedFlashModel } from "@flashllm/sdk/internal";
import { NodeFileSource, convertFile } from "@flashllm/node-io";
import { ROOT } from "./helpers.js";
import { D, F, L, P, V, compareSelections, makePredictor, makeWeights, powerInferGguf, reference, type Family, type PowerInferPredictor } from "./sparse-family-helpers.js";

const CLI = join(ROOT, "packages/node-io/dist/cli.js");
const dir = mkdtempSync(join(tmpdir(), "flashllm-powerinfer-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const RANK = 16;
const TOKENS = [1, 5, 9, 3, 17, 4, 12, 20, 7, 7, 2, 14];

/** PowerInfer's predictor in float64 on residual `x`: the scores `fc2·relu(fc1·x)`. */
function scores(pred: PowerInferPredictor, layer: number, x: number[]): number[] {
  const z = Array.from({ length: pred.rank }, (_, r) => Math.max(0, x.reduce((s, v, j) => s + pred.fc1[layer][r * D + j] * v, 0)));
  return Array.from({ length: F }, (_, i) => z.reduce((s, v, r) => s + pred.fc2[layer][i * pred.rank + r] * v, 0));
}

async function forced(model: LanguageModel, tokens: number[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let pos = 0; pos < tokens.length; pos++) out.push((await model.transformer.forward(tokens[pos], pos)).slice());
  return out;
}

describe.each([
  { arch: "llama" as const, family: "relu" as Family, threshold: 0.05 as number | undefined, seed: 21 },
  { arch: "bamboo" as const, family: "drelu" as Family, threshold: undefined as number | undefined, seed: 22 },
])("PowerInfer GGUF, architecture $arch, threshold $threshold", ({ arch, family, threshold, seed }) => {
  it("converts with its predictors imported, and runs sparse on them as PowerInfer's form says", async () => {
    const w = makeWeights(seed);
    const pred = makePredictor(seed + 100, RANK);
    const gguf = join(dir, `${arch}.powerinfer.gguf`);
    writeFileSync(gguf, await powerInferGguf(w, arch, pred, threshold, GgmlType.F16));
    const t = threshold ?? 0; // PowerInfer's default when the key is absent

    const inspect = spawnSync(process.execPath, [CLI, "inspect", gguf], { encoding: "utf8" });
    expect(inspect.status, inspect.stderr).toBe(0);
    expect(inspect.stdout).toMatch(new RegExp(`predictors: PowerInfer fc1/fc2 in ${L} layers \\(rank ${RANK}, threshold ${t}.*imported by convert`));
    expect(inspect.stdout).toContain(`activation: ${family}`);

    const flm = join(dir, `${arch}.flm`);
    await convertFile(gguf, undefined, flm);
    const shown = spawnSync(process.execPath, [CLI, "inspect", flm], { encoding: "utf8" });
    expect(shown.stdout).toContain(`predictors: low-rank, rank ${RANK}, reading the residual stream before the FFN norm (imported from PowerInfer)`);
    const source = await NodeFileSource.open(flm);
    const recorded: { layer: number; ids: number[] }[] = [];
    // no selector named: the file's predictors are used
    const model = await openFlashModel(source, { contextLength: P, onActivations: (layer, _x, ids) => recorded.push({ layer, ids: Array.from(ids) }) });
    const m = model.file.manifest;
    expect(m.config.activation).toBe(family);
    expect(m.predictor).toMatchObject({ kind: "lowrank", input: "residual", layers: Array.from({ length: L }, () => ({ rank: RANK, threshold: f32Below(t) })) });
    expect(m.predictor!.calibration).toMatchObject({ sparseThreshold: Math.fround(t) });
    expect(model.predictor?.input).toBe("residual");

    // float64: the model with each layer's FFN restricted to the neurons PowerInfer's predictor names
    const margins: number[][][] = [];
    const predicted: boolean[][][] = [];
    const keep = (layer: number, x: number[]) => {
      const s = scores(pred, layer, x);
      if (layer === 0) { margins.push([]); predicted.push([]); }
      margins[margins.length - 1].push(s.map((v) => Math.abs(v - Math.fround(t))));
      const k = s.map((v) => v >= Math.fround(t));
      predicted[predicted.length - 1].push(k);
      return k;
    };
    const ref = reference(w, family, TOKENS, keep);
    const got = await forced(model, TOKENS);
    let err = 0;
    for (let p = 0; p < TOKENS.length; p++) for (let v = 0; v < V; v++) err = Math.max(err, Math.abs(got[p][v] - ref.logits[p][v]));

    expect(recorded.length).toBe(TOKENS.length * L);
    expect(recorded.map((r) => r.layer)).toEqual(recorded.map((_, k) => k % L)); // position-major records
    const { chosen, flips: parted } = compareSelections(recorded.map((r) => r.ids), predicted, margins);
    for (const f of parted) expect(f.margin, `position ${f.pos} layer ${f.layer} neuron ${f.neuron}`).toBeLessThan(1e-5);
    const flips = parted.length;
    const share = chosen / (TOKENS.length * L * F);
    console.log(`${arch}: predictor kept ${(100 * share).toFixed(1)}% of neurons (${flips} decisions at f32 rounding distance); max |logit - float64| ${err.toExponential(2)}`);
    expect(flips).toBe(0);
    expect(err).toBeLessThan(2e-5);
    expect(share).toBeGreaterThan(0.1);
    expect(share).toBeLessThan(0.9);
    await model.dispose();
    await source.close();
  });
});

describe("PowerInfer predictors: refusals and the threshold", () => {
  it("s > f32Below(t) exactly when s >= t, for f32 scores around t", () => {
    // thresholds as GGUF stores them: f32 values
    for (const t of [0, 0.05, -0.3, 1e-30, 7].map(Math.fround)) {
      const f = Math.fround(t);
      const below = f32Below(t);
      expect(below).toBeLessThan(f);
      expect(Math.fround(below)).toBe(below); // an f32
      // no f32 lies strictly between: the next f32 up from `below` is t's f32 itself
      const bits = new Uint32Array(new Float32Array([below]).buffer);
      bits[0] += below > 0 || Object.is(below, 0) ? 1 : -1;
      expect(new Float32Array(bits.buffer)[0] === f).toBe(true); // (-0 === 0 for t = 0)
    }
  });

  it("a file with one layer's fc2 missing is refused at conversion, naming the layer", async () => {
    const gguf = join(dir, "incomplete.gguf");
    writeFileSync(gguf, await powerInferGguf(makeWeights(32), "llama", makePredictor(132, 8), 0, GgmlType.F32, "blk.1.fc2.weight"));
    const e = await convertFile(gguf, undefined, join(dir, "incomplete.flm")).catch((x: unknown) => x as { code?: string; message: string });
    expect(e).toMatchObject({ code: "BAD_HEADER" });
    expect((e as Error).message).toContain("predictor of layer 1 is incomplete (blk.1.fc1.weight present, blk.1.fc2.weight missing)");
  });
});

describe("PowerInfer predictors on shards (the residual stream broadcast with each FFN step)", () => {
  const PROMPT = [1, 5, 9, 3]; // BOS, then three letters
  const STEPS = P - PROMPT.length;

  /** Greedy tokens after `PROMPT` up to the context, and per position and layer the ids the FFN computed (single instance). */
  async function greedyIds(model: LanguageModel): Promise<number[]> {
    const tokens = [...PROMPT];
    for (let pos = 0; pos < P - 1; pos++) {
      const logits = await model.transformer.forward(tokens[pos], pos);
      if (pos + 1 < tokens.length) continue;
      let best = 0;
      for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
      tokens.push(best);
    }
    return tokens;
  }

  it.each([
    { arch: "llama" as const, threshold: 0.05 as number | undefined, seed: 41 },
    { arch: "bamboo" as const, threshold: undefined as number | undefined, seed: 42 },
  ])("$arch: workers 2 (both transports) give the single instance's greedy tokens and each shard its range of the same selections", async ({ arch, threshold, seed }) => {
    const { openModelFile } = await import("@flashllm/node-io");
    const gguf = join(dir, `shards-${arch}.gguf`);
    writeFileSync(gguf, await powerInferGguf(makeWeights(seed), arch, makePredictor(seed + 100, RANK), threshold, GgmlType.F16));
    const flm = join(dir, `shards-${arch}.flm`);
    await convertFile(gguf, undefined, flm);

    // One instance, recording per position and layer which neurons its predictor selected.
    const selected: Int32Array[] = [];
    const one = await openModelFile(flm, { contextLength: P, onActivations: (_layer, _x, ids) => selected.push(Int32Array.from(ids)) });
    const want = await greedyIds(one);
    const oneStats = (one as FlashModel).flash.stats;
    expect(oneStats.activeNeurons).toBeLessThan(0.9 * oneStats.layerRuns * F); // the predictor skips neurons
    expect(oneStats.activeNeurons).toBeGreaterThan(0.1 * oneStats.layerRuns * F);
    await one.dispose();
    expect(selected.length).toBe((P - 1) * L);

    for (const transport of ["shared", "message"] as const) {
      const two = (await openModelFile(flm, { workers: 2, transport, contextLength: P })) as ShardedFlashModel;
      expect(two.group.transport).toBe(transport);
      expect(await greedyIds(two), `${arch} ${transport}`).toEqual(want);
      // Each shard selected exactly the single instance's neurons within its range (had it read the
      // FFN input instead of the residual stream, its predictor rows would pick other neurons).
      const figures = await two.shardFigures();
      for (const [s, slice] of two.slices.entries()) {
        const inRange = selected.reduce((n, ids) => n + ids.filter((i) => i >= slice.neurons.first && i < slice.neurons.first + slice.neurons.count).length, 0);
        expect(figures[s].stats.activeNeurons, `${arch} ${transport} shard ${s}`).toBe(inRange);
      }
      expect(figures[0].stats.activeNeurons + figures[1].stats.activeNeurons).toBe(oneStats.activeNeurons);
      await two.dispose();
    }

    // The CLI: the same text and the same share of neurons used with --workers 2 as with one instance.
    const run = (workers: number) =>
      spawnSync(process.execPath, [CLI, "run", "--model", flm, "--prompt", "bcd", "--max-tokens", String(STEPS), "--temperature", "0", "--workers", String(workers)], { encoding: "utf8" });
    const r1 = run(1);
    const r2 = run(2);
    expect(r1.status, r1.stderr).toBe(0);
    expect(r2.status, r2.stderr).toBe(0);
    expect(r2.stderr).toContain("on 2 workers");
    expect(r2.stdout).toBe(r1.stdout);
    const used = (err: string) => /neurons used ([\d.]+)%/.exec(err)?.[1];
    expect(used(r1.stderr)).toBeDefined();
    expect(used(r2.stderr)).toBe(used(r1.stderr));
  });
});
