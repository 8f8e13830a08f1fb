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
import { ROOT } from "./helpers.js";

import { P, V, makeWeights, referenceLogits, writeCheckpoint } from "./opt-helpers.js";

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
