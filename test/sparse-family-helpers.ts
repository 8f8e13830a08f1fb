// Small random Llama-shaped checkpoints of the sparse families (ProSparse's fatrelu, Bamboo's dReLU) as
// their Hugging Face releases ship them (config.json + safetensors, HF's rotate_half q/k order), and the
// HF Llama forward pass in float64 written from the modelling code: RMSNorm, rotate_half RoPE, grouped-
// query attention, the family's FFN, separate head. An independent reference for the engine.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { f32Bytes, rng, writeSafetensors, type RawTensor } from "../packages/sdk/test/hf/helpers.js";
import { GgmlType, GgufWriter, MemorySink, kv, type GgufTensorDecl } from "@flashllm/sdk/internal";

/** dim, heads, KV heads, FFN width, layers, vocabulary, context. */
export const D = 32, H = 4, KV = 2, F = 64, L = 2, V = 24, P = 32;
const HS = D / H;
const EPS = 1e-5;
const THETA = 10000;
export type Family = "fatrelu" | "drelu" | "relu";
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
  if (family === "fatrelu") return (g > FATRELU_T ? g : 0) * u;
  if (family === "drelu") return Math.max(g, 0) * Math.max(u, 0);
  return Math.max(g, 0) * u;
}

/**
 * The forward pass in float64 over `tokens` (causal, teacher-forced). Also returns, per position and
 * layer, the residual stream entering the FFN block (PowerInfer's predictor input) and which neurons
 * were active (h ≠ 0).
 */
export function reference(w: W, family: Family, tokens: number[], keep?: (layer: number, residual: number[]) => boolean[]): { logits: number[][]; residual: number[][][]; active: boolean[][][]; margin: number[][][] } {
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
      // `keep` (a predictor's decision on the residual stream): neurons it leaves out are not computed
      const kept = keep?.(l, x);
      const hh = g.map((gv, i) => (kept && !kept[i] ? 0 : ffnH(family, gv, u[i])));
      active[pos].push(hh.map((v) => v !== 0));
      margin[pos].push(g.map((gv, i) => (family === "fatrelu" ? Math.abs(gv - FATRELU_T) : family === "drelu" ? Math.min(Math.abs(gv), Math.abs(u[i])) : Math.abs(gv))));
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

/**
 * HF keeps q/k rows in rotate_half order: the float64 model above is written in it, so they are stored
 * as they are. `extra`: more tensors to store (a checkpoint's own predictors).
 */
export function writeCheckpoint(dir: string, w: W, family: Family, extra: RawTensor[] = []): void {
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
  tensors.push(t("model.norm.weight", w.norm, [D]), t("lm_head.weight", w.head, [V, D]), ...extra);
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tensors));
  writeFileSync(join(dir, "config.json"), JSON.stringify(configJson(family)));
  writeFileSync(join(dir, "vocab.json"), JSON.stringify("abcdefghijklmnopqrstuvwx".split("")));
}

/** A PowerInfer predictor per layer: `fc1 [rank][D]`, `fc2 [F][rank]`, as PowerInfer's `ReluMLP` (no biases). */
export interface PowerInferPredictor { rank: number; fc1: Float64Array[]; fc2: Float64Array[] }

export function makePredictor(seed: number, rank: number): PowerInferPredictor {
  const r = rng(seed);
  const rand = (n: number, s: number) => Float64Array.from({ length: n }, () => (r() * 2 - 1) * s);
  // multiples of 2^-10 within ±0.3: exact in F16, so the float64 evaluation uses the very values stored
  const exact = (v: Float64Array) => v.map((x) => Math.round(x * 1024) / 1024);
  return { rank, fc1: Array.from({ length: L }, () => exact(rand(rank * D, 0.3))), fc2: Array.from({ length: L }, () => exact(rand(F * rank, 0.3))) };
}

/**
 * A PowerInfer GGUF of the model (SJTU-IPADS/PowerInfer `convert.py` layout): magic "PWRI", architecture
 * `llama` (ReLU, sparse graph) or `bamboo` (dReLU), q/k rows permuted into llama.cpp's interleaved RoPE
 * order (as llama.cpp's converter does), `ffn_down_t` (the down projection transposed: one row of D values
 * per neuron), predictors `blk.N.fc1.weight` dims [D, rank] and `blk.N.fc2.weight` dims [rank, F] in
 * `predictorType` (PowerInfer writes them F16 or F32), and `powerinfer.sparse_threshold`.
 */
