// OPT (OPTForCausalLM) checkpoints: a small random one written here as config.json + safetensors,
// converted to .flm and run through the flash engine, against an independent float64 forward pass
// written from OPT's definition (pre-LayerNorm, learned positions with offset 2, biases, ReLU FFN,
// tied head).
import { describe, expect, it } from "vitest";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFlashModel } from "@flashllm/sdk";
import { NodeFileSource, convertFile } from "@flashllm/node-io";
import { f32Bytes, writeSafetensors, type RawTensor } from "../packages/sdk/test/hf/helpers.js";
import { ROOT, rng } from "./helpers.js";

const D = 16, H = 2, F = 48, L = 2, V = 20, P = 32;
const r = rng(77);
const rand = (n: number, s = 0.3) => Float64Array.from({ length: n }, () => (r() * 2 - 1) * s);
type W = Record<string, Float64Array>;

function makeWeights(): W {
  const w: W = { emb: rand(V * D, 1), pos: rand((P + 2) * D, 0.5), lnf_w: rand(D, 0.2).map((v) => 1 + v), lnf_b: rand(D, 0.1) };
  for (let l = 0; l < L; l++) {
    for (const [n, size] of [["q", D * D], ["k", D * D], ["v", D * D], ["o", D * D], ["fc1", F * D], ["fc2", D * F]] as const) w[`${l}.${n}`] = rand(size);
    for (const [n, size] of [["bq", D], ["bk", D], ["bv", D], ["bo", D], ["b1", F], ["b2", D]] as const) w[`${l}.${n}`] = rand(size, 0.1);
    w[`${l}.ln1_w`] = rand(D, 0.2).map((v) => 1 + v);
    w[`${l}.ln1_b`] = rand(D, 0.1);
    w[`${l}.ln2_w`] = rand(D, 0.2).map((v) => 1 + v);
    w[`${l}.ln2_b`] = rand(D, 0.1);
  }
  return w;
}

const mv = (m: Float64Array, x: ArrayLike<number>, rows: number, cols: number, b?: Float64Array) =>
  Array.from({ length: rows }, (_, i) => {
    let s = b ? b[i] : 0;
    for (let j = 0; j < cols; j++) s += m[i * cols + j] * x[j];
    return s;
  });
const ln = (x: number[], g: Float64Array, b: Float64Array) => {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const v = x.reduce((a, u) => a + (u - mean) ** 2, 0) / x.length;
  return x.map((u, i) => ((u - mean) / Math.sqrt(v + 1e-5)) * g[i] + b[i]);
};

/** OPT's forward pass in float64, all positions of `tokens` (causal). */
function referenceLogits(w: W, tokens: number[]): number[][] {
  const hs = D / H;
  const keys: number[][][] = Array.from({ length: L }, () => []);
  const vals: number[][][] = Array.from({ length: L }, () => []);
  return tokens.map((t, pos) => {
    let x = Array.from({ length: D }, (_, i) => w.emb[t * D + i] + w.pos[(pos + 2) * D + i]);
    for (let l = 0; l < L; l++) {
      const h = ln(x, w[`${l}.ln1_w`], w[`${l}.ln1_b`]);
      const q = mv(w[`${l}.q`], h, D, D, w[`${l}.bq`]).map((v) => v * hs ** -0.5);
      keys[l].push(mv(w[`${l}.k`], h, D, D, w[`${l}.bk`]));
      vals[l].push(mv(w[`${l}.v`], h, D, D, w[`${l}.bv`]));
      const att = new Array(D).fill(0);
      for (let head = 0; head < H; head++) {
        const sc = keys[l].map((k) => q.slice(head * hs, (head + 1) * hs).reduce((a, v, i) => a + v * k[head * hs + i], 0));
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < hs; i++) att[head * hs + i] = e.reduce((a, p, t2) => a + (p / z) * vals[l][t2][head * hs + i], 0);
      }
      x = x.map((v, i) => v + mv(w[`${l}.o`], att, D, D, w[`${l}.bo`])[i]);
      const h2 = ln(x, w[`${l}.ln2_w`], w[`${l}.ln2_b`]);
      const f = mv(w[`${l}.fc1`], h2, F, D, w[`${l}.b1`]).map((v) => Math.max(0, v));
      const down = mv(w[`${l}.fc2`], f, D, F, w[`${l}.b2`]);
      x = x.map((v, i) => v + down[i]);
    }
    const xf = ln(x, w.lnf_w, w.lnf_b);
    return mv(w.emb, xf, V, D);
  });
}

