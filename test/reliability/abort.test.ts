// AbortSignal at any point (opening, during reads, during compute, between tokens) and concurrent
// generate calls. An abort must stop within one layer, free nothing twice (the instrumented heap
// records double frees), keep the cache consistent and leave the model usable: the next generation
// gives exactly the tokens of an undisturbed one. A second generate while one runs is refused (BUSY).
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AbortedError, AllNeurons, FaultInjectingSource, FlashError, MemorySource, loadLlama2c, openFlashModel,
  type FlashModel, type FlashSource, type NeuronSelector, type OpenFlashOptions,
} from "@flashllm/sdk/internal";
import { STORIES_BIN, STORIES_TOK, readBytes } from "../helpers.js";
import { HeapWatch, ModelTracker, Rng, Tally, budgetFor, checkFlashCache, ffnRange, flmSeed, tokensOf } from "./harness.js";

const PROMPT = "Once upon a time";
const CONTEXT = 128;
let flm: Uint8Array;
let budget: number;
let watch: HeapWatch;
let reference: number[];
const tracker = new ModelTracker();
const tally = new Tally();

beforeAll(async () => {
  flm = (await flmSeed("stories260K-f32")).bytes;
  budget = await budgetFor(flm, 0.4, CONTEXT);
  watch = await HeapWatch.create();
  const m = await open(new MemorySource(flm), { memoryBudget: budget });
  reference = await tokensOf(m, PROMPT, { temperature: 0, maxTokens: 60 });
  await m.dispose();
});
afterEach(async () => {
  await tracker.disposeAll();
  expect(watch.end()).toEqual([]);
});
afterAll(() => console.log(`abort outcomes: ${tally}`));

async function open(source: FlashSource, opts: OpenFlashOptions = {}): Promise<FlashModel> {
  return tracker.track(await openFlashModel(source, { kernels: watch.kernels, contextLength: CONTEXT, ...opts }));
}

/** After an abort: the cache is consistent, nothing was freed twice, and the model still gives the reference tokens. */
async function expectUsable(model: FlashModel): Promise<void> {
  expect(checkFlashCache(model, flm)).toEqual([]);
  watch.checkLive("after abort");
  expect(watch.take()).toEqual([]);
  expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 60 })).toEqual(reference);
}

describe("abort while opening", () => {
  it("an already-aborted signal: nothing is read or allocated", async () => {
    const src = new FaultInjectingSource(new MemorySource(flm));
    const e = await open(src, { signal: AbortSignal.abort("no") }).catch((x) => x);
    expect(e).toBeInstanceOf(AbortedError);
    expect(src.stats.resolved).toBe(0);
    expect(watch.used()).toBe(0);
  });

  for (const verifyReads of [false, true]) {
    it(`at each read of the open${verifyReads ? " (with verifyReads)" : ""}: AbortedError, nothing left allocated, a second open works`, async () => {
      for (let call = 0; call < (verifyReads ? 4 : 3); call++) {
        const ac = new AbortController();
        const src = new FaultInjectingSource(new MemorySource(flm), {
          delayMs: 1000,
          rule: (c) => (c.index === call ? (ac.abort(`abort at read ${call}`), "delay") : undefined),
        });
        const e = await open(src, { signal: ac.signal, memoryBudget: budget, verifyReads }).catch((x) => x);
        expect(e, `read ${call}`).toBeInstanceOf(AbortedError);
        expect(e.message).toBe(`abort at read ${call}`);
        expect(watch.end()).toEqual([]);
        tally.add("open aborted");
      }
      const model = await open(new MemorySource(flm), { memoryBudget: budget, verifyReads });
      await expectUsable(model);
    });
  }
});

