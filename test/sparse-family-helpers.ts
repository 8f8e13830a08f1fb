// Small random Llama-shaped checkpoints of the sparse families (ProSparse's fatrelu, Bamboo's dReLU) as
// their Hugging Face releases ship them (config.json + safetensors, HF's rotate_half q/k order), and the
// HF Llama forward pass in float64 written from the modelling code: RMSNorm, rotate_half RoPE, grouped-
// query attention, the family's FFN, separate head. An independent reference for the engine.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { f32Bytes, rng, writeSafetensors, type RawTensor } from "../packages/sdk/test/hf/helpers.js";

/** dim, heads, KV heads, FFN width, layers, vocabulary, context. */
export const D = 32, H = 4, KV = 2, F = 64, L = 2, V = 24, P = 32;
const HS = D / H;
const EPS = 1e-5;
const THETA = 10000;
export type Family = "fatrelu" | "drelu";
/** ProSparse's released threshold. */
export const FATRELU_T = 0.01;
export type W = Record<string, Float64Array>;

export function makeWeights(seed: number): W {
  const r = rng(seed);
  const rand = (n: number, s: number) => Float64Array.from({ length: n }, () => (r() * 2 - 1) * s);
  const w: W = { emb: rand(V * D, 1), head: rand(V * D, 0.5), norm: rand(D, 0.2).map((v) => 1 + v) };
  const kv = KV * HS;
  for (let l = 0; l < L; l++) {
    w[`${l}.q`] = rand(D * D, 0.3);
    w[`${l}.k`] = rand(kv * D, 0.3);
    w[`${l}.v`] = rand(kv * D, 0.3);
    w[`${l}.o`] = rand(D * D, 0.3);
    // gate rows with a small bias-free spread: a good share of gate values falls on each side of the
    // fatrelu threshold, and of 0 for dReLU
    w[`${l}.gate`] = rand(F * D, 0.15);
    w[`${l}.up`] = rand(F * D, 0.15);
    w[`${l}.down`] = rand(D * F, 0.3);
    w[`${l}.n1`] = rand(D, 0.2).map((v) => 1 + v);
    w[`${l}.n2`] = rand(D, 0.2).map((v) => 1 + v);
  }
  return w;
}

const mv = (m: Float64Array, x: ArrayLike<number>, rows: number, cols: number): number[] =>
  Array.from({ length: rows }, (_, i) => {
    let s = 0;
    for (let j = 0; j < cols; j++) s += m[i * cols + j] * x[j];
    return s;
  });
const rms = (x: number[], g: Float64Array): number[] => {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(ms + EPS)) * g[i]);
};
/** HF rotate_half RoPE on each head of `v` (heads of HS values): pairs (j, j + HS/2). */
const rope = (v: number[], heads: number, pos: number): number[] => {
  const out = v.slice();
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < HS / 2; j++) {
      const a = pos * Math.pow(THETA, (-2 * j) / HS);
      const x0 = v[h * HS + j], x1 = v[h * HS + j + HS / 2];
      out[h * HS + j] = x0 * Math.cos(a) - x1 * Math.sin(a);
      out[h * HS + j + HS / 2] = x1 * Math.cos(a) + x0 * Math.sin(a);
    }
  }
  return out;
};

/** The FFN's per-neuron h for gate value g and up value u. */
export function ffnH(family: Family, g: number, u: number): number {
  // ProSparse's FATReLU keeps g where g > t (torch.nn.functional.threshold); Bamboo's MLP applies ReLU to both.
  return family === "fatrelu" ? (g > FATRELU_T ? g : 0) * u : Math.max(g, 0) * Math.max(u, 0);
}

/**
 * The forward pass in float64 over `tokens` (causal, teacher-forced). Also returns, per position and
 * layer, the residual stream entering the FFN block (PowerInfer's predictor input) and which neurons
 * were active (h ≠ 0).
 */
