// Co-activation order of neurons on storage (sparsity/neuron-order.ts): the order is a bijection that
// keeps clusters of neurons firing together contiguous; writing a model in that order moves every
// neuron's bundle, predictor rows and CRC together, so the model computes the same function (run.c's
// greedy tokens, dense logits within float tolerance) and the predictor selects the same neurons under
// their new positions; and on text calibration never saw, a token's active neurons fall into fewer
// storage runs, so exact selection issues fewer read requests.
import { beforeAll, describe, expect, it } from "vitest";
import {
  ActivationRecorder, FlashError, GateExactSelector, TraceSelector, measureTrace, LowRankPredictor, MemorySink, MemorySource, checkPermutation, coactivationOrder, convertLlama2c,
  corpusSequences, invertOrder, openFlashModel, openFlm, permutePredictorLayer, readPredictor, recordCorpus, storageRuns, writeWithPredictor,
  type FlmFile, type Predictor,
} from "@flashllm/sdk/internal";
import { readFileSync } from "node:fs";
import { ROOT, readBytes, readJson, rng } from "./helpers.js";

const RELU_BIN = `${ROOT}packages/node-io/models/stories260K-relu/stories260K_relu.bin`;
const RELU_TOK = `${ROOT}packages/node-io/models/stories260K-relu/tok512.bin`;
const calibText = readFileSync(`${ROOT}test/data/tinystories_400k.txt`, "utf8");
const heldOut = readFileSync(`${ROOT}test/data/tinystories_tail60k.txt`, "utf8");
const H = 172;
const L = 5;
const DIM = 64;

/** Records `positions` positions of ReLU activity (h != 0) of `flm` on `text`. */
async function record(flm: Uint8Array, text: string, positions: number): Promise<ActivationRecorder> {
  let recorder!: ActivationRecorder;
  const dense = await openFlashModel(new MemorySource(flm), { selector: "all", contextLength: 256, onActivations: (...a) => recorder.record(...a) });
  recorder = new ActivationRecorder(DIM, H, L, positions, { kind: "nonzero" });
  await recordCorpus(dense, corpusSequences(text, dense.tokenizer, 256), recorder);
  await dense.dispose();
  return recorder;
}

/** A random predictor (shapes of stories260K) whose threshold keeps roughly a fifth of the neurons. */
function randomPredictor(seed: number): Predictor {
  const r = rng(seed);
  const rank = 8;
  const fill = (n: number, s: number) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * s);
  const layer = () => ({ rank, a: fill(rank * DIM, 0.3), b: fill(H * rank, 1), c: fill(H, 0.5), threshold: 0.6 });
  // With a trained lookahead (entry l names layer l+1's neurons): its rows follow layer l+1's order.
  return { dim: DIM, hiddenDim: H, recallTarget: 0.9, layers: Array.from({ length: L }, layer), lookahead: Array.from({ length: L - 1 }, layer) };
}

function bundle(file: FlmFile, bytes: Uint8Array[], l: number, i: number): Uint8Array {
  const s = file.manifest.ffn.bundleStride;
  return bytes[l].subarray(i * s, (i + 1) * s);
}

