// Malformed checkpoints, tokenizers and prompts give typed errors that name the problem and the sizes.
import { describe, expect, it } from "vitest";
import { FormatError, Llama2cTokenizer, loadLlama2c, readLlama2cCheckpoint } from "@flashllm/sdk/internal";
import { STORIES_BIN, STORIES_TOK, readBytes } from "./helpers.js";

const ckpt = readBytes(STORIES_BIN);
const tok = readBytes(STORIES_TOK);

function expectFormatError(f: () => unknown, code: string, message: RegExp) {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FormatError);
  expect((err as FormatError).code).toBe(code);
  expect((err as Error).message).toMatch(message);
}

describe("llama2.c checkpoint", () => {
  it("truncated body: both sizes named", () => {
    expectFormatError(() => readLlama2cCheckpoint(ckpt.subarray(0, ckpt.length - 100)), "TRUNCATED", /describes 1056540 bytes but the file has 1056440/);
  });
  it("shorter than the header", () => {
    expectFormatError(() => readLlama2cCheckpoint(ckpt.subarray(0, 10)), "TRUNCATED", /10 bytes, shorter than the 28-byte header/);
  });
  it("extra bytes", () => {
    const big = new Uint8Array(ckpt.length + 8);
    big.set(ckpt);
    expectFormatError(() => readLlama2cCheckpoint(big), "SIZE_MISMATCH", /describes 1056540 bytes but the file has 1056548/);
  });
  it("bad header values", () => {
    for (const [index, value, msg] of [[0, 0, /zero, negative/], [3, 7, /not a multiple of n_heads 7/], [4, 3, /n_heads 8 is not a multiple of n_kv_heads 3/], [2, -1, /zero, negative/], [1, 1 << 30, /absurdly large/]] as const) {
      const bad = ckpt.slice();
      new DataView(bad.buffer).setInt32(index * 4, value, true);
      expectFormatError(() => readLlama2cCheckpoint(bad), "BAD_HEADER", msg);
    }
  });
});

describe("llama2.c tokenizer", () => {
  it("truncated inside an entry", () => {
    expectFormatError(() => Llama2cTokenizer.parse(tok.subarray(0, 3000), 512), "TRUNCATED", /tokenizer: (file ends at byte 3000 inside entry \d+ of 512|piece \d+ needs bytes)/);
  });
  it("a tokenizer for another vocabulary size", () => {
    expectFormatError(() => Llama2cTokenizer.parse(tok, 500), "BAD_TOKENIZER", /bytes follow the 500 pieces the model expects/);
    expectFormatError(() => Llama2cTokenizer.parse(tok, 600), "TRUNCATED", /inside entry 512 of 600/);
  });
  it("a piece longer than max_token_length", () => {
    const bad = tok.slice();
    new DataView(bad.buffer).setInt32(4 + 4, 1000, true); // piece 0's length
    expectFormatError(() => Llama2cTokenizer.parse(bad, 512), "BAD_TOKENIZER", /piece 0 has length 1000/);
  });
});

describe("prompts", () => {
  it("a prompt longer than the context is reported, not cut", async () => {
    const model = await loadLlama2c(ckpt, tok, { contextLength: 16 });
    const gen = model.generate("Once upon a time there was a very long story that does not fit", { maxTokens: 4 });
    await expect(gen.next()).rejects.toMatchObject({ code: "CONTEXT_OVERFLOW", message: expect.stringMatching(/the prompt is \d+ tokens but the context holds 16/) });
    // The model still works afterwards, and stops cleanly at the end of its context.
    const out = [];
    for await (const t of model.generate("Once", { temperature: 0 })) out.push(t.token);
    expect(model.lastStats?.finishReason).toBe("contextFull");
    expect(out.length).toBe(16 + 1 - model.encodePrompt("Once").length); // the last position's logits give one more token
    await model.dispose();
  });

  it("a second generate while one runs is refused with BUSY", async () => {
    const model = await loadLlama2c(ckpt, tok, { contextLength: 32 });
    const a = model.generate("Once", { temperature: 0, maxTokens: 10 });
    await a.next();
    await expect(model.generate("Twice").next()).rejects.toMatchObject({ code: "BUSY" });
    for await (const _ of a);
    expect(model.lastStats?.finishReason).toBe("maxTokens");
    await model.dispose();
  });

  it("abort stops generation with AbortedError and the model works again", async () => {
    const model = await loadLlama2c(ckpt, tok, { contextLength: 64 });
    const ac = new AbortController();
    const got: number[] = [];
    const err = await (async () => {
      for await (const t of model.generate("Once", { temperature: 0, signal: ac.signal })) {
        got.push(t.token);
        if (got.length === 5) ac.abort();
      }
    })().catch((e) => e);
    expect(err).toMatchObject({ code: "ABORTED" });
    expect(got.length).toBe(5);
    expect(model.lastStats?.finishReason).toBe("aborted");
    const again: number[] = [];
    for await (const t of model.generate("Once", { temperature: 0, maxTokens: 5 })) again.push(t.token);
    expect(again).toEqual(got);
    await model.dispose();
  });
});

describe("NaN and Inf in weights", () => {
  it("conversion names the tensor and layer", async () => {
    const { convertLlama2c, MemorySink } = await import("@flashllm/sdk/internal");
    const bad = ckpt.slice();
    // w1 of layer 2 starts after the header, embedding, rms_att, wq, wk, wv, wo, rms_ffn, and 2 layers of w1.
    const floats = 512 * 64 + 5 * 64 + 5 * 64 * 64 + 2 * 5 * 32 * 64 + 5 * 64 * 64 + 5 * 64 + 2 * 172 * 64 + 7;
    new DataView(bad.buffer).setFloat32(28 + 4 * floats, NaN, true);
    await expect(convertLlama2c(bad, tok, new MemorySink())).rejects.toThrow(/tensor layers\.2\.w1 \(layer 2\) holds NaN at index 7/);
  });
});