export function reference(w: W, family: Family, tokens: number[]): { logits: number[][]; residual: number[][][]; active: boolean[][][]; margin: number[][][] } {
  const keys: number[][][] = Array.from({ length: L }, () => []);
  const vals: number[][][] = Array.from({ length: L }, () => []);
  const residual: number[][][] = [];
  const active: boolean[][][] = [];
  // how far each neuron's deciding value is from flipping it (|g - t|, or min(|g|, |u|) for dReLU)
  const margin: number[][][] = [];
  const logits = tokens.map((t, pos) => {
    let x = Array.from({ length: D }, (_, i) => w.emb[t * D + i]);
    residual.push([]);
    active.push([]);
    margin.push([]);
    for (let l = 0; l < L; l++) {
      const h = rms(x, w[`${l}.n1`]);
      const q = rope(mv(w[`${l}.q`], h, D, D), H, pos);
      keys[l].push(rope(mv(w[`${l}.k`], h, KV * HS, D), KV, pos));
      vals[l].push(mv(w[`${l}.v`], h, KV * HS, D));
      const att = new Array<number>(D).fill(0);
      for (let head = 0; head < H; head++) {
        const kh = Math.floor(head / (H / KV));
        const sc = keys[l].map((k) => {
          let s = 0;
          for (let i = 0; i < HS; i++) s += q[head * HS + i] * k[kh * HS + i];
          return s / Math.sqrt(HS);
        });
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < HS; i++) att[head * HS + i] = e.reduce((a, p, t2) => a + (p / z) * vals[l][t2][kh * HS + i], 0);
      }
      const o = mv(w[`${l}.o`], att, D, D);
      x = x.map((v, i) => v + o[i]);
      residual[pos].push(x.slice());
      const h2 = rms(x, w[`${l}.n2`]);
      const g = mv(w[`${l}.gate`], h2, F, D);
      const u = mv(w[`${l}.up`], h2, F, D);
      const hh = g.map((gv, i) => ffnH(family, gv, u[i]));
      active[pos].push(hh.map((v) => v !== 0));
      margin[pos].push(g.map((gv, i) => (family === "fatrelu" ? Math.abs(gv - FATRELU_T) : Math.min(Math.abs(gv), Math.abs(u[i])))));
      const down = mv(w[`${l}.down`], hh, D, F);
      x = x.map((v, i) => v + down[i]);
    }
    return mv(w.head, rms(x, w.norm), V, D);
  });
  return { logits, residual, active, margin };
}

/** Greedy continuation of `prompt` by the float64 model, `n` tokens. */
export function referenceGreedy(w: W, family: Family, prompt: number[], n: number): number[] {
  const tokens = [...prompt];
  while (tokens.length < prompt.length + n) {
    const { logits } = reference(w, family, tokens);
    const last = logits[logits.length - 1];
    tokens.push(last.indexOf(Math.max(...last)));
  }
  return tokens;
}

/** config.json as the family's release ships it (fields from ProSparse-Llama-2 / Bamboo-7B configs). */
function configJson(family: Family): Record<string, unknown> {
  const common = {
    hidden_size: D, intermediate_size: F, num_hidden_layers: L, num_attention_heads: H, num_key_value_heads: KV,
    vocab_size: V, max_position_embeddings: P, rms_norm_eps: EPS, rope_theta: THETA, rope_scaling: null, tie_word_embeddings: false,
    bos_token_id: 1, eos_token_id: 2, torch_dtype: "float32",
  };
  return family === "fatrelu"
    ? { ...common, architectures: ["SparseLlamaForCausalLM"], model_type: "sparsellama", hidden_act: "fatrelu", hidden_act_param: FATRELU_T }
    : { ...common, architectures: ["BambooForCausalLM"], model_type: "bamboo", hidden_act: "relu", sliding_window: 4096 };
}

/** HF keeps q/k rows in rotate_half order: the float64 model above is written in it, so they are stored as they are. */
export function writeCheckpoint(dir: string, w: W, family: Family): void {
  const t = (name: string, data: Float64Array, shape: number[]): RawTensor => ({ name, dtype: "F32", shape, data: f32Bytes(Float32Array.from(data)) });
  const tensors: RawTensor[] = [t("model.embed_tokens.weight", w.emb, [V, D])];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    tensors.push(
      t(`${p}input_layernorm.weight`, w[`${l}.n1`], [D]),
      t(`${p}self_attn.q_proj.weight`, w[`${l}.q`], [D, D]),
      t(`${p}self_attn.k_proj.weight`, w[`${l}.k`], [KV * HS, D]),
      t(`${p}self_attn.v_proj.weight`, w[`${l}.v`], [KV * HS, D]),
      t(`${p}self_attn.o_proj.weight`, w[`${l}.o`], [D, D]),
      t(`${p}post_attention_layernorm.weight`, w[`${l}.n2`], [D]),
      t(`${p}mlp.gate_proj.weight`, w[`${l}.gate`], [F, D]),
      t(`${p}mlp.up_proj.weight`, w[`${l}.up`], [F, D]),
      t(`${p}mlp.down_proj.weight`, w[`${l}.down`], [D, F]),
    );
  }
  tensors.push(t("model.norm.weight", w.norm, [D]), t("lm_head.weight", w.head, [V, D]));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tensors));
  writeFileSync(join(dir, "config.json"), JSON.stringify(configJson(family)));
  writeFileSync(join(dir, "vocab.json"), JSON.stringify("abcdefghijklmnopqrstuvwx".split("")));
}
