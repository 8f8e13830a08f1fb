// Runs one fuzz case (a seed plus mutation ops) end to end and judges it: success or a typed error is
// fine; a crash (any other exception, a WASM trap), a hang, a leak, a broken guard, a double free, a
// heap peak above the budget or an inconsistent neuron cache is a failure.
import {
  HfTokenizer, Llama2cTokenizer, MemorySink, MemorySource, convertLlama2c, loadLlama2c, openFlashModel, readLlama2cCheckpoint,
  type FlashModel, type LanguageModel,
} from "@flashllm/sdk/internal";
import * as sdk from "@flashllm/sdk/internal";
import { HANG_MS, type HeapWatch, checkFlashCache, classify, flmSeed, ggufSeeds, hfTokenizerSeed, llama2cSeeds, safetensorsSeeds } from "./harness.js";
import { applyOps, type Case } from "./mutate.js";

/** Result of one case. */
export interface CaseResult {
  /** "ok", "typed:<CODE>" or "crash:<name>". */
  outcome: string;
  /** Invariant violations (empty when fine). */
  problems: string[];
  ms: number;
  /** The error, for messages. */
  error?: unknown;
}

/** True when the result is a failure of the engine. */
export function failed(r: CaseResult): boolean {
  return r.outcome.startsWith("crash:") || r.problems.length > 0 || r.ms > HANG_MS;
}

/** Budget for models converted from mutated llama2.c checkpoints (any config the reader accepts). */
const LLAMA2C_BUDGET = 12 * 1024 * 1024;
const PROMPT = "Once upon a time";
const TOKENIZER_TEXTS = ["", " ", "Once upon a time", "Lily and Tom went to the park.\n", "café ☕ 🎉 \u0000 \uffff", "a".repeat(200)];

type OpenSafetensors = (source: sdk.FlashSource, options?: { name?: string }) => Promise<{ names(): string[]; readTensor(n: string): Promise<Float32Array>; close(): Promise<void> }>;

/** `openSafetensors` when the hf/ module exists (another package is writing it), else undefined. */
export const openSafetensors: OpenSafetensors | undefined = (sdk as unknown as { openSafetensors?: OpenSafetensors }).openSafetensors;

/** Generates a few tokens; every token yielded must be a real id (no silent garbage). */
async function generate(model: LanguageModel, c: Case, problems: string[]): Promise<number[]> {
  const out: number[] = [];
  const temperature = c.run?.temperature ?? 0;
  const vocab = model.config.vocabSize;
  for await (const t of model.generate(PROMPT, { temperature, seed: 7, maxTokens: c.run?.tokens ?? 4 })) {
    if (!(Number.isInteger(t.token) && t.token >= 0 && t.token < vocab)) problems.push(`generate yielded token ${t.token} (vocabulary ${vocab})`);
    out.push(t.token);
  }
  return out;
}

/** Opens a converted container with the watched kernels under `budget`, generates, and disposes it. */
async function generateFlash(flm: Uint8Array, budget: number, c: Case, watch: HeapWatch, problems: string[]): Promise<void> {
  let model: FlashModel | undefined;
  try {
    model = await openFlashModel(new MemorySource(flm), { kernels: watch.kernels, memoryBudget: budget, contextLength: 16 });
    await generate(model, c, problems);
    watch.checkLive("after flash generate");
  } finally {
    await model?.dispose();
  }
}

/** A failure of the test harness itself (not of the code under test): never classified as an outcome. */
class HarnessError extends Error {}

function prepared<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new HarnessError(`mutating the seed failed: ${String(e)}`);
  }
}