describe("abort during generation", () => {
  it("during reads, at random moments: AbortedError within one layer, then the model is usable", async () => {
    const r = new Rng(77);
    const src = new FaultInjectingSource(new MemorySource(flm), { latencyMs: 1 });
    const model = await open(src, { memoryBudget: budget });
    let aborted = 0;
    for (let k = 0; k < 12; k++) {
      const ac = new AbortController();
      let runsAtAbort = -1;
      ac.signal.addEventListener("abort", () => (runsAtAbort = model.flash.stats.layerRuns));
      const timer = setTimeout(() => ac.abort(), r.int(120));
      const prompt = ["Once upon a time", "Lily and Tom went to the park", "One day, a big bear"][k % 3];
      const res = await tokensOf(model, prompt, { temperature: 0, maxTokens: 40, signal: ac.signal }).catch((x) => x);
      clearTimeout(timer);
      if (res instanceof Error) {
        expect(res).toBeInstanceOf(AbortedError);
        expect(model.lastStats?.finishReason).toBe("aborted");
        // The layer running when the signal fired may finish; no other layer starts.
        expect(model.flash.stats.layerRuns - runsAtAbort).toBeLessThanOrEqual(1);
        aborted++;
        tally.add("aborted during reads");
      } else tally.add("finished before the abort");
      expect(checkFlashCache(model, flm)).toEqual([]);
    }
    expect(aborted).toBeGreaterThan(3);
    await expectUsable(model);
  }, 60_000);

  it("a read that hangs: only the signal ends it", async () => {
    const src = new FaultInjectingSource(new MemorySource(flm), { range: ffnRange(flm) });
    const model = await open(src, { memoryBudget: budget });
    await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 5 });
    src.injectNext("hang");
    const ac = new AbortController();
    setTimeout(() => ac.abort("timeout"), 30);
    const e = await tokensOf(model, "Lily and Tom went to the park", { temperature: 0, maxTokens: 40, signal: ac.signal }).catch((x) => x);
    expect(e).toBeInstanceOf(AbortedError);
    expect(src.stats.injected.hang).toBe(1);
    tally.add("hang ended by abort");
    await expectUsable(model);
  });

  it("during compute (fired by the selector, inside a layer), at every layer of a token: stops in that layer or at the next one's start", async () => {
    for (let layer = 0; layer < 5; layer++) {
      const ac = new AbortController();
      let runsAtAbort = -1;
      let calls = 0;
      const all = new AllNeurons(172);
      const selector: NeuronSelector = {
        name: "aborting",
        select(l, x, out) {
          if (++calls === 5 * 7 + layer + 1) {
            runsAtAbort = model.flash.stats.layerRuns;
            ac.abort("compute");
          }
          return all.select(l, x, out);
        },
      };
      const model: FlashModel = await open(new MemorySource(flm), { memoryBudget: budget, selector });
      const e = await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 40, signal: ac.signal }).catch((x) => x);
      expect(e).toBeInstanceOf(AbortedError);
      expect(model.flash.stats.layerRuns - runsAtAbort).toBeLessThanOrEqual(1);
      tally.add("aborted during compute");
      await expectUsable(model);
      await model.dispose();
    }
  });

  it("between tokens, from the consumer: stops before the next token; dense model too", async () => {
    const model = await open(new MemorySource(flm), { memoryBudget: budget });
    const dense = tracker.track(await loadLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK), { kernels: watch.kernels, contextLength: CONTEXT }));
    for (const m of [model, dense]) {
      const ac = new AbortController();
      const got: number[] = [];
      const e = await (async () => {
        for await (const t of m.generate(PROMPT, { temperature: 0, maxTokens: 40, signal: ac.signal })) {
          got.push(t.token);
          if (got.length === 7) ac.abort();
        }
      })().catch((x) => x);
      expect(e).toBeInstanceOf(AbortedError);
      expect(got).toEqual(reference.slice(0, 7));
      expect(m.lastStats?.finishReason).toBe("aborted");
      expect(await tokensOf(m, PROMPT, { temperature: 0, maxTokens: 60 })).toEqual(reference);
      tally.add("aborted between tokens");
    }
    await dense.dispose();
    await expectUsable(model);
  });
});

describe("concurrent generate calls", () => {
  it("a second generate while one runs is refused with BUSY; the first is undisturbed", async () => {
    const src = new FaultInjectingSource(new MemorySource(flm), { latencyMs: 1 });
    const model = await open(src, { memoryBudget: budget });
    const first = tokensOf(model, PROMPT, { temperature: 0, maxTokens: 60 });
    await new Promise((res) => setTimeout(res, 5));
    const e = await tokensOf(model, "Lily and Tom", { temperature: 0, maxTokens: 10 }).catch((x) => x);
    expect(e).toBeInstanceOf(FlashError);
    expect(e.code).toBe("BUSY");
    expect(await first).toEqual(reference);
    tally.add("second generate refused (BUSY)");
    // Once the first is done, the next call runs.
    expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 60 })).toEqual(reference);
  });

  it("a generator paused between tokens still holds the model; returning it releases it", async () => {
    const model = await open(new MemorySource(flm), { memoryBudget: budget });
    const it1 = model.generate(PROMPT, { temperature: 0, maxTokens: 60 });
    expect((await it1.next()).value).toMatchObject({ token: reference[0] });
    const e = await model.generate(PROMPT).next().catch((x) => x);
    expect(e.code).toBe("BUSY");
    await it1.return(undefined as never);
    expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 60 })).toEqual(reference);
    // A consumer that breaks out of its loop releases it too.
    for await (const _ of model.generate(PROMPT, { temperature: 0 })) break;
    expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 60 })).toEqual(reference);
    tally.add("paused generator refused others until returned");
  });

  it("two models sharing one WASM memory generate concurrently without disturbing each other", async () => {
    const a = await open(new FaultInjectingSource(new MemorySource(flm), { latencyMs: 1 }), { memoryBudget: budget });
    const b = await open(new FaultInjectingSource(new MemorySource(flm), { latencyMs: 1 }), { memoryBudget: budget, strategy: "bundled" });
    const [ta, tb] = await Promise.all([tokensOf(a, PROMPT, { temperature: 0, maxTokens: 60 }), tokensOf(b, PROMPT, { temperature: 0, maxTokens: 60 })]);
    expect(ta).toEqual(reference);
    expect(tb).toEqual(reference);
    expect(checkFlashCache(a, flm)).toEqual([]);
    tally.add("two models concurrently");
  });
});
