// Hugging Face checkpoints (config.json + model.safetensors, HF rotate_half RoPE) converted to .flm
// give the same greedy tokens as the llama2.c form's reference. The models are read from the
// machine's shared collection; without it these tests skip.
import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFlashModel } from "@flashllm/sdk";
import { NodeFileSource, convertFile } from "@flashllm/node-io";
import { SHARED_MODELS, readJson } from "./helpers.js";

const cases = [
  { dir: "stories260K-relu", tok: "tok512.bin" },
  { dir: "babyllama-tok105-relu", tok: "tok105.bin" },
];

for (const c of cases) {
  const dir = `${SHARED_MODELS}/${c.dir}`;
  describe.skipIf(!existsSync(`${dir}/model.safetensors`))(`HF ${c.dir}${existsSync(dir) ? "" : " (SKIPPED: ../shared/models absent)"}`, () => {
    it("converts from safetensors and generates the reference's greedy tokens", async () => {
      const out = join(mkdtempSync(join(tmpdir(), "flashllm-hf-")), "m.flm");
      await convertFile(dir, `${dir}/${c.tok}`, out);
      const source = await NodeFileSource.open(out);
      const model = await openFlashModel(source);
      expect(model.config.ropeStyle).toBe("neox");
      expect(model.config.activation).toBe("relu");
      for (const ref of readJson(`${dir}/reference/greedy.json`).cases.slice(0, 2)) {
        const tokens = [...ref.prompt_tokens];
        const max = Math.min(ref.tokens.length, 120) - tokens.length;
        for await (const t of model.generate(ref.prompt, { temperature: 0, maxTokens: max })) tokens.push(t.token);
        expect(tokens).toEqual(ref.tokens.slice(0, tokens.length));
        expect(tokens.length).toBe(Math.min(ref.tokens.length, 120));
      }
      await model.dispose();
      await source.close();
    });
  });
}

// The one real ReLU GPT found (LayerNorm, learned positions, biases, plain ReLU FFN): no licence, so it
// is read from ../shared only and never copied into the repository.
const GPT = `${SHARED_MODELS}/shakespeare-relu-gpt`;
describe.skipIf(!existsSync(`${GPT}/model.safetensors`))(`shakespeare-relu-gpt (OPT family)${existsSync(GPT) ? "" : " (SKIPPED: ../shared/models absent)"}`, () => {
  it("converts, matches the reference logits of 20 positions, and its greedy text", async () => {
    const out = join(mkdtempSync(join(tmpdir(), "flashllm-gpt-")), "gpt.flm");
    await convertFile(GPT, `${GPT}/vocab.json`, out);
    const source = await NodeFileSource.open(out);
    const model = await openFlashModel(source);
    expect(model.config).toMatchObject({ norm: "layernorm", ropeStyle: "none", gated: false, activation: "relu" });
    const trace = readJson(`${GPT}/reference/trace_first20.json`);
    const fed: number[] = (trace.steps ?? trace.positions).map((s: { token: number }) => s.token);
    const { readF32 } = await import("./helpers.js");
    const ref = readF32(`${GPT}/reference/logits_first20.f32`);
    let maxErr = 0;
    for (let pos = 0; pos < fed.length; pos++) {
      const l = await model.transformer.forward(fed[pos], pos);
      for (let v = 0; v < 65; v++) maxErr = Math.max(maxErr, Math.abs(l[v] - ref[pos * 65 + v]));
    }
    expect(maxErr).toBeLessThan(1e-3);
    const c = readJson(`${GPT}/reference/greedy.json`).cases.find((k: { prompt: string }) => k.prompt === "To be, or not to be");
    const tokens = [...c.prompt_tokens];
    for await (const t of model.generate(c.prompt, { temperature: 0, maxTokens: c.tokens.length - tokens.length })) tokens.push(t.token);
    expect(tokens).toEqual(c.tokens);
    await model.dispose();
    await source.close();
  });
});