export async function powerInferGguf(w: W, arch: "llama" | "bamboo", pred: PowerInferPredictor, threshold: number | undefined, predictorType: number, omit?: string): Promise<Uint8Array> {
  const a = arch;
  const meta = [
    kv.str("general.architecture", a),
    kv.u32(`${a}.context_length`, P),
    kv.u32(`${a}.embedding_length`, D),
    kv.u32(`${a}.block_count`, L),
    kv.u32(`${a}.feed_forward_length`, F),
    kv.u32(`${a}.rope.dimension_count`, HS),
    kv.u32(`${a}.attention.head_count`, H),
    kv.u32(`${a}.attention.head_count_kv`, KV),
    kv.f32(`${a}.attention.layer_norm_rms_epsilon`, EPS),
    kv.f32(`${a}.rope.freq_base`, THETA),
    kv.str("tokenizer.ggml.model", "llama"),
    kv.strs("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>", ..."abcdefghijklmnopqrstu".split("")]),
    kv.f32s("tokenizer.ggml.scores", new Array<number>(V).fill(0)),
    kv.i32s("tokenizer.ggml.token_type", [2, 3, 3, ...new Array<number>(V - 3).fill(1)]),
    kv.u32("tokenizer.ggml.bos_token_id", 1),
    kv.u32("tokenizer.ggml.eos_token_id", 2),
    ...(threshold !== undefined ? [kv.f32("powerinfer.sparse_threshold", threshold)] : []),
  ];
  const f32 = (v: Float64Array) => Float32Array.from(v);
  // HF rotate_half rows → interleaved pairs: row 2j of a head is HF row j, row 2j+1 is HF row j + HS/2
  const permute = (m: Float64Array, heads: number) => {
    const out = new Float64Array(m.length);
    for (let h = 0; h < heads; h++) for (let j = 0; j < HS / 2; j++) for (const [to, from] of [[2 * j, j], [2 * j + 1, j + HS / 2]]) {
      out.set(m.subarray((h * HS + from) * D, (h * HS + from + 1) * D), (h * HS + to) * D);
    }
    return out;
  };
  const transpose = (m: Float64Array, rows: number, cols: number) => {
    const out = new Float64Array(m.length);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
    return out;
  };
  const list: [string, number[], number, Float32Array][] = [["token_embd.weight", [D, V], GgmlType.F32, f32(w.emb)]];
  for (let l = 0; l < L; l++) {
    const b = `blk.${l}.`;
    list.push(
      [`${b}attn_norm.weight`, [D], GgmlType.F32, f32(w[`${l}.n1`])],
      [`${b}attn_q.weight`, [D, D], GgmlType.F32, f32(permute(w[`${l}.q`], H))],
      [`${b}attn_k.weight`, [D, KV * HS], GgmlType.F32, f32(permute(w[`${l}.k`], KV))],
      [`${b}attn_v.weight`, [D, KV * HS], GgmlType.F32, f32(w[`${l}.v`])],
      [`${b}attn_output.weight`, [D, D], GgmlType.F32, f32(w[`${l}.o`])],
      [`${b}ffn_norm.weight`, [D], GgmlType.F32, f32(w[`${l}.n2`])],
      [`${b}ffn_gate.weight`, [D, F], GgmlType.F32, f32(w[`${l}.gate`])],
      [`${b}ffn_up.weight`, [D, F], GgmlType.F32, f32(w[`${l}.up`])],
      [`${b}ffn_down_t.weight`, [D, F], GgmlType.F32, f32(transpose(w[`${l}.down`], D, F))],
      [`${b}fc1.weight`, [D, pred.rank], predictorType, f32(pred.fc1[l])],
      [`${b}fc2.weight`, [pred.rank, F], predictorType, f32(pred.fc2[l])],
    );
  }
  list.push(["output_norm.weight", [D], GgmlType.F32, f32(w.norm)], ["output.weight", [D, V], GgmlType.F32, f32(w.head)]);
  if (omit !== undefined) list.splice(list.findIndex(([name]) => name === omit), 1); // a broken file, for refusals
  const decl: GgufTensorDecl[] = list.map(([name, dims, type]) => ({ name, dims, type }));
  const sink = new MemorySink();
  const writer = new GgufWriter(sink, meta, decl, undefined, true);
  for (const [name, , , data] of list) await writer.write(name, data);
  await writer.finish();
  return sink.bytes();
}

/** Where the engine's recorded selections part from a reference's decisions. */
export interface SelectionComparison {
  /** Neurons the engine selected, over every record. */
  chosen: number;
  /** Decisions that differ, each with the reference's distance from its threshold there. */
  flips: { pos: number; layer: number; neuron: number; margin: number }[];
}

/**
 * Compares selections recorded per (position, layer), position-major as the engine runs them
 * (record k is position ⌊k/L⌋, layer k mod L), with a reference's keep/drop decisions.
 */
export function compareSelections(recorded: ArrayLike<number>[], expected: boolean[][][], margins: number[][][]): SelectionComparison {
  const out: SelectionComparison = { chosen: 0, flips: [] };
  recorded.forEach((ids, k) => {
    const pos = Math.floor(k / L);
    const layer = k % L;
    const set = new Set(Array.from(ids));
    for (let i = 0; i < F; i++) {
      if (set.has(i) !== expected[pos][layer][i]) out.flips.push({ pos, layer, neuron: i, margin: margins[pos][layer][i] });
    }
    out.chosen += ids.length;
  });
  return out;
}
