import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { MemorySource } from "../../src/source.js";
import { readLlama2cCheckpoint } from "../../src/model/llama2c.js";
import { hfTensors, mapHfConfig, openSafetensors } from "../../src/hf/index.js";
import type { HfTensors } from "../../src/hf/index.js";
import { expectSameValues } from "./helpers.js";

/** The machine-local model collection (/work/shared/models); absent on a user's clone, so these tests skip. */
const SHARED = fileURLToPath(new URL("../../../../../shared/models/", import.meta.url));
const skipNote = (dir: string) => (existsSync(SHARED + dir) ? "" : ` (SKIPPED: ${SHARED}${dir} not found)`);

const bytes = (path: string) => {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
};

async function openModel(dir: string): Promise<HfTensors> {
  const spec = mapHfConfig(JSON.parse(readFileSync(`${SHARED}${dir}/config.json`, "utf8")));
  return hfTensors(await openSafetensors(new MemorySource(bytes(`${SHARED}${dir}/model.safetensors`))), spec);
}

/**
 * transformers' convert_llama_weights_to_hf.py permutation of q/k rows, written out independently:
 * `W.view(n_heads, head_dim/2, 2, in).transpose(1, 2).reshape(out, in)`, i.e. row h·hd + 2j + i of the
 * llama2.c matrix becomes row h·hd + i·hd/2 + j.
 */
