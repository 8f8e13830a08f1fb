// Long runs and the end of the context.
//
// Soak (FLASHLLM_SOAK_SECONDS, default 14): thousands of tokens through a tight budget, so windows
// and evictions happen at every layer, compared token for token with the same runs without the cache:
//  A. every neuron selected, windowed cache at 40% of the FFN vs the dense in-memory model;
//  B. a sparse, input-dependent selector, strict window, windowed cache at 25% vs `bundled` (the same
//     neurons read every token, nothing kept).
// After warm-up, WASM memory and heap use must not grow at all; RSS and the JS heap must stay flat
// (within noise). The figures are printed.
//
// Context overflow, as documented: generation stops with finishReason "contextFull" when the KV
// cache is full (the token sampled at the last position is still yielded, as run.c prints it); a
// prompt longer than the context, or a forward pass past it, throws CONTEXT_OVERFLOW. There is no
// sliding window, so never a silently wrong token.
import v8 from "node:v8";
import vm from "node:vm";
import { afterAll, describe, expect, it } from "vitest";
import {
  FlashError, Kernels, MemorySource, loadLlama2c, openFlashModel,
  type FlashModel, type LanguageModel, type NeuronSelector,
} from "@flashllm/sdk/internal";
import { STORIES_BIN, STORIES_TOK, readBytes } from "../helpers.js";
import { SOAK_SECONDS, budgetFor, checkFlashCache, flmSeed, mib, tokensOf } from "./harness.js";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const report: string[] = [];
afterAll(() => console.log(report.join("\n")));

const PROMPTS = ["Once upon a time", "Lily and Tom went to the park", "One day, a big bear", "", "The cat", "Sam had a red ball"];

/**
 * A pure function of (layer, x): a fixed "hot" 20% of each layer plus 10% that depend on the input,
 * so consecutive tokens share most neurons (windowing pays) while the set keeps moving (evictions).
 */
class HashSelector implements NeuronSelector {
  readonly name = "hash";
  constructor(private readonly neurons: number) {}
  select(layer: number, x: Float32Array, out: Int32Array): number {
    let seed = layer * 0x9e3779b9;
    for (let i = 0; i < 8; i++) seed = Math.imul(seed ^ Math.round(x[i] * 64), 0x85ebca6b);
    let n = 0;
    for (let i = 0; i < this.neurons; i++) {
      const hot = (Math.imul(i * 0x27d4eb2d + layer, 0x165667b1) >>> 24) < 51;
      const now = (Math.imul(i * 0x27d4eb2d ^ seed, 0xc2b2ae35) >>> 24) < 26;
      if (hot || now) out[n++] = i;
    }
    return n;
  }
}

interface Figures {
  wasm: number;
  heap: number;
  rss: number;
  jsHeap: number;
}

function figures(models: LanguageModel[]): Figures {
  gc();
  const mem = process.memoryUsage();
  return {
    wasm: models.reduce((s, m) => s + m.kernels.memoryBytes, 0),
    heap: models.reduce((s, m) => s + m.kernels.heapUsed, 0),
    rss: mem.rss,
    jsHeap: mem.heapUsed,
  };
}