describe("coactivationOrder on planted clusters", () => {
  it("is a bijection that keeps each cluster of co-firing neurons contiguous", () => {
    const h = 120;
    const groups = 12; // 10 neurons each, scattered over the layer
    const r = rng(7);
    const perm = invertOrder(Int32Array.from(Array.from({ length: h }, (_, i) => i).sort(() => r() - 0.5)));
    const groupOf = (i: number) => Math.floor(perm[i] / (h / groups));
    const n = 3000;
    const active = new Uint8Array(n * h);
    for (let p = 0; p < n; p++) {
      const on = new Set([Math.floor(r() * groups), Math.floor(r() * groups)]);
      for (let i = 0; i < h; i++) if (on.has(groupOf(i)) && r() < 0.9) active[p * h + i] = 1; // each member fires 90% of the time
    }
    for (let p = 0; p < n; p++) for (let i = 0; i < 5; i++) active[p * h + i] = 0; // five neurons never fire
    const order = coactivationOrder(active, h);
    checkPermutation(order, h);
    // Never-active neurons go last; every cluster occupies one contiguous stretch before them.
    expect(Array.from(order.subarray(h - 5)).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);
    for (let g = 0; g < groups; g++) {
      const at = Array.from(order.subarray(0, h - 5)).flatMap((i, pos) => (groupOf(i) === g ? [pos] : []));
      expect(Math.max(...at) - Math.min(...at) + 1, `cluster ${g} at ${at}`).toBe(at.length);
    }
    // Hence a position's active set falls into the runs of its ~1.92 clusters (each 0.9 + 9·0.9·0.1 = 1.71
    // runs, members firing 90% of the time: 3.28 expected) instead of ~16 scattered ones.
    const identity = Int32Array.from({ length: h }, (_, i) => i);
    expect(storageRuns(active, h, order).runs).toBeLessThan(3.4);
    expect(storageRuns(active, h, identity).runs).toBeGreaterThan(10);
  });

  it("is a bijection for any activity, including none at all", () => {
    for (const [seed, density] of [[1, 0], [2, 0.02], [3, 0.5], [4, 1]] as const) {
      const r = rng(seed);
      const h = 37;
      const active = Uint8Array.from({ length: 50 * h }, () => (r() < density ? 1 : 0));
      const order = coactivationOrder(active, h);
      expect(Array.from(order).sort((a, b) => a - b)).toEqual(Array.from({ length: h }, (_, i) => i));
    }
  });

  it("refuses what is not a permutation, naming the problem", () => {
    expect(() => checkPermutation(Int32Array.from([0, 1, 1]), 3)).toThrow(/position 2 holds 1, which came earlier/);
    expect(() => checkPermutation(Int32Array.from([0, 3, 1]), 3)).toThrow(/position 1 holds 3/);
    expect(() => checkPermutation(Int32Array.from([0, 1]), 3)).toThrow(/has 2 entries, needs 3/);
    expect(() => coactivationOrder(new Uint8Array(10), 3)).toThrow(FlashError);
  });
});

