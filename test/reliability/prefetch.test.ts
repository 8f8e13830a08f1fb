// The lookahead prefetch (FlashFfn `prefetch`, used by the benchmarks): reads of the next layer's
// neurons run while this layer computes. Faults on those reads must be invisible (rolled back, read
// again on demand), and an abort that leaves one in flight must neither corrupt the cache nor let the
// read land in freed memory when the model is disposed at once.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  residentData,
  AbortedError, FaultInjectingSource, FlashFfn, FormatError, LanguageModel, Llama2cTokenizer, MemorySource, SourceError,
  Transformer, WeightStore, openFlm, planMemory,
  type FfnStorageLayout, type FlashSource, type NeuronSelector, type ReadRequest,
} from "@flashllm/sdk/internal";
import { HeapWatch, ModelTracker, Tally, checkFlashCache, ffnRange, flmSeed, tokensOf } from "./harness.js";

const CONTEXT = 128;
const PROMPT = "Once upon a time";
let flm: Uint8Array;
let watch: HeapWatch;
const tracker = new ModelTracker();
const tally = new Tally();

beforeAll(async () => {
  flm = (await flmSeed("stories260K-f32")).bytes;
  watch = await HeapWatch.create();
});
afterEach(async () => {
  await tracker.disposeAll();
  expect(watch.end()).toEqual([]);
});
afterAll(() => console.log(`prefetch outcomes: ${tally}`));

/** A fixed hot set per layer plus input-dependent neurons; `predictNext` names layer+1's from this layer's input. */
class Lookahead implements NeuronSelector {
  readonly name = "lookahead";
  onPredict?: (layer: number) => void;
  select(layer: number, x: Float32Array, out: Int32Array): number {
    return this.pick(layer, x, out);
  }
  predictNext(layer: number, x: Float32Array, out: Int32Array): number {
    this.onPredict?.(layer);
    return this.pick(layer + 1, x, out);
  }
  private pick(layer: number, x: Float32Array, out: Int32Array): number {
    let seed = layer * 0x9e3779b9;
    for (let i = 0; i < 4; i++) seed = Math.imul(seed ^ Math.round(x[i] * 16), 0x85ebca6b);
    let n = 0;
    for (let i = 0; i < 172; i++) {
      const hot = (Math.imul(i * 0x27d4eb2d + layer, 0x165667b1) >>> 24) < 64;
      const now = (Math.imul(i * 0x27d4eb2d ^ seed, 0xc2b2ae35) >>> 24) < 20;
      if (hot || now) out[n++] = i;
    }
    return n;
  }
}

/** Builds a model on FlashFfn directly (openFlashModel has no prefetch option), as the benchmark does. */
async function build(source: FlashSource, opts: { prefetch: boolean; verify?: boolean; cacheShare?: number; selector?: Lookahead }): Promise<LanguageModel & { flash: FlashFfn }> {
  const k = watch.kernels;
  const file = await openFlm(source);
  const m = file.manifest;
  const c = m.config;
  const layout: FfnStorageLayout = {
    dim: c.dim, neurons: c.hiddenDim, nLayers: c.nLayers, bundleBytes: m.ffn.bundleBytes, bundleStride: m.ffn.bundleStride,
    dtype: m.ffn.dtype, gated: m.ffn.gated, activation: c.activation, layerOffsets: Array.from({ length: c.nLayers }, (_, l) => file.ffnLayerOffset(l)),
  };
  const full = planMemory(m, layout, "windowed", CONTEXT, k.memoryBytes);
  const budget = full.totalBytes - full.cacheBytes + Math.ceil((opts.cacheShare ?? 0.3) * full.cacheBytes);
  const plan = planMemory(m, layout, "windowed", CONTEXT, k.memoryBytes, budget);
  if (opts.verify) await file.loadBundleCrcs();
  const tokenizer = Llama2cTokenizer.parse(await file.readTokenizer(), c.vocabSize);
  const store = new WeightStore(k);
  for (const [name, t] of await file.readResident()) {
    const cols = t.shape[t.shape.length - 1];
    const rows = t.shape.length > 1 ? t.shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
    store.upload(name, residentData(t), rows, cols);
  }
  if (c.sharedClassifier) store.alias("output", "tok_embeddings");
  const ffn = new FlashFfn(k, source, layout, {
    strategy: "windowed", capacity: plan.capacity, selector: opts.selector ?? new Lookahead(), prefetch: opts.prefetch,
    verifyBundle: opts.verify ? (l, i, b) => file.verifyBundle(l, i, b) : undefined,
  });
  const model = new LanguageModel(k, new Transformer(k, c, store, ffn, CONTEXT), tokenizer, ffn, store) as LanguageModel & { flash: FlashFfn };
  model.flash = ffn;
  return tracker.track(model);
}

const asFlash = (m: LanguageModel & { flash: FlashFfn }) => m as unknown as Parameters<typeof checkFlashCache>[0];

