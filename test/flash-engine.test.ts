// The flash path end to end on the shipped stories260K: converted to .flm, FFN read neuron by neuron
// through the cache. With every neuron selected, the logits must equal the in-memory dense model's
// bit for bit (any strategy, any budget, any source) and the tokens must equal run.c's.
import { beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BudgetError, FixedSelector, FlashError, Kernels, MemorySink, MemorySource, SourceError, convertLlama2c, loadLlama2c, openFlashModel,
  type FlashSource, type LanguageModel, type ReadRequest,
} from "@flashllm/sdk/internal";
import { NodeFileSource, ThreadedFileSource } from "@flashllm/node-io";
import { STORIES_BIN, STORIES_REF, STORIES_TOK, readBytes, readJson } from "./helpers.js";

let flmF32: Uint8Array;
let flmQ8: Uint8Array;
let dense: LanguageModel;
const prompt = "Once upon a time";

async function convert(dtype: "f32" | "q8") {
  const sink = new MemorySink();
  await convertLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK), sink, { dtype });
  return sink.bytes();
}

/** Logits of a forced token sequence, as raw bits. */
async function logitBits(model: LanguageModel, tokens: number[]): Promise<Uint32Array[]> {
  const out: Uint32Array[] = [];
  for (let pos = 0; pos < tokens.length; pos++) {
    const l = await model.transformer.forward(tokens[pos], pos);
    out.push(new Uint32Array(l.slice().buffer));
  }
  return out;
}

const greedy = readJson(`${STORIES_REF}/greedy.json`).cases;
const refTokens: number[] = greedy[1].tokens; // "Once upon a time", 257 tokens from run.c
let denseBits: Uint32Array[];

beforeAll(async () => {
  flmF32 = await convert("f32");
  flmQ8 = await convert("q8");
  dense = await loadLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK));
  denseBits = await logitBits(dense, refTokens.slice(0, 40));
});