// Without ../shared: a Hugging Face LlamaForCausalLM checkpoint built here from the shipped llama2.c
// stories260K-relu (q/k rows permuted into HF's rotate_half order, as transformers' converter does),
// so CI always exercises the safetensors → .flm → neox RoPE path against the shipped reference.
describe("HF Llama checkpoint written from the shipped stories260K-relu", () => {
  it("converts and generates the reference's greedy tokens", async () => {
    const { readLlama2cCheckpoint } = await import("@flashllm/sdk/internal");
    const { f32Bytes, writeSafetensors } = await import("../packages/sdk/test/hf/helpers.js");
    const { ROOT, readBytes } = await import("./helpers.js");
    const { writeFileSync } = await import("node:fs");
    const m = `${ROOT}packages/node-io/models/stories260K-relu`;
    const { config: c, tensors } = readLlama2cCheckpoint(readBytes(`${m}/stories260K_relu.bin`), { activation: "relu" });
    const hd = c.dim / c.nHeads;
    // HF order: W.view(heads, hd/2, 2, in).transpose(1, 2): new row h·hd + t·hd/2 + j = old row h·hd + 2j + t.
    const permute = (w: Float32Array, heads: number) => {
      const out = new Float32Array(w.length);
      for (let h = 0; h < heads; h++) for (let j = 0; j < hd / 2; j++) for (let t = 0; t < 2; t++) {
        out.set(w.subarray((h * hd + 2 * j + t) * c.dim, (h * hd + 2 * j + t + 1) * c.dim), (h * hd + t * (hd / 2) + j) * c.dim);
      }
      return out;
    };
    const kv = (c.dim * c.nKvHeads) / c.nHeads;
    const t = (name: string, data: Float32Array, shape: number[]) => ({ name, dtype: "F32", shape, data: f32Bytes(data) });
    const list = [t("model.embed_tokens.weight", tensors.get("tok_embeddings")!, [c.vocabSize, c.dim]), t("model.norm.weight", tensors.get("norm")!, [c.dim])];
    for (let l = 0; l < c.nLayers; l++) {
      const L = `layers.${l}.`, H = `model.layers.${l}.`;
      list.push(
        t(H + "input_layernorm.weight", tensors.get(L + "attn_norm")!, [c.dim]),
        t(H + "self_attn.q_proj.weight", permute(tensors.get(L + "wq")!, c.nHeads), [c.dim, c.dim]),
        t(H + "self_attn.k_proj.weight", permute(tensors.get(L + "wk")!, c.nKvHeads), [kv, c.dim]),
        t(H + "self_attn.v_proj.weight", tensors.get(L + "wv")!, [kv, c.dim]),
        t(H + "self_attn.o_proj.weight", tensors.get(L + "wo")!, [c.dim, c.dim]),
        t(H + "post_attention_layernorm.weight", tensors.get(L + "ffn_norm")!, [c.dim]),
        t(H + "mlp.gate_proj.weight", tensors.get(L + "w1")!, [c.hiddenDim, c.dim]),
        t(H + "mlp.up_proj.weight", tensors.get(L + "w3")!, [c.hiddenDim, c.dim]),
        t(H + "mlp.down_proj.weight", tensors.get(L + "w2")!, [c.dim, c.hiddenDim]),
      );
    }
    const dir = mkdtempSync(join(tmpdir(), "flashllm-hfl-"));
    writeFileSync(join(dir, "model.safetensors"), writeSafetensors(list));
    writeFileSync(join(dir, "config.json"), JSON.stringify({
      architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: c.dim, intermediate_size: c.hiddenDim, num_hidden_layers: c.nLayers,
      num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, vocab_size: c.vocabSize, max_position_embeddings: c.seqLen,
      rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: "relu", tie_word_embeddings: true,
    }));
    const out = join(dir, "m.flm");
    await convertFile(dir, `${m}/tok512.bin`, out);
    const source = await NodeFileSource.open(out);
    const model = await openFlashModel(source);
    expect(model.config.ropeStyle).toBe("neox");
    for (const ref of readJson(`${ROOT}test/data/stories260K-relu/greedy.json`).cases.slice(0, 2)) {
      const tokens = [...ref.prompt_tokens];
      for await (const tk of model.generate(ref.prompt, { temperature: 0, maxTokens: ref.tokens.length - tokens.length })) tokens.push(tk.token);
      expect(tokens).toEqual(ref.tokens);
    }
    await model.dispose();
    await source.close();
  });
});