describe("stories260K-relu stored in co-activation order", () => {
  let flm: Uint8Array;
  let orders: Int32Array[];
  let predictor: Predictor;
  let before: FlmFile;
  let after: FlmFile;
  let afterBytes: Uint8Array;

  beforeAll(async () => {
    const sink = new MemorySink();
    await convertLlama2c(readBytes(RELU_BIN), readBytes(RELU_TOK), sink, { activation: "relu" });
    flm = sink.bytes();
    const recorder = await record(flm, calibText, 2500);
    orders = recorder.layers.map((l) => coactivationOrder(l.active.subarray(0, recorder.positions * H), H));
    predictor = randomPredictor(11);
    before = await openFlm(new MemorySource(flm));
    const out = new MemorySink();
    await writeWithPredictor(before, predictor, out, { test: true }, undefined, orders);
    afterBytes = out.bytes();
    after = await openFlm(new MemorySource(afterBytes));
  }, 30_000);

  it("moves each neuron's bundle and CRC together; the predictor's fingerprint is the permuted FFN's", async () => {
    const old = await Promise.all(before.manifest.ffn.layers.map((x) => before.readSection(x.section)));
    const moved = await Promise.all(after.manifest.ffn.layers.map((x) => after.readSection(x.section)));
    await before.loadBundleCrcs();
    await after.loadBundleCrcs();
    let displaced = 0;
    for (let l = 0; l < L; l++) {
      for (let p = 0; p < H; p++) {
        expect(bundle(after, moved, l, p)).toEqual(bundle(before, old, l, orders[l][p]));
        expect(after.bundleCrc(l, p)).toBe(before.bundleCrc(l, orders[l][p]));
        after.verifyBundle(l, p, bundle(after, moved, l, p)); // the stored table checks the moved bundle
        if (orders[l][p] !== p) displaced++;
      }
    }
    expect(displaced).toBeGreaterThan(0.9 * L * H); // the order really is different
    expect(after.manifest.predictor!.modelFingerprint).toBe(after.section("ffn.crc").crc32);
    expect(after.section("ffn.crc").crc32).not.toBe(before.section("ffn.crc").crc32);
    // Rows of B and entries of c moved with their neurons; A and thresholds are per layer.
    const stored = (await readPredictor(after))!;
    for (let l = 0; l < L; l++) {
      const p = predictor.layers[l];
      const q = stored.layers[l];
      expect(q.a).toEqual(p.a);
      expect(q.threshold).toBe(p.threshold);
      for (let k = 0; k < H; k++) {
        const o = orders[l][k];
        expect(q.c[k]).toBe(p.c[o]);
        expect(q.b.subarray(k * p.rank, (k + 1) * p.rank)).toEqual(p.b.subarray(o * p.rank, (o + 1) * p.rank));
      }
    }
    expect(permutePredictorLayer(predictor.layers[0], orders[0]).b).toEqual(stored.layers[0].b);
  });

  it("computes the same function: run.c's greedy tokens, dense logits within float tolerance", async () => {
    const a = await openFlashModel(new MemorySource(flm), { selector: "all", contextLength: 256 });
    const b = await openFlashModel(new MemorySource(afterBytes), { selector: "all", contextLength: 256 });
    const toks = a.tokenizer.encode("Once upon a time there was a girl named Lily. She liked to play in the park with her dog.");
    for (let pos = 0; pos < toks.length; pos++) {
      const x = (await a.transformer.forward(toks[pos], pos)).slice();
      const y = await b.transformer.forward(toks[pos], pos);
      let worst = 0;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]) / (1 + Math.abs(x[i])));
      expect(worst, `position ${pos}`).toBeLessThan(1e-4); // the FFN sums its neurons in another order
    }
    await a.dispose();
    await b.dispose();
    const model = await openFlashModel(new MemorySource(afterBytes), { selector: "all", contextLength: 512 });
    for (const c of readJson(`${ROOT}test/data/stories260K-relu/greedy.json`).cases.slice(0, 2)) {
      const tokens = [...c.prompt_tokens];
      for await (const t of model.generate(c.prompt, { temperature: 0, maxTokens: 120 })) tokens.push(t.token);
      expect(tokens, JSON.stringify(c.prompt)).toEqual(c.tokens.slice(0, tokens.length));
    }
    await model.dispose();
  });

  it("the stored predictor selects the same neurons under their new positions", async () => {
    const a = await openFlashModel(new MemorySource(flm), { selector: "all", contextLength: 64 });
    const oldSel = new LowRankPredictor(a.kernels, predictor);
    const b = await openFlashModel(new MemorySource(afterBytes), { contextLength: 64 });
    expect(b.predictor).toBeDefined();
    const r = rng(5);
    const out1 = new Int32Array(H);
    const out2 = new Int32Array(H);
    let named = 0;
    for (let l = 0; l < L; l++) {
      const inv = invertOrder(orders[l]);
      for (let t = 0; t < 20; t++) {
        const x = Float32Array.from({ length: DIM }, () => r() * 2 - 1);
        const n1 = oldSel.select(l, x, out1);
        const n2 = b.predictor!.select(l, x, out2);
        expect(n1).toBeGreaterThan(0);
        expect(Array.from(out2.subarray(0, n2))).toEqual(Array.from(out1.subarray(0, n1), (i) => inv[i]).sort((p, q) => p - q));
        if (l + 1 < L) {
          // The lookahead names layer l+1's neurons: under layer l+1's new positions.
          const next = invertOrder(orders[l + 1]);
          const m1 = oldSel.predictNext(l, x, out1);
          const m2 = b.predictor!.predictNext(l, x, out2);
          named += m1; // a random rank-8 layer names none when every hidden unit is cut by the ReLU
          expect(Array.from(out2.subarray(0, m2)).sort((p, q) => p - q)).toEqual(Array.from(out1.subarray(0, m1), (i) => next[i]).sort((p, q) => p - q));
        }
      }
    }
    expect(named).toBeGreaterThan(0);
    oldSel.dispose();
    await a.dispose();
    await b.dispose();
  });

  it("on held-out text, a token's active neurons fall into fewer runs: fewer, larger reads", async () => {
    const held = await record(flm, heldOut, 1000);
    const identity = Int32Array.from({ length: H }, (_, i) => i);
    let runsBefore = 0;
    let runsAfter = 0;
    for (let l = 0; l < L; l++) {
      const act = held.layers[l].active.subarray(0, held.positions * H);
      runsBefore += storageRuns(act, H, identity).runs;
      runsAfter += storageRuns(act, H, orders[l]).runs;
    }
    expect(runsAfter).toBeLessThan(0.92 * runsBefore);
    // The engine agrees: exact selection, nothing kept between tokens, no gap merging: one read per run.
    const reads = async (bytes: Uint8Array) => {
      const dense = await openFlashModel(new MemorySource(bytes), { selector: "all", contextLength: 128 });
      const exact = await GateExactSelector.fromFile(dense.kernels, dense.file);
      const m = await openFlashModel(new MemorySource(bytes), { selector: exact, contextLength: 128, strategy: "bundled", maxGapBytes: 0 });
      const toks = m.tokenizer.encode(heldOut.slice(0, 400)).slice(0, 100);
      for (let pos = 0; pos < toks.length; pos++) await m.transformer.forward(toks[pos], pos);
      const s = { ...m.flash.stats };
      exact.dispose();
      await m.dispose();
      await dense.dispose();
      return s;
    };
    const s1 = await reads(flm);
    const s2 = await reads(afterBytes);
    expect(s2.activeNeurons).toBe(s1.activeNeurons); // the same neurons, stored elsewhere
    expect(s2.bytesRead).toBe(s1.bytesRead);
    expect(s2.readRequests).toBeLessThan(0.92 * s1.readRequests);
    console.log(`held-out runs per token ${(runsBefore).toFixed(1)} → ${runsAfter.toFixed(1)}; exact selection, bundled: ${(s1.readRequests / s1.tokens).toFixed(1)} → ${(s2.readRequests / s2.tokens).toFixed(1)} reads/token`);
  }, 30_000);

  it("writeWithPredictor refuses an order that does not fit", async () => {
    const bad = orders.map((o) => o.slice());
    bad[2][5] = bad[2][6];
    await expect(writeWithPredictor(before, predictor, new MemorySink(), {}, undefined, bad)).rejects.toThrow(/layer 2's neuron order is not a permutation/);
    await expect(writeWithPredictor(before, predictor, new MemorySink(), {}, undefined, orders.slice(1))).rejects.toThrow(/4 neuron orders for a model of 5 layers/);
  });
});

