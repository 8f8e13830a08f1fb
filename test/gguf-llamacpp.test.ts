// flashllm against llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU binary) on GGUF files our writer
// makes from the shipped stories260K: greedy tokens token for token. At F32 both must give exactly
// run.c's greedy tokens. For Q8_0 and Q4_0 files flashllm keeps the file's own blocks (--dtype keep:
// resident matrices verbatim, q8_0/q4_0 kernels that quantize activations as llama.cpp does) and must
// agree with llama.cpp except where llama.cpp's top-2 logits are a near-tie; the test prints the
// leading agreement and the gap where they part. The down projection is the one place the layouts
// differ (a bundle's down column is quantized along dim, GGUF's rows along the FFN width), so these
// files carry ffn_down as F32 holding exactly the values flashllm's bundles store.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GgmlType, MemorySink, MemorySource, convertGguf, openFlashModel } from "@flashllm/sdk/internal";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { STORIES_REF, readJson } from "./helpers.js";
import { storiesGguf } from "./gguf-helpers.js";

interface RefCase { prompt: string; prompt_tokens: number[]; tokens: number[] }
const CASES = (readJson(`${STORIES_REF}/greedy.json`).cases as RefCase[]).slice(0, 4);
/** Positions compared per prompt (prompt included): short, to keep the suite fast. */
const STEPS = 60;

type Llama = Awaited<ReturnType<typeof import("node-llama-cpp").getLlama>>;
let llama: Llama | undefined;
let skipReason = "";
const dir = mkdtempSync(join(tmpdir(), "flashllm-gguf-"));

beforeAll(async () => {
  try {
    const { getLlama } = await import("node-llama-cpp");
    // One thread: llama.cpp's threads spin-wait, which on a shared 2-core machine stalls for minutes.
    llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  } catch (e) {
    skipReason = `node-llama-cpp cannot load its prebuilt binary here: ${(e as Error).message}`;
    console.warn(`SKIPPED llama.cpp comparison: ${skipReason}`);
  }
}, 120_000);
afterAll(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** llama.cpp's greedy continuation of `prompt` (BOS prepended by hand), with its top-1/top-2 logit gap at each step. */
async function llamaCppGreedy(path: string, promptTokens: number[], steps: number): Promise<{ tokens: number[]; gaps: number[] }> {
  const model = await llama!.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: 512, batchSize: 512, threads: 1 });
  try {
    const seq = context.getSequence();
    const tokens = [...promptTokens];
    const gaps: number[] = [];
    const gen = seq.evaluateWithMetadata(promptTokens as never, { probabilities: true }, { temperature: 1, topK: 0, topP: 1, minP: 0, yieldEogToken: true });
    let res = await gen.next();
    while (!res.done && tokens.length < steps) {
      // Argmax of the full distribution ourselves; ln(p1/p2) is the logit gap.
      const ranked = [...res.value.probabilities.entries()].sort((a, b) => b[1] - a[1] || Number(a[0]) - Number(b[0]));
      const best = Number(ranked[0][0]);
      gaps.push(Math.log(ranked[0][1] / ranked[1][1]));
      tokens.push(best);
      if (best === 1) break; // run.c stops when BOS comes back
      res = await gen.next(best as never);
    }
    await gen.return(undefined);
    return { tokens, gaps };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

/** flashllm's greedy continuation after converting the GGUF to .flm. */
async function flashGreedy(gguf: Uint8Array, prompt: string, promptTokens: number[], steps: number, dtype?: "q8_0" | "q4_0"): Promise<number[]> {
  const sink = new MemorySink();
  const manifest = await convertGguf(new MemorySource(gguf), sink);
  if (dtype) expect(manifest.dtype).toEqual({ resident: dtype, ffn: dtype });
  const model = await openFlashModel(new MemorySource(sink.bytes()));
  try {
    expect(model.encodePrompt(prompt)).toEqual(promptTokens);
    const tokens = [...promptTokens];
    for await (const t of model.generate(prompt, { temperature: 0, maxTokens: steps - promptTokens.length })) tokens.push(t.token);
    return tokens;
  } finally {
    await model.dispose();
  }
}

describe("GGUF: flashllm and llama.cpp token for token", () => {
  it("F32: llama.cpp and flashllm (GGUF → .flm) both give run.c's greedy tokens", async (ctx) => {
    if (!llama) return ctx.skip(skipReason);
    const gguf = await storiesGguf(GgmlType.F32);
    const path = join(dir, "stories260K-f32.gguf");
    writeFileSync(path, gguf);
    for (const c of CASES) {
      const want = c.tokens.slice(0, STEPS);
      const cpp = await llamaCppGreedy(path, c.prompt_tokens, STEPS);
      const ours = await flashGreedy(gguf, c.prompt, c.prompt_tokens, STEPS);
      expect(cpp.tokens, `llama.cpp, prompt ${JSON.stringify(c.prompt)}`).toEqual(want);
      expect(ours, `flashllm, prompt ${JSON.stringify(c.prompt)}`).toEqual(want);
    }
  }, 120_000);

  for (const [name, type, dtype] of [["Q8_0", GgmlType.Q8_0, "q8_0"], ["Q4_0", GgmlType.Q4_0, "q4_0"]] as const) {
    it(`${name}: flashllm agrees with llama.cpp except at near-ties`, async (ctx) => {
      if (!llama) return ctx.skip(skipReason);
      const gguf = await storiesGguf(type, [], true);
      const path = join(dir, `stories260K-${name}.gguf`);
      writeFileSync(path, gguf);
      const report: string[] = [];
      for (const c of CASES) {
        const cpp = await llamaCppGreedy(path, c.prompt_tokens, STEPS);
        const ours = await flashGreedy(gguf, c.prompt, c.prompt_tokens, STEPS, dtype);
        let i = c.prompt_tokens.length;
        while (i < Math.min(cpp.tokens.length, ours.length) && cpp.tokens[i] === ours[i]) i++;
        const generated = i - c.prompt_tokens.length;
        const total = Math.min(cpp.tokens.length, ours.length) - c.prompt_tokens.length;
        if (i < Math.min(cpp.tokens.length, ours.length)) {
          const gap = cpp.gaps[i - c.prompt_tokens.length];
          report.push(`${JSON.stringify(c.prompt)}: ${generated}/${total} leading tokens agree; they part where llama.cpp's top-2 gap is ${gap.toFixed(4)} nats`);
          // They may part only at a near-tie of the peer's own logits.
          expect(gap, `${name} ${JSON.stringify(c.prompt)} parts at position ${i}`).toBeLessThan(0.1);
        } else {
          report.push(`${JSON.stringify(c.prompt)}: all ${total} tokens agree`);
        }
      }
      console.log(`${name} vs llama.cpp:\n  ${report.join("\n  ")}`);
    }, 120_000);
  }
});