describe("lookahead prefetch", () => {
  it("prefetching changes when neurons are read, not the tokens", async () => {
    const plain = await build(new MemorySource(flm), { prefetch: false });
    const ahead = await build(new MemorySource(flm), { prefetch: true });
    for (const prompt of [PROMPT, "Lily and Tom went to the park"]) {
      expect(await tokensOf(ahead, prompt, { temperature: 0, maxTokens: 60 })).toEqual(await tokensOf(plain, prompt, { temperature: 0, maxTokens: 60 }));
    }
    expect(ahead.flash.prefetchStats.neurons).toBeGreaterThan(0);
    expect(checkFlashCache(asFlash(ahead), flm)).toEqual([]);
  });

  it("faults on any read (prefetch or on demand): same tokens, or the on-demand read's error; cache consistent", async () => {
    const plain = await build(new MemorySource(flm), { prefetch: false });
    const counter = new FaultInjectingSource(new MemorySource(flm));
    const probe = await build(counter, { prefetch: true });
    await tokensOf(probe, PROMPT, { temperature: 0, maxTokens: 50 });
    const perRead = 1 / counter.stats.calls; // about one fault per generation
    await probe.dispose();
    const src = new FaultInjectingSource(new MemorySource(flm), {
      seed: 41, range: ffnRange(flm), delayMs: 2,
      rates: { error: 0.25 * perRead, short: 0.15 * perRead, corrupt: 0.25 * perRead, zeros: 0.15 * perRead, delay: 0.2 * perRead },
    });
    const model = await build(src, { prefetch: true, verify: true });
    for (const prompt of [PROMPT, "Lily and Tom went to the park", "One day, a big bear", "", "The cat", "Sam had a red ball"]) {
      const want = await tokensOf(plain, prompt, { temperature: 0, maxTokens: 50 });
      for (let attempt = 0; ; attempt++) {
        try {
          expect(await tokensOf(model, prompt, { temperature: 0, maxTokens: 50 })).toEqual(want);
          tally.add(attempt === 0 ? "completed" : "completed after retry");
          break;
        } catch (e) {
          if (!(e instanceof SourceError) && !(e instanceof FormatError && e.code === "CHECKSUM_MISMATCH")) throw e;
          tally.add(`failed:${(e as SourceError).code}`);
          expect(attempt).toBeLessThan(40);
        } finally {
          expect(checkFlashCache(asFlash(model), flm)).toEqual([]);
        }
      }
    }
    tally.add(`faults injected ${JSON.stringify(src.stats.injected)}`);
    expect(model.flash.prefetchStats.issued).toBeGreaterThan(0);
  }, 60_000);

  it("abort with a prefetch in flight: the model stays usable, and an immediate dispose waits for the read (no write into freed memory)", async () => {
    // A conformant slow backend: an aborted call still settles only after its reads have written.
    class SlowSource implements FlashSource {
      slow = false;
      constructor(readonly inner: FlashSource) {}
      get byteLength(): number {
        return this.inner.byteLength;
      }
      async read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
        if (this.slow) await new Promise((r) => setTimeout(r, 40));
        await this.inner.read(requests); // the "device" finishes regardless of the signal
        if (signal?.aborted) throw new AbortedError();
      }
      close(): Promise<void> {
        return this.inner.close();
      }
    }
    const plain = await build(new MemorySource(flm), { prefetch: false });
    const want = await tokensOf(plain, PROMPT, { temperature: 0, maxTokens: 40 });
    for (const disposeAtOnce of [false, true]) {
      const selector = new Lookahead();
      const src = new SlowSource(new MemorySource(flm));
      const model = await build(src, { prefetch: true, selector });
      await tokensOf(model, "Lily and Tom went to the park", { temperature: 0, maxTokens: 10 });
      const ac = new AbortController();
      let predictions = 0;
      selector.onPredict = () => {
        // Layer 1 of the 3rd token is about to prefetch layer 2's misses: abort now, so that read is
        // issued slow and already aborted, and the forward pass stops at layer 2's start with it pending.
        if (++predictions === 4 * 2 + 2) {
          src.slow = true;
          ac.abort();
        }
      };
      const e = await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 40, signal: ac.signal }).catch((x) => x);
      expect(e).toBeInstanceOf(AbortedError);
      selector.onPredict = undefined;
      src.slow = false;
      if (!disposeAtOnce) {
        expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 40 })).toEqual(want);
        expect(checkFlashCache(asFlash(model), flm)).toEqual([]);
        tally.add("aborted with prefetch pending, then generated");
        continue;
      }
      const pending = (model.flash as unknown as { pending?: unknown }).pending !== undefined;
      expect(pending, "the abort left a prefetch in flight").toBe(true);
      const matrix = (model.flash as unknown as { matrix: { ptr: number; bytes: number } }).matrix;
      await model.dispose();
      // Mark the freed slot matrix (as a reuse would) and wait: a late prefetch write would change it.
      const view = () => watch.kernels.u8(matrix.ptr + 16, matrix.bytes - 16);
      view().fill(0x5a);
      await new Promise((r) => setTimeout(r, 80));
      const changed = view().findIndex((b) => b !== 0x5a);
      expect(changed, "a prefetch wrote into freed memory after dispose").toBe(-1);
      tally.add(`aborted with prefetch ${pending ? "pending" : "settled"}, disposed at once`);
    }
  });
});