describe("TraceSelector's co-activation parameter", () => {
  it("clusters new neurons in storage without changing how many are active or kept", () => {
    const neurons = 2000;
    const base = { activeFraction: 0.1, overlap: 0.5, skew: 0.4 };
    for (const coactivation of [0, 0.2, 0.5]) {
      const sel = new TraceSelector(neurons, 1, { ...base, coactivation });
      const out = new Int32Array(neurons);
      let prev: number[] = [];
      for (let t = 0; t < 30; t++) {
        const n = sel.select(0, new Float32Array(0), out);
        const set = Array.from(out.subarray(0, n));
        expect(n).toBe(200);
        expect(new Set(set).size).toBe(n);
        for (let i = 1; i < n; i++) expect(set[i]).toBeGreaterThan(set[i - 1]);
        if (t > 0) expect(set.filter((v) => prev.includes(v)).length).toBeGreaterThanOrEqual(100); // overlap 50% kept
        prev = set;
      }
    }
    // Newly needed neurons scattered at random have a stored predecessor among them with probability
    // about their density (~3%): ~0.97 runs each. With c = 0.5 about half follow their predecessor.
    const scattered = measureTrace(neurons, { ...base, coactivation: 0 }, 200, 5).newRunsPerNeuron;
    const clustered = measureTrace(neurons, { ...base, coactivation: 0.5 }, 200, 5).newRunsPerNeuron;
    expect(scattered).toBeGreaterThan(0.93);
    expect(clustered).toBeGreaterThan(0.45);
    expect(clustered).toBeLessThan(0.62);
  });

  it("firstTokenAll: the first token takes every neuron of every layer, later tokens are the trace's own", () => {
    const neurons = 500;
    const params = { activeFraction: 0.1, overlap: 0.7, skew: 0.6, coactivation: 0.2 };
    const plain = new TraceSelector(neurons, 3, params);
    const all = new TraceSelector(neurons, 3, { ...params, firstTokenAll: true });
    const a = new Int32Array(neurons);
    const b = new Int32Array(neurons);
    for (let t = 0; t < 5; t++) {
      for (let l = 0; l < 3; l++) {
        const na = plain.select(l, new Float32Array(0), a);
        const nb = all.select(l, new Float32Array(0), b);
        if (t === 0) {
          expect(nb).toBe(neurons);
          expect(Array.from(b)).toEqual(Array.from({ length: neurons }, (_, i) => i));
          expect(na).toBe(50);
        } else {
          expect(Array.from(b.subarray(0, nb))).toEqual(Array.from(a.subarray(0, na)));
        }
      }
    }
  });

  it("refuses a parameter outside [0, 1)", () => {
    expect(() => new TraceSelector(100, 1, { activeFraction: 0.1, overlap: 0, skew: 0, coactivation: 1 })).toThrow(/coactivation must be in \[0, 1\), got 1/);
    expect(() => new TraceSelector(100, 1, { activeFraction: 0.1, overlap: 0, skew: 0, coactivation: -0.1 })).toThrow(FlashError);
  });
});
