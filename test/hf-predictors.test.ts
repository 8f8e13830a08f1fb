// Predictors shipped inside a Hugging Face checkpoint: TurboSparse-Mistral (BambooForCausalLM, dReLU)
// stores each layer's `model.layers.N.mlp.predictor.fc1.weight [rank][dim]` and `fc2.weight [hidden][rank]`
// among its weights; PowerInfer's converter (SJTU-IPADS/PowerInfer commit 5b02459, tensor_mapping.py)
// maps them to its GGUF `blk.N.fc1/fc2`, which its sparse graph evaluates as `fc2·relu(fc1·ffn_inp)` on
// the residual stream entering the FFN block, keeping a neuron iff the score is ≥ the threshold (0
// when none is given). A small checkpoint in that layout, written here with BF16 predictors as the
// release stores its weights, is converted and run sparse on them, against a float64 evaluation of
// that form (docs/sparsity.md).
import { afterAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { f32Below, type FlashModel, type LanguageModel, type ShardedFlashModel } from "@flashllm/sdk/internal";
import { convertFile, openModelFile } from "@flashllm/node-io";
import { u16Bytes, type RawTensor } from "../packages/sdk/test/hf/helpers.js";
import { D, F, L, P, V, compareSelections, makeWeights, reference, writeCheckpoint } from "./sparse-family-helpers.js";
import { rng } from "./helpers.js";

const RANK = 12;
const TOKENS = [1, 5, 9, 3, 17, 4, 12, 20, 7, 7, 2, 14];
const root = mkdtempSync(join(tmpdir(), "flashllm-hf-predictors-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Pred { fc1: Float64Array[]; fc2: Float64Array[] }

/** Random predictors whose values are exact in BF16 (multiples of 2^-8 within ±0.3: at most 7 significant bits). */
function makePred(seed: number): Pred {
  const r = rng(seed);
  const rand = (n: number) => Float64Array.from({ length: n }, () => Math.round((r() * 2 - 1) * 0.3 * 256) / 256);
  return { fc1: Array.from({ length: L }, () => rand(RANK * D)), fc2: Array.from({ length: L }, () => rand(F * RANK)) };
}

/** BF16 bits of a value exact in BF16: the high half of its f32. */
function bf16(values: Float64Array): Uint8Array {
  const f = Float32Array.from(values);
  const u = new Uint32Array(f.buffer);
  return u16Bytes(Array.from(u, (b) => b >>> 16));
}

function predictorTensors(pred: Pred, opts: { omit?: string; fc2Rows?: number } = {}): RawTensor[] {
  const out: RawTensor[] = [];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.mlp.predictor.`;
    out.push({ name: `${p}fc1.weight`, dtype: "BF16", shape: [RANK, D], data: bf16(pred.fc1[l]) });
    const rows = l === 1 && opts.fc2Rows !== undefined ? opts.fc2Rows : F;
    out.push({ name: `${p}fc2.weight`, dtype: "BF16", shape: [rows, RANK], data: bf16(pred.fc2[l].subarray(0, rows * RANK)) });
  }
  return out.filter((t) => t.name !== opts.omit);
}

/** The float64 scores `fc2·relu(fc1·x)` of layer `layer` on residual `x`. */
function scores(pred: Pred, layer: number, x: number[]): number[] {
  const z = Array.from({ length: RANK }, (_, r) => Math.max(0, x.reduce((s, v, j) => s + pred.fc1[layer][r * D + j] * v, 0)));
  return Array.from({ length: F }, (_, i) => z.reduce((s, v, r) => s + pred.fc2[layer][i * RANK + r] * v, 0));
}

async function convertedWith(name: string, seed: number, extra: RawTensor[]): Promise<string> {
  const dir = join(root, name);
  mkdirSync(dir);
  writeCheckpoint(dir, makeWeights(seed), "drelu", extra);
  const flm = join(dir, "model.flm");
  await convertFile(dir, join(dir, "vocab.json"), flm);
  return flm;
}

describe("TurboSparse-Mistral's own predictors (model.layers.N.mlp.predictor.fc1/fc2)", () => {
  it("are imported on the residual stream, threshold 0 as PowerInfer keeps them, and select what the float64 form selects", async () => {
    const seed = 51;
    const w = makeWeights(seed);
    const pred = makePred(seed + 100);
    const flm = await convertedWith("turbosparse", seed, predictorTensors(pred));

    const recorded: number[][] = [];
    const model = await openModelFile(flm, { contextLength: P, onActivations: (_layer, _x, ids) => recorded.push(Array.from(ids)) });
    const m = (model as FlashModel).file.manifest;
    expect(m.config.activation).toBe("drelu");
    expect(m.predictor).toMatchObject({
      kind: "lowrank",
      input: "residual",
      layers: Array.from({ length: L }, () => ({ rank: RANK, threshold: f32Below(0) })),
      calibration: { importedFrom: "BambooForCausalLM checkpoint (model.layers.N.mlp.predictor.fc1/fc2)", sparseThreshold: 0 },
    });

    const margins: number[][][] = [];
    const kept: boolean[][][] = [];
    const keep = (layer: number, x: number[]) => {
      const s = scores(pred, layer, x);
      if (layer === 0) { margins.push([]); kept.push([]); }
      margins[margins.length - 1].push(s.map(Math.abs));
      const k = s.map((v) => v >= 0);
      kept[kept.length - 1].push(k);
      return k;
    };
    const ref = reference(w, "drelu", TOKENS, keep);
    let err = 0;
    for (let pos = 0; pos < TOKENS.length; pos++) {
      const logits = await model.transformer.forward(TOKENS[pos], pos);
      for (let v = 0; v < V; v++) err = Math.max(err, Math.abs(logits[v] - ref.logits[pos][v]));
    }
    expect(recorded.length).toBe(TOKENS.length * L);
    const { chosen, flips: parted } = compareSelections(recorded, kept, margins);
    for (const f of parted) expect(f.margin, `position ${f.pos} layer ${f.layer} neuron ${f.neuron}`).toBeLessThan(1e-5);
    const flips = parted.length;
    const share = chosen / (TOKENS.length * L * F);
    console.log(`TurboSparse layout: predictor kept ${(100 * share).toFixed(1)}% of neurons (${flips} decisions at f32 rounding distance); max |logit - float64| ${err.toExponential(2)}`);
    expect(flips).toBe(0);
    expect(err).toBeLessThan(2e-5);
    expect(share).toBeGreaterThan(0.1);
    expect(share).toBeLessThan(0.9);
    await model.dispose();

    // and on 2 shards (the residual stream travels with each FFN step): the same greedy tokens
    const greedy = async (mm: LanguageModel) => {
      const t = [1, 5, 9];
      for (let pos = 0; pos < 20; pos++) {
        const l = await mm.transformer.forward(t[pos], pos);
        if (pos >= 2) t.push(l.indexOf(Math.max(...l)));
      }
      return t;
    };
    const one = await openModelFile(flm, { contextLength: P });
    const two = (await openModelFile(flm, { workers: 2, contextLength: P })) as ShardedFlashModel;
    expect(await greedy(two)).toEqual(await greedy(one));
    await two.dispose();
    await one.dispose();
  });

  it("a layer without its fc2 is refused, naming the layer and the tensor", async () => {
    const e = await convertedWith("incomplete", 52, predictorTensors(makePred(152), { omit: "model.layers.1.mlp.predictor.fc2.weight" })).catch((x: unknown) => x as { code?: string; message: string });
    expect(e).toMatchObject({ code: "BAD_MANIFEST" });
    expect((e as Error).message).toContain("the predictor of layer 1 is incomplete (model.layers.1.mlp.predictor.fc1.weight present, model.layers.1.mlp.predictor.fc2.weight missing)");
  });

  it("an fc2 whose rows are not the FFN width is refused with both shapes", async () => {
    const e = await convertedWith("wrong-shape", 53, predictorTensors(makePred(153), { fc2Rows: F - 4 })).catch((x: unknown) => x as { code?: string; message: string });
    expect(e).toMatchObject({ code: "WRONG_DIMS" });
    expect((e as Error).message).toContain(`tensor "model.layers.1.mlp.predictor.fc2.weight" (flashllm "predictor.1.b") has shape [${F - 4},${RANK}], the config implies [${F},${RANK}]`);
  });
});