function hfPermute(w: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  const hd = rows / nHeads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < hd / 2; j++) {
      for (let i = 0; i < 2; i++) {
        const src = h * hd + 2 * j + i;
        const dst = h * hd + i * (hd / 2) + j;
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

for (const [dir, bin] of [["stories260K-relu", "stories260K_relu.bin"], ["babyllama-tok105-relu", "model5000_relu.bin"]] as const) {
  describe.skipIf(!existsSync(`${SHARED}${dir}/model.safetensors`))(`HF Llama checkpoint ${dir} vs its llama2.c twin${skipNote(dir)}`, () => {
    it("maps config.json to the llama2.c config, except neox RoPE", async () => {
      const ref = readLlama2cCheckpoint(bytes(`${SHARED}${dir}/${bin}`), { activation: "relu" });
      const t = await openModel(dir);
      expect(t.spec.family).toBe("llama");
      expect(t.config).toEqual({ ...ref.config, ropeStyle: "neox" });
    });

    it("holds the llama2.c tensors: wq/wk in HF's permuted row order, everything else byte-identical", async () => {
      const ref = readLlama2cCheckpoint(bytes(`${SHARED}${dir}/${bin}`), { activation: "relu" });
      const t = await openModel(dir);
      const c = ref.config;
      expect([...t.names()].sort()).toEqual([...ref.tensors.keys()].sort());
      for (const name of t.names()) {
        let expected = ref.tensors.get(name)!;
        const kind = name.split(".").pop();
        if (kind === "wq") expected = hfPermute(expected, c.nHeads, c.dim, c.dim);
        if (kind === "wk") expected = hfPermute(expected, c.nKvHeads, (c.dim * c.nKvHeads) / c.nHeads, c.dim);
        expectSameValues(await t.getTensor(name), expected, name);
      }
      // The permutation is not the identity here, so the wq/wk checks above mean something.
      const wq = await t.getTensor("layers.0.wq");
      expect(wq).not.toEqual(ref.tensors.get("layers.0.wq"));
      expect(t.sourceName("output")).toBe("model.embed_tokens.weight");
      expect(t.unused()).toEqual(["lm_head.weight"]); // tied: the stored copy is not used
    });
  });
}

const GPT = "shakespeare-relu-gpt";

describe.skipIf(!existsSync(`${SHARED}${GPT}/model.safetensors`))(`${GPT} (gpt-char-relu export)${skipNote(GPT)}`, () => {
  it("maps its config.json and finds every tensor with the shape the config implies", async () => {
    const t = await openModel(GPT);
    expect(t.spec).toMatchObject({ architecture: "gpt-char-relu", family: "gpt", flmArchitecture: "opt", positionOffset: 0 });
    expect(t.config).toEqual({
      dim: 128, hiddenDim: 512, nLayers: 2, nHeads: 8, nKvHeads: 8, vocabSize: 65, seqLen: 128, normEps: 1e-5, ropeTheta: 10000,
      ropeStyle: "none", activation: "relu", gated: false, sharedClassifier: false, norm: "layernorm", maxPositions: 128,
    });
    const layer = (l: number): [string, number[]][] => [
      [`layers.${l}.attn_norm`, [128]], [`layers.${l}.attn_norm_bias`, [128]],
      [`layers.${l}.wq`, [128, 128]], [`layers.${l}.wk`, [128, 128]], [`layers.${l}.wv`, [128, 128]],
      [`layers.${l}.wo`, [128, 128]], [`layers.${l}.bo`, [128]],
      [`layers.${l}.ffn_norm`, [128]], [`layers.${l}.ffn_norm_bias`, [128]],
      [`layers.${l}.w3`, [512, 128]], [`layers.${l}.b1`, [512]], [`layers.${l}.w2`, [128, 512]], [`layers.${l}.b2`, [128]],
    ];
    const expected: [string, number[]][] = [
      ["tok_embeddings", [65, 128]], ["pos_embeddings", [128, 128]], ...layer(0), ...layer(1),
      ["norm", [128]], ["norm_bias", [128]], ["output", [65, 128]], ["output_bias", [65]],
    ];
    expect(t.names()).toEqual(expected.map(([n]) => n));
    for (const [name, shape] of expected) {
      expect(t.shape(name), name).toEqual(shape);
      expect((await t.getTensor(name)).length).toBe(shape.reduce((a, b) => a * b, 1));
    }
    expect(t.unused()).toEqual([]);
    const vocab = JSON.parse(readFileSync(`${SHARED}${GPT}/vocab.json`, "utf8")).vocab;
    expect(vocab.length).toBe(t.config.vocabSize);
  });

  it("a float64 forward pass over the canonical tensors reproduces the reference logits (ROMEO:, 20 positions)", async () => {
    const t = await openModel(GPT);
    const c = t.config;
    const W = new Map<string, Float32Array>();
    for await (const [name, data] of t.entries()) W.set(name, data);
    const trace = JSON.parse(readFileSync(`${SHARED}${GPT}/reference/trace_first20.json`, "utf8"));
    const refLogits = new Float32Array(readFileSync(`${SHARED}${GPT}/reference/logits_first20.f32`).buffer.slice(0));
    const tokens: number[] = trace.steps.map((s: { token: number }) => s.token);
    const logits = gptForward(W, c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.vocabSize, c.normEps, tokens);
    let maxErr = 0;
    for (let i = 0; i < logits.length; i++) maxErr = Math.max(maxErr, Math.abs(logits[i] - refLogits[i]));
    expect(maxErr).toBeLessThan(1e-5); // measured 4.8e-7: f32 reference rounding
  });
});

/** Plain pre-LN GPT (the config.json's prose), float64, all positions; returns [tokens][vocab] logits. */
function gptForward(W: Map<string, Float32Array>, dim: number, hidden: number, nLayers: number, nHeads: number, vocab: number, eps: number, tokens: number[]): Float64Array {
  const w = (n: string) => W.get(n)!;
  const hd = dim / nHeads;
  const matvec = (m: Float32Array, x: Float64Array, rows: number, bias?: Float32Array) => {
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = bias ? bias[r] : 0;
      for (let k = 0; k < x.length; k++) s += m[r * x.length + k] * x[k];
      out[r] = s;
    }
    return out;
  };
  const layerNorm = (x: Float64Array, g: Float32Array, b: Float32Array) => {
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const vr = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
    return x.map((v, i) => ((v - mean) / Math.sqrt(vr + eps)) * g[i] + b[i]);
  };
  const keys: Float64Array[][] = Array.from({ length: nLayers }, () => []);
  const vals: Float64Array[][] = Array.from({ length: nLayers }, () => []);
  const out = new Float64Array(tokens.length * vocab);
  tokens.forEach((tok, p) => {
    const x = new Float64Array(dim).map((_, i) => w("tok_embeddings")[tok * dim + i] + w("pos_embeddings")[p * dim + i]);
    for (let l = 0; l < nLayers; l++) {
      const L = `layers.${l}.`;
      const h = layerNorm(x, w(L + "attn_norm"), w(L + "attn_norm_bias"));
      const q = matvec(w(L + "wq"), h, dim, W.get(L + "bq"));
      keys[l].push(matvec(w(L + "wk"), h, dim, W.get(L + "bk")));
      vals[l].push(matvec(w(L + "wv"), h, dim, W.get(L + "bv")));
      const att = new Float64Array(dim);
      for (let hh = 0; hh < nHeads; hh++) {
        const scores = keys[l].map((k) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[hh * hd + i] * k[hh * hd + i];
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, v) => a + v, 0);
        e.forEach((ev, j) => {
          for (let i = 0; i < hd; i++) att[hh * hd + i] += (ev / z) * vals[l][j][hh * hd + i];
        });
      }
      const o = matvec(w(L + "wo"), att, dim, w(L + "bo"));
      for (let i = 0; i < dim; i++) x[i] += o[i];
      const h2 = layerNorm(x, w(L + "ffn_norm"), w(L + "ffn_norm_bias"));
      const u = matvec(w(L + "w3"), h2, hidden, w(L + "b1")).map((v) => Math.max(0, v));
      const d = matvec(w(L + "w2"), u, dim, w(L + "b2"));
      for (let i = 0; i < dim; i++) x[i] += d[i];
    }
    out.set(matvec(w("output"), layerNorm(x, w("norm"), w("norm_bias")), vocab, W.get("output_bias")), p * vocab);
  });
  return out;
}