/** Runs both models on the same prompts and sampling until the deadline; every run must match. */
async function soak(name: string, a: LanguageModel, b: LanguageModel, seconds: number, check: () => void): Promise<void> {
  let tokens = 0;
  let runs = 0;
  let k = 0;
  const full = new Map<string, number>();
  // Warm-up: one full-context run each, so every cache and the JS engine reach their steady state.
  await tokensOf(a, PROMPTS[0], { temperature: 1, seed: 1 });
  await tokensOf(b, PROMPTS[0], { temperature: 1, seed: 1 });
  const before = figures([a, b]);
  const rss: number[] = [before.rss];
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  while (performance.now() < deadline || tokens < 2000) {
    const prompt = PROMPTS[k % PROMPTS.length];
    const sampling = k % 4 === 0 ? { temperature: 0 } : { temperature: [0.8, 1.0, 1.2][k % 3], topP: k % 2 ? 0.9 : 1, seed: 1000 + k };
    const ta = await tokensOf(a, prompt, sampling);
    const tb = await tokensOf(b, prompt, sampling);
    expect(ta, `run ${k}: "${prompt}" ${JSON.stringify(sampling)}`).toEqual(tb);
    const why = a.lastStats!.finishReason;
    full.set(why, (full.get(why) ?? 0) + 1);
    tokens += ta.length;
    runs++;
    k++;
    if (k % 5 === 0) check();
    if (k % 10 === 0) {
      gc();
      rss.push(process.memoryUsage().rss);
    }
  }
  const ms = performance.now() - t0;
  check();
  const after = figures([a, b]);
  report.push(
    `soak ${name}: ${tokens} tokens (×2 models) in ${runs} generations, ${(ms / 1000).toFixed(1)} s, ` +
      `ends ${JSON.stringify(Object.fromEntries(full))}\n` +
      `  WASM memory ${mib(before.wasm)} → ${mib(after.wasm)} MiB, heap in use ${before.heap} → ${after.heap} B, ` +
      `RSS ${mib(before.rss)} → ${mib(after.rss)} MiB (every 10 generations: ${rss.map((r) => mib(r)).join(" ")}), JS heap ${mib(before.jsHeap)} → ${mib(after.jsHeap)} MiB`,
  );
  expect(tokens).toBeGreaterThanOrEqual(2000);
  expect(after.wasm).toBe(before.wasm); // no WASM growth at all after warm-up
  expect(after.heap).toBe(before.heap); // the allocator holds exactly the same blocks
  // RSS moves in steps (V8 and malloc reserve memory in chunks: one step of ~16 MiB is common in the first
  // minute, then it stays flat for minutes); a leak of a few hundred bytes per token would pass that.
  expect(after.rss - before.rss).toBeLessThan(48 * 2 ** 20);
  expect(after.jsHeap - before.jsHeap).toBeLessThan(16 * 2 ** 20);
}

describe("soak", () => {
  it(`A: dense from flash (all neurons, 40% cache) equals the in-memory dense model, memory flat`, async () => {
    const flm = (await flmSeed("stories260K-f32")).bytes;
    const budget = await budgetFor(flm, 0.4);
    const flash = await openFlashModel(new MemorySource(flm), { kernels: await Kernels.load(), memoryBudget: budget });
    const dense = await loadLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK), { kernels: await Kernels.load() });
    expect(flash.memoryPlan.capacity).toBeLessThan(0.5 * 5 * 172);
    await soak("A (flash 40% vs dense)", flash, dense, SOAK_SECONDS * 0.5, () => expect(checkFlashCache(flash, flm)).toEqual([]));
    const s = flash.flash.stats;
    report.push(`  flash A: hit rate ${((100 * s.cacheHits) / s.activeNeurons).toFixed(1)}%, ${(s.bytesRead / s.tokens / 1024).toFixed(1)} KiB read per token, ${s.readRequests} requests`);
    await flash.dispose();
    await dense.dispose();
  }, 600_000);

  it(`B: sparse selector, strict window, windowed 25% cache equals the same reads without a cache (bundled), memory flat`, async () => {
    const flm = (await flmSeed("stories260K-f32")).bytes;
    const budget = await budgetFor(flm, 0.25);
    const windowed: FlashModel = await openFlashModel(new MemorySource(flm), {
      kernels: await Kernels.load(), memoryBudget: budget, selector: new HashSelector(172), window: 3, strictWindow: true,
    });
    const bundled = await openFlashModel(new MemorySource(flm), { kernels: await Kernels.load(), strategy: "bundled", selector: new HashSelector(172) });
    await soak("B (windowed 25% vs bundled)", windowed, bundled, SOAK_SECONDS * 0.5, () => expect(checkFlashCache(windowed, flm)).toEqual([]));
    const s = windowed.flash.stats;
    const sb = bundled.flash.stats;
    report.push(
      `  windowed B: ${(s.activeNeurons / s.layerRuns).toFixed(1)} active neurons per layer, hit rate ${((100 * s.cacheHits) / s.activeNeurons).toFixed(1)}%, ` +
        `${(s.bytesRead / s.tokens / 1024).toFixed(1)} KiB read per token (bundled: ${(sb.bytesRead / sb.tokens / 1024).toFixed(1)} KiB)`,
    );
    expect(s.cacheHits).toBeGreaterThan(0);
    await windowed.dispose();
    await bundled.dispose();
  }, 600_000);
});