/** Runs `c` with the instrumented kernels of `watch`. */
export async function runCase(c: Case, watch: HeapWatch): Promise<CaseResult> {
  const t0 = performance.now();
  const problems: string[] = [];
  let error: unknown;
  watch.begin();
  let budget = Infinity;
  try {
    switch (c.target) {
      case "flm": {
        const seed = await flmSeed(c.seed);
        budget = seed.budget;
        const bytes = prepared(() => applyOps("flm", seed.bytes, c.ops));
        let model: FlashModel | undefined;
        try {
          model = await openFlashModel(new MemorySource(bytes), {
            kernels: watch.kernels,
            memoryBudget: budget,
            contextLength: c.run?.contextLength,
            strategy: c.run?.strategy,
            verifyReads: c.run?.verifyReads,
          });
          watch.checkLive("after open");
          await generate(model, c, problems);
          watch.checkLive("after generate");
          problems.push(...checkFlashCache(model, bytes));
        } finally {
          await model?.dispose();
        }
        break;
      }
      case "llama2c": {
        const seed = llama2cSeeds().find((s) => s.name === c.seed);
        if (!seed) throw new Error(`no seed ${c.seed}`);
        const bin = prepared(() => applyOps("llama2c", seed.bin, c.ops));
        readLlama2cCheckpoint(bin, { activation: seed.activation });
        // Accepted: it must run dense in memory, then convert and run from flash under a budget.
        budget = LLAMA2C_BUDGET;
        let dense: LanguageModel | undefined;
        try {
          dense = await loadLlama2c(bin, seed.tok, { kernels: watch.kernels, contextLength: 16, activation: seed.activation });
          await generate(dense, c, problems);
          watch.checkLive("after dense generate");
        } finally {
          await dense?.dispose();
        }
        const sink = new MemorySink();
        await convertLlama2c(bin, seed.tok, sink, { activation: seed.activation });
        await generateFlash(sink.bytes(), budget, c, watch, problems);
        break;
      }
      case "tokenizer": {
        const seed = llama2cSeeds().find((s) => s.name === c.seed);
        if (!seed) throw new Error(`no seed ${c.seed}`);
        const vocab = Math.abs(new DataView(seed.bin.buffer, seed.bin.byteOffset).getInt32(20, true));
        const bytes = prepared(() => applyOps("tokenizer", seed.tok, c.ops));
        const tok = Llama2cTokenizer.parse(bytes, vocab);
        for (const text of TOKENIZER_TEXTS) {
          const ids = tok.encode(text, true, false);
          for (const id of ids) if (!(Number.isInteger(id) && id >= 0 && id < vocab)) problems.push(`encode gave id ${id}`);
          tok.decode(ids);
        }
        tok.decode([1, ...Array.from({ length: vocab }, (_, i) => i)]);
        break;
      }
      case "hftokenizer": {
        const vocab = 32;
        const bytes = prepared(() => applyOps("hftokenizer", hfTokenizerSeed(), c.ops));
        const tok = HfTokenizer.parse(bytes, vocab);
        for (const text of TOKENIZER_TEXTS) {
          const ids = tok.encode(text, true);
          for (const id of ids) if (!(Number.isInteger(id) && id >= 0)) problems.push(`encode gave id ${id}`);
          for (let i = 1; i < ids.length; i++) tok.pieceBytes(ids[i - 1], ids[i]);
        }
        break;
      }
      case "gguf": {
        // Accepted: every tensor dequantizes; if the model maps, it converts and runs from flash under a budget.
        const seed = (await ggufSeeds()).find((s) => s.name === c.seed);
        if (!seed) throw new Error(`no seed ${c.seed}`);
        const bytes = prepared(() => applyOps("gguf", seed.bytes, c.ops));
        const file = await sdk.openGguf(new MemorySource(bytes));
        for (const t of file.tensors) await file.readF32(t);
        const sink = new MemorySink();
        await sdk.convertGguf(new MemorySource(bytes), sink);
        budget = LLAMA2C_BUDGET;
        await generateFlash(sink.bytes(), budget, c, watch, problems);
        break;
      }
      case "safetensors": {
        if (!openSafetensors) throw new Error("openSafetensors is not available");
        const seed = safetensorsSeeds().find((s) => s.name === c.seed);
        if (!seed) throw new Error(`no seed ${c.seed}`);
        const bytes = prepared(() => applyOps("safetensors", seed.bytes, c.ops));
        const f = await openSafetensors(new MemorySource(bytes), { name: `${c.seed}.safetensors` });
        try {
          for (const n of f.names()) await f.readTensor(n);
        } finally {
          await f.close();
        }
        break;
      }
    }
  } catch (e) {
    if (e instanceof HarnessError) throw e;
    error = e;
  }
  problems.push(...watch.end());
  if (watch.peakBytes > budget) problems.push(`heap peak ${watch.peakBytes} bytes above the ${budget}-byte budget`);
  const ms = performance.now() - t0;
  if (ms > HANG_MS) problems.push(`took ${ms.toFixed(0)} ms (hang?)`);
  return { outcome: classify(error), problems, ms, error };
}

/** One line describing a failed case, with its recipe (paste it into corpus/ once fixed). */
export function describeFailure(c: Case, r: CaseResult): string {
  const msg = r.error instanceof Error ? `${r.error.name}: ${r.error.message.slice(0, 300)}` : "";
  return `${r.outcome} ${r.problems.join("; ")} ${msg}\n  recipe: ${JSON.stringify(c).slice(0, 2000)}`;
}
