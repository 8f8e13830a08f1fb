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