describe("context overflow", () => {
  it("generation stops with contextFull at the end of the KV cache, its tokens a prefix of a longer context's", async () => {
    const flm = (await flmSeed("stories260K-f32")).bytes;
    const k = await Kernels.load();
    const long = await openFlashModel(new MemorySource(flm), { kernels: k });
    const dense = await loadLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK), { kernels: k, contextLength: 32 });
    for (const ctx of [1, 5, 32]) {
      const short = await openFlashModel(new MemorySource(flm), { kernels: k, contextLength: ctx });
      const prompt = ctx >= 5 ? "Once upon a time" : "";
      const promptTokens = short.encodePrompt(prompt).length;
      const got: { token: number; position: number }[] = [];
      for await (const t of short.generate(prompt, { temperature: 0, stopTokens: [] })) got.push(t);
      expect(short.lastStats?.finishReason).toBe("contextFull");
      expect(got.length).toBe(ctx - promptTokens + 1);
      expect(got.at(-1)!.position).toBe(ctx); // the last sampled token is yielded, never fed
      const ref = await tokensOf(long, prompt, { temperature: 0, maxTokens: got.length, stopTokens: [] });
      expect(got.map((t) => t.token)).toEqual(ref);
      if (ctx === 32) {
        expect(await tokensOf(dense, prompt, { temperature: 0, stopTokens: [] })).toEqual(ref);
        expect(dense.lastStats?.finishReason).toBe("contextFull");
      }
      // maxTokens beyond the context changes nothing.
      expect(await tokensOf(short, prompt, { temperature: 0, stopTokens: [], maxTokens: 10_000 })).toEqual(ref);
      expect(short.lastStats?.finishReason).toBe("contextFull");
      await short.dispose();
    }
    await long.dispose();
    await dense.dispose();
    expect(k.heapUsed).toBe(0);
    report.push("context overflow: generation ends with finishReason contextFull at the last KV position (contexts 1, 5, 32 checked against a 512-position run)");
  });

  it("a prompt longer than the context, or a position past it, throws CONTEXT_OVERFLOW; the model stays usable", async () => {
    const flm = (await flmSeed("stories260K-f32")).bytes;
    const model = await openFlashModel(new MemorySource(flm), { contextLength: 8 });
    const before = await tokensOf(model, "Once", { temperature: 0 });
    const long = "Once upon a time there was a little girl named Lily";
    const e = await tokensOf(model, long, { temperature: 0 }).catch((x) => x);
    expect(e).toBeInstanceOf(FlashError);
    expect(e.code).toBe("CONTEXT_OVERFLOW");
    expect(e.details).toMatchObject({ contextLength: 8 });
    expect(() => model.encodePrompt(long)).toThrow(/context holds 8/);
    for (const pos of [8, 9, 1e9, -1]) {
      const f = await model.transformer.forward(1, pos).catch((x) => x);
      expect(f.code, `pos ${pos}`).toBe("CONTEXT_OVERFLOW");
    }
    expect(await tokensOf(model, "Once", { temperature: 0 })).toEqual(before);
    await model.dispose();
  });

  it("context and window options are checked: clamped to seqLen, non-integers refused", async () => {
    const flm = (await flmSeed("stories260K-f32")).bytes;
    const big = await openFlashModel(new MemorySource(flm), { contextLength: 100_000 });
    expect(big.transformer.contextLength).toBe(512);
    await big.dispose();
    for (const contextLength of [0, -1, 1.5, Number.NaN]) {
      const e = await openFlashModel(new MemorySource(flm), { contextLength }).catch((x) => x);
      expect(e.code, `contextLength ${contextLength}`).toBe("BAD_ARGUMENT");
    }
    for (const window of [-1, 0.5, Number.NaN, Infinity]) {
      const e = await openFlashModel(new MemorySource(flm), { window }).catch((x) => x);
      expect(e.code, `window ${window}`).toBe("BAD_ARGUMENT");
    }
  });
});