function writeCheckpoint(dir: string, w: W): void {
  const t = (name: string, data: Float64Array, shape: number[]): RawTensor => ({ name, dtype: "F32", shape, data: f32Bytes(Float32Array.from(data)) });
  const p = "model.decoder.";
  const tensors: RawTensor[] = [t(`${p}embed_tokens.weight`, w.emb, [V, D]), t(`${p}embed_positions.weight`, w.pos, [P + 2, D])];
  for (let l = 0; l < L; l++) {
    const q = `${p}layers.${l}.`;
    tensors.push(
      t(`${q}self_attn_layer_norm.weight`, w[`${l}.ln1_w`], [D]), t(`${q}self_attn_layer_norm.bias`, w[`${l}.ln1_b`], [D]),
      // OPT stores q_proj unscaled and scales q in forward; the engine scales scores by 1/sqrt(head), the same thing.
      t(`${q}self_attn.q_proj.weight`, w[`${l}.q`], [D, D]), t(`${q}self_attn.q_proj.bias`, w[`${l}.bq`], [D]),
      t(`${q}self_attn.k_proj.weight`, w[`${l}.k`], [D, D]), t(`${q}self_attn.k_proj.bias`, w[`${l}.bk`], [D]),
      t(`${q}self_attn.v_proj.weight`, w[`${l}.v`], [D, D]), t(`${q}self_attn.v_proj.bias`, w[`${l}.bv`], [D]),
      t(`${q}self_attn.out_proj.weight`, w[`${l}.o`], [D, D]), t(`${q}self_attn.out_proj.bias`, w[`${l}.bo`], [D]),
      t(`${q}final_layer_norm.weight`, w[`${l}.ln2_w`], [D]), t(`${q}final_layer_norm.bias`, w[`${l}.ln2_b`], [D]),
      t(`${q}fc1.weight`, w[`${l}.fc1`], [F, D]), t(`${q}fc1.bias`, w[`${l}.b1`], [F]),
      t(`${q}fc2.weight`, w[`${l}.fc2`], [D, F]), t(`${q}fc2.bias`, w[`${l}.b2`], [D]),
    );
  }
  tensors.push(t(`${p}final_layer_norm.weight`, w.lnf_w, [D]), t(`${p}final_layer_norm.bias`, w.lnf_b, [D]));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tensors));
  writeFileSync(join(dir, "config.json"), JSON.stringify({
    architectures: ["OPTForCausalLM"], model_type: "opt", hidden_size: D, ffn_dim: F, num_hidden_layers: L, num_attention_heads: H,
    vocab_size: V, max_position_embeddings: P, do_layer_norm_before: true, activation_function: "relu", word_embed_proj_dim: D,
    enable_bias: true, layer_norm_elementwise_affine: true, tie_word_embeddings: true,
  }));
  writeFileSync(join(dir, "vocab.json"), JSON.stringify("abcdefghijklmnopqrst".split("")));
}

