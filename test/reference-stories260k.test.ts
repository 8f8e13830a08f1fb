// The dense in-memory path against karpathy's run.c on the shipped stories260K model: tokenizer,
// greedy tokens and printed text, logits, sampled runs (run.c's RNG) and teacher-forced loss.
import { beforeAll, describe, expect, it } from "vitest";
import { loadLlama2c, runcPrintable, type LanguageModel } from "@flashllm/sdk/internal";
import { STORIES_BIN, STORIES_REF, STORIES_TOK, readBytes, readF32, readJson } from "./helpers.js";

interface RefCase { prompt: string; prompt_tokens: number[]; tokens: number[]; stdout: string; temperature: number; topp?: number; seed?: number; steps: number }

let model: LanguageModel;
beforeAll(async () => {
  model = await loadLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK));
});

/** Runs generation as run.c's `-n steps` does (steps counts positions, prompt included). */
async function runLikeRunc(c: RefCase) {
  const tokens = [...c.prompt_tokens];
  const maxTokens = c.steps + 1 - c.prompt_tokens.length;
  for await (const t of model.generate(c.prompt, { temperature: c.temperature, topP: c.topp ?? 0.9, seed: c.seed ?? 1, maxTokens })) {
    tokens.push(t.token);
  }
  return tokens;
}

/** What run.c prints for a token sequence: decode + safe_printf, then a newline. */
function runcStdout(tokens: number[]): string {
  const parts: number[] = [];
  for (let i = 1; i < tokens.length; i++) parts.push(...runcPrintable(model.tokenizer.pieceBytes(tokens[i - 1], tokens[i])));
  return new TextDecoder().decode(Uint8Array.from(parts)) + "\n";
}

describe("stories260K against run.c", () => {
  it("encodes like run.c", () => {
    const ref = readJson(`${STORIES_REF}/tokenizer_encode.json`);
    expect(ref.cases.length).toBeGreaterThanOrEqual(10);
    for (const c of ref.cases) expect(model.tokenizer.encode(c.text, true, false), JSON.stringify(c.text)).toEqual(c.tokens);
  });

  const greedy = readJson(`${STORIES_REF}/greedy.json`).cases as RefCase[];
  for (const [i, c] of greedy.entries()) {
    it(`greedy case ${i} (${JSON.stringify(c.prompt)}): same ${c.tokens.length} tokens and stdout`, async () => {
      expect(model.encodePrompt(c.prompt)).toEqual(c.prompt_tokens);
      const tokens = await runLikeRunc(c);
      expect(tokens).toEqual(c.tokens);
      expect(runcStdout(tokens)).toBe(c.stdout);
    });
  }

  it("logits of the first 20 positions match run.c within 1e-4", async () => {
    const trace = readJson(`${STORIES_REF}/trace_once_upon_a_time_first20.json`);
    const ref = readF32(`${STORIES_REF}/logits_once_upon_a_time_first20.f32`);
    const V = model.config.vocabSize;
    const fed: number[] = trace.steps.map((s: { token: number }) => s.token);
    expect(fed.length).toBe(20);
    let maxErr = 0;
    for (let pos = 0; pos < 20; pos++) {
      const logits = await model.transformer.forward(fed[pos], pos);
      for (let v = 0; v < V; v++) maxErr = Math.max(maxErr, Math.abs(logits[v] - ref[pos * V + v]));
    }
    // Float32 sums in a different order than run.c's: errors of a few 1e-6 are expected on logits of size ~10.
    expect(maxErr).toBeLessThan(1e-4);
  });

  it("teacher-forced loss on story 0 matches run.c's 1.2304 nats/token", async () => {
    const ref = readJson(`${STORIES_REF}/teacher_forced_story0.json`);
    const toks: number[] = ref.tokens;
    let nll = 0;
    for (let pos = 0; pos + 1 < toks.length; pos++) {
      const logits = await model.transformer.forward(toks[pos], pos);
      let max = -Infinity;
      for (const v of logits) max = Math.max(max, v);
      let sum = 0;
      for (const v of logits) sum += Math.exp(v - max);
      nll -= logits[toks[pos + 1]] - max - Math.log(sum);
    }
    const mean = nll / (toks.length - 1);
    expect(Math.abs(mean - ref.mean_nll)).toBeLessThan(1e-4);
  });

  const sampled = readJson(`${STORIES_REF}/sampled.json`).cases as RefCase[];
  for (const [i, c] of sampled.entries()) {
    it(`sampled case ${i} (t=${c.temperature} p=${c.topp} seed=${c.seed}): run.c's RNG gives the same tokens`, async () => {
      const tokens = await runLikeRunc(c);
      expect(tokens).toEqual(c.tokens);
      expect(runcStdout(tokens)).toBe(c.stdout);
    });
  }
});