describe("flash engine, every neuron selected", () => {
  for (const strategy of ["windowed", "bundled", "naive"] as const) {
    for (const budget of [undefined, 0.5]) {
      it(`${strategy}, budget ${budget ? `${budget * 100}% of the file` : "unlimited"}: logits bit-identical to the dense model`, async () => {
        const memoryBudget = budget ? Math.floor(flmF32.byteLength * budget) : undefined;
        const model = await openFlashModel(new MemorySource(flmF32), { strategy, memoryBudget, contextLength: 64 });
        if (memoryBudget) {
          expect(model.memoryPlan.capacity).toBeLessThan(model.config.hiddenDim); // the chunked path runs
          expect(model.wasmMemoryBytes).toBeLessThanOrEqual(memoryBudget + model.memoryPlan.overheadBytes);
        }
        const bits = await logitBits(model, refTokens.slice(0, 40));
        for (let p = 0; p < bits.length; p++) expect(bits[p], `position ${p}`).toEqual(denseBits[p]);
        const s = model.flash.stats;
        expect(s.tokens).toBe(40);
        expect(s.activeNeurons).toBe(40 * 5 * 172);
        if (memoryBudget) expect(model.wasmMemoryBytes).toBeLessThanOrEqual(memoryBudget + model.memoryPlan.overheadBytes);
        await model.dispose();
      });
    }
  }

  it("greedy generation from a .flm file on disk (NodeFileSource, 85% budget, 256 positions of KV cache) gives run.c's 257 tokens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flashllm-"));
    const path = join(dir, "stories260K.flm");
    writeFileSync(path, flmF32);
    const source = await NodeFileSource.open(path);
    const budget = Math.floor(flmF32.byteLength * 0.85);
    const model = await openFlashModel(source, { memoryBudget: budget, contextLength: 256 });
    expect(model.memoryPlan.capacity).toBeLessThan(5 * 172); // not every neuron fits: evictions happen
    const tokens = [...greedy[1].prompt_tokens];
    for await (const t of model.generate(prompt, { temperature: 0, maxTokens: 257 - tokens.length })) tokens.push(t.token);
    expect(tokens).toEqual(refTokens);
    expect(model.wasmMemoryBytes).toBeLessThanOrEqual(budget + model.memoryPlan.overheadBytes);
    const s = model.flash.stats;
    expect(s.bytesRead).toBeGreaterThan(0);
    expect(s.cacheHits + s.neuronsLoaded - s.gapNeurons).toBeGreaterThanOrEqual(s.activeNeurons);
    await model.dispose();
    await source.close();
  });

  it("through a reader thread (ThreadedFileSource) into a shared WASM memory, 80% budget: run.c's 257 tokens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flashllm-"));
    const path = join(dir, "stories260K.flm");
    writeFileSync(path, flmF32);
    const source = await ThreadedFileSource.open(path, { maxInFlight: 8 });
    const budget = Math.floor(flmF32.byteLength * 0.8);
    const kernels = await Kernels.load(undefined, { sharedMemory: true });
    const model = await openFlashModel(source, { memoryBudget: budget, contextLength: 256, kernels });
    expect(model.memoryPlan.capacity).toBeLessThan(5 * 172);
    const tokens = [...greedy[1].prompt_tokens];
    for await (const t of model.generate(prompt, { temperature: 0, maxTokens: 257 - tokens.length })) tokens.push(t.token);
    expect(tokens).toEqual(refTokens);
    expect(model.flash.stats.bytesRead).toBeGreaterThan(0);
    expect(source.stats.requests).toBeGreaterThan(0);
    await model.dispose();
    await source.close();
  });

  it("the windowed cache reuses neurons across tokens: a fixed active set is read once", async () => {
    const sets = Array.from({ length: 5 }, (_, l) => Array.from({ length: 20 }, (_, i) => (i * 7 + l) % 172));
    const model = await openFlashModel(new MemorySource(flmF32), { selector: new FixedSelector(sets), contextLength: 32 });
    for (let pos = 0; pos < 10; pos++) await model.transformer.forward(refTokens[pos], pos);
    const s = model.flash.stats;
    expect(s.activeNeurons).toBe(10 * 5 * 20);
    expect(s.neuronsLoaded - s.gapNeurons).toBe(5 * 20); // only the first token reads
    expect(s.cacheHits).toBe(9 * 5 * 20);
    await model.dispose();
  });
});

describe("naive with naiveComputes \"selected\" (the second baseline)", () => {
  // Input-independent but uneven sets: some layers dense, some sparse, ids spread over the layer.
  const sets = Array.from({ length: 5 }, (_, l) => Array.from({ length: 172 }, (_, i) => i).filter((i) => (i * 37 + l * 11) % 7 < 1 + l));
  for (const budget of [undefined, 0.5]) {
    it(`reads the whole FFN but computes only the selected neurons: the bundled strategy's logits bit for bit (budget ${budget ? "50%" : "unlimited"})`, async () => {
      const memoryBudget = budget ? Math.floor(flmF32.byteLength * budget) : undefined;
      const open = (strategy: "naive" | "bundled") =>
        openFlashModel(new MemorySource(flmF32), { strategy, memoryBudget, contextLength: 32, selector: new FixedSelector(sets), naiveComputes: "selected" });
      const naive = await open("naive");
      const bundled = await open("bundled");
      if (memoryBudget) expect(naive.memoryPlan.capacity).toBeLessThan(172); // the chunked path runs
      const tokens = refTokens.slice(0, 12);
      const a = await logitBits(naive, tokens);
      const b = await logitBits(bundled, tokens);
      for (let p = 0; p < tokens.length; p++) expect(a[p], `position ${p}`).toEqual(b[p]);
      // Not the dense result: the selection really is applied.
      expect(a[5]).not.toEqual(denseBits[5]);
      const selected = sets.reduce((n, s) => n + s.length, 0);
      expect(naive.flash.stats.neuronsLoaded).toBe(tokens.length * 5 * 172); // everything read
      expect(bundled.flash.stats.neuronsLoaded - bundled.flash.stats.gapNeurons).toBe(tokens.length * selected);
      await naive.dispose();
      await bundled.dispose();
    });
  }
});