describe("OPT conversion", () => {
  it("a random OPTForCausalLM checkpoint runs from flash with logits equal to an independent float64 forward pass", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flashllm-opt-"));
    const w = makeWeights();
    writeCheckpoint(dir, w);
    const out = join(dir, "opt.flm");
    await convertFile(dir, join(dir, "vocab.json"), out);
    const source = await NodeFileSource.open(out);
    const model = await openFlashModel(source, { contextLength: P });
    expect(model.file.manifest.architecture).toBe("opt");
    const tokens = model.tokenizer.encode("hello abba cafe tea".replace(/ /g, ""));
    const ref = referenceLogits(w, tokens);
    let maxErr = 0;
    for (let pos = 0; pos < tokens.length; pos++) {
      const l = await model.transformer.forward(tokens[pos], pos);
      for (let v = 0; v < V; v++) maxErr = Math.max(maxErr, Math.abs(l[v] - ref[pos][v]));
    }
    expect(maxErr).toBeLessThan(1e-4);
    await model.dispose();
    await source.close();
  });
});

describe("Hugging Face tokenizer.json (through @huggingface/tokenizers)", () => {
  it("is stored in the .flm, encodes by its BPE merges, and streams text with its spaces", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flashllm-hftok-"));
    writeCheckpoint(dir, makeWeights());
    // A tiny SentencePiece-style BPE (test/data/tiny-bpe): merges "▁ a", "a b", "▁a b", "b c", "▁ c" in that order.
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(ROOT, "test/data/tiny-bpe", f), join(dir, f));
    const out = join(dir, "opt.flm");
    await convertFile(dir, join(dir, "tokenizer.json"), out);
    const source = await NodeFileSource.open(out);
    const model = await openFlashModel(source, { contextLength: P });
    expect(model.file.manifest.tokenizer.kind).toBe("hf");
    // By the merges: "ab c" → ▁ab ▁c; "cab" → ▁c ab; "a b" → ▁a ▁ b.
    expect(model.tokenizer.encode("ab c")).toEqual([1, 9, 11]);
    expect(model.tokenizer.encode("cab")).toEqual([1, 11, 8]);
    expect(model.tokenizer.encode("a b")).toEqual([1, 7, 3, 5]);
    const dec = new TextDecoder();
    const text = [1, 9, 11, 8].slice(1).map((t, i) => dec.decode(model.tokenizer.pieceBytes([1, 9, 11, 8][i], t))).join("");
    expect(text).toBe("ab cab");
    expect(model.tokenizer.defaultStopTokens).toEqual([2]);
    let n = 0;
    for await (const t of model.generate("ab c", { temperature: 0, maxTokens: 5 })) n += t.token >= 0 ? 1 : 0;
    expect(n).toBeGreaterThan(0);
    await model.dispose();
    await source.close();
  });

  it("convert stores chat_template of tokenizer_config.json; chat prompts encode its special tokens through the library", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flashllm-chat-hf-"));
    writeCheckpoint(dir, makeWeights());
    copyFileSync(join(ROOT, "test/data/tiny-bpe/tokenizer.json"), join(dir, "tokenizer.json"));
    const cfg = JSON.parse(readFileSync(join(ROOT, "test/data/tiny-bpe/tokenizer_config.json"), "utf8"));
    const template = "{% for m in messages %}{{ bos_token + m['content'] + eos_token }}{% endfor %}";
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ ...cfg, chat_template: template }));
    const out = join(dir, "m.flm");
    await convertFile(dir, join(dir, "tokenizer.json"), out);
    const source = await NodeFileSource.open(out);
    const model = await openFlashModel(source, { contextLength: P });
    expect(model.file.manifest.chatTemplate).toBe(template);
    // The library splits out the added tokens <s> and </s>; Metaspace puts ▁ before each piece between them:
    // "<s>ab</s><s>c</s>" → <s> ▁ab </s> <s> ▁c </s>, and no second BOS is added.
    const p = model.chatPrompt([{ role: "user", content: "ab" }, { role: "user", content: "c" }]);
    expect(p.text).toBe("<s>ab</s><s>c</s>");
    expect(p.tokens).toEqual([1, 9, 2, 1, 11, 2]);
    expect(p.stopTokens).toContain(2);
    await model.dispose();
    await source.close();
  });
});