describe("q8", () => {
  it("top-1 agreement with f32 on the reference prompts, and the logit error (reported)", async () => {
    const q8 = await openFlashModel(new MemorySource(flmQ8), { contextLength: 256 });
    let agree = 0;
    let total = 0;
    let maxErr = 0;
    for (const c of greedy) {
      const toks: number[] = c.tokens.slice(0, 128);
      for (let pos = 0; pos + 1 < toks.length; pos++) {
        const lq = (await q8.transformer.forward(toks[pos], pos)).slice();
        const lf = await dense.transformer.forward(toks[pos], pos);
        let aq = 0, af = 0;
        for (let v = 0; v < lq.length; v++) {
          if (lq[v] > lq[aq]) aq = v;
          if (lf[v] > lf[af]) af = v;
          maxErr = Math.max(maxErr, Math.abs(lq[v] - lf[v]));
        }
        agree += aq === af ? 1 : 0;
        total++;
      }
    }
    console.log(`q8 vs f32 on ${total} teacher-forced positions: top-1 agreement ${((100 * agree) / total).toFixed(1)}%, max |logit error| ${maxErr.toFixed(4)}; q8 file ${flmQ8.byteLength} B vs f32 ${flmF32.byteLength} B`);
    expect(agree / total).toBeGreaterThan(0.9);
    await q8.dispose();
  });
});

describe("budget and bad storage", () => {
  it("a budget below what the model must keep fails with the numbers", async () => {
    const err = await openFlashModel(new MemorySource(flmF32), { memoryBudget: 200_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(BudgetError);
    expect(err.code).toBe("BUDGET_TOO_SMALL");
    expect(err.message).toMatch(/resident weights \d+/);
    expect(err.details.minimum).toBeGreaterThan(200_000);
  });

  it("a read error surfaces from generate; the cache stays consistent and the next call works", async () => {
    let failNext = false;
    const inner = new MemorySource(flmF32);
    const flaky: FlashSource = {
      byteLength: inner.byteLength,
      async read(reqs: readonly ReadRequest[], signal?: AbortSignal) {
        if (failNext) {
          failNext = false;
          throw new SourceError("injected failure", reqs[0].offset, reqs[0].length);
        }
        return inner.read(reqs, signal);
      },
      close: () => inner.close(),
    };
    const model = await openFlashModel(flaky, { memoryBudget: Math.floor(flmF32.byteLength * 0.6), contextLength: 64 });
    const run = async () => {
      const out: number[] = [];
      for await (const t of model.generate(prompt, { temperature: 0, maxTokens: 30 })) out.push(t.token);
      return out;
    };
    const first = await run();
    failNext = true;
    const err = await run().catch((e) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect(model.lastStats?.finishReason).toBe("error");
    expect(await run()).toEqual(first);
    expect(first).toEqual(refTokens.slice(5, 35));
    await model.dispose();
  });

  it("a corrupted .flm is refused with a typed error naming the section", async () => {
    const bad = flmF32.slice();
    const m = JSON.parse(new TextDecoder().decode(bad.subarray(16, 16 + new DataView(bad.buffer).getUint32(12, true))));
    const resident = m.sections.find((s: { name: string }) => s.name === "resident");
    bad[resident.offset + 100] ^= 0xff;
    const err = await openFlashModel(new MemorySource(bad)).catch((e) => e);
    expect(err).toBeInstanceOf(FlashError);
    expect(err.code).toBe("CHECKSUM_MISMATCH");
    expect(err.message).toMatch(/resident/);
  });
});
