// NeuronCache and ReadPlanner against a plain model of what they must do: a Map neuron → bytes,
// an LRU order, and runs that cover exactly the missing neurons plus allowed gaps. Slot contents are
// checked byte for byte after every step.
import { describe, expect, it } from "vitest";
import { NeuronCache } from "../../src/cache/neuron-cache.js";
import { ReadPlanner } from "../../src/cache/read-planner.js";
import { rng } from "../../../../test/helpers.js";

const STRIDE = 24;
/** The bytes neuron n has in "storage": distinct for every neuron and position. */
const bundleByte = (n: number, i: number) => (n * 31 + i * 7 + 3) & 0xff;

function writeBundle(mem: Uint8Array, slot: number, n: number) {
  for (let i = 0; i < STRIDE; i++) mem[slot * STRIDE + i] = bundleByte(n, i);
}

function checkAgainstModel(cache: NeuronCache, mem: Uint8Array, model: Map<number, number>) {
  expect(cache.size).toBe(model.size);
  const seen = new Set<number>();
  for (let s = 0; s < cache.size; s++) {
    const n = cache.neuronAt(s);
    expect(model.has(n)).toBe(true);
    expect(seen.has(n)).toBe(false);
    seen.add(n);
    expect(cache.slotOf(n)).toBe(s);
    for (let i = 0; i < STRIDE; i++) if (mem[s * STRIDE + i] !== bundleByte(n, i)) throw new Error(`slot ${s} (neuron ${n}) byte ${i} is wrong`);
  }
  for (let n = 0; n < cache.neurons; n++) if (!model.has(n)) expect(cache.slotOf(n)).toBe(-1);
}

describe("NeuronCache", () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`random tokens, windows, evictions, failed loads (seed ${seed}) agree with a Map model`, () => {
      const r = rng(seed);
      const neurons = 50 + Math.floor(r() * 150);
      const capacity = 5 + Math.floor(r() * neurons * 0.6);
      const window = 1 + Math.floor(r() * 5);
      const mem = new Uint8Array(capacity * STRIDE);
      const cache = new NeuronCache(neurons, capacity, STRIDE, () => mem, window);
      const planner = new ReadPlanner(neurons, Math.floor(r() * 4));
      const model = new Map<number, number>(); // cached neuron → last token that used it
      const lastUsed = new Map<number, number>();
      const missing = new Int32Array(neurons);
      for (let token = 1; token <= 300; token++) {
        // Active sets overlap with the previous token's, as real ones do.
        const nActive = 1 + Math.floor(r() * Math.min(capacity, neurons) * 0.8);
        const active = [...new Set(Array.from({ length: nActive }, () => Math.floor(r() ** 2 * neurons)))].sort((a, b) => a - b);
        if (r() < 0.1) {
          const evicted = cache.evictOutsideWindow(token);
          let expected = 0;
          for (const [n, _used] of [...model]) if (token - (lastUsed.get(n) ?? -1e9) >= window) { model.delete(n); lastUsed.delete(n); expected++; }
          expect(evicted).toBe(expected);
          checkAgainstModel(cache, mem, model);
        }
        let nMissing = 0;
        for (const n of active) {
          cache.touch(n, token);
          lastUsed.set(n, token);
          if (cache.slotOf(n) < 0) missing[nMissing++] = n;
        }
        for (const n of active) if (model.has(n)) expect(cache.slotOf(n)).toBeGreaterThanOrEqual(0);
        const before = new Map(model);
        cache.makeRoom(nMissing, token);
        // Evicted: none used by this tick; outside the window oldest first, and inside the window only
        // once nothing outside it is left, youngest first.
        const evicted = [...before.keys()].filter((n) => cache.slotOf(n) < 0);
        const survivors = [...before.keys()].filter((n) => cache.slotOf(n) >= 0 && !active.includes(n));
        const age = (m: number) => Math.min(token - (lastUsed.get(m) ?? -1e9), 4095); // ages are bucketed up to 4095 ticks
        for (const n of evicted) {
          expect(lastUsed.get(n)).not.toBe(token);
          for (const s of survivors) {
            if (age(n) >= window) expect(age(s) >= window ? age(n) >= age(s) : true).toBe(true);
            else expect(age(s) < window && age(s) >= age(n)).toBe(true);
          }
          model.delete(n);
          lastUsed.delete(n); // an evicted neuron's last use is forgotten: back as a gap neuron, it is the oldest
        }
        checkAgainstModel(cache, mem, model);
        expect(cache.free).toBeGreaterThanOrEqual(nMissing);
        planner.plan(missing, nMissing, (n) => cache.slotOf(n) >= 0, cache.free);
        // The runs cover every missing neuron, no cached one, and fit the free slots.
        const covered: number[] = [];
        for (let i = 0; i < planner.runCount; i++) for (let j = 0; j < planner.runs[2 * i + 1]; j++) covered.push(planner.runs[2 * i] + j);
        expect(covered.length).toBe(planner.slots);
        expect(planner.slots).toBeLessThanOrEqual(cache.free);
        for (const n of Array.from(missing.subarray(0, nMissing))) expect(covered).toContain(n);
        for (const n of covered) expect(model.has(n)).toBe(false);
        const slots: [number, number, number][] = [];
        for (let i = 0; i < planner.runCount; i++) {
          const first = planner.runs[2 * i], count = planner.runs[2 * i + 1];
          slots.push([cache.reserve(first, count), first, count]);
        }
        if (r() < 0.15) {
          // A failed read: half the bytes arrived, then rollback: nothing of it may become visible.
          for (const [slot, first, count] of slots) for (let j = 0; j < count; j += 2) writeBundle(mem, slot + j, first + j);
          cache.rollback();
          checkAgainstModel(cache, mem, model);
          continue;
        }
        for (const [slot, first, count] of slots) for (let j = 0; j < count; j++) writeBundle(mem, slot + j, first + j);
        cache.commit();
        for (const n of covered) model.set(n, token);
        checkAgainstModel(cache, mem, model);
        for (const n of active) expect(cache.slotOf(n)).toBeGreaterThanOrEqual(0);
      }
    });
  }

  it("makeRoom's extra room comes from outside the window only, oldest first; gap neurons never used go first", () => {
    const mem = new Uint8Array(10 * STRIDE);
    const cache = new NeuronCache(100, 10, STRIDE, () => mem, 3);
    // Neuron n used at tick n (n = 1…8), then neuron 50 loaded as a gap neuron (never used).
    for (let n = 1; n <= 8; n++) {
      cache.touch(n, n);
      const s = cache.reserve(n, 1);
      writeBundle(mem, s, n);
      cache.commit();
    }
    writeBundle(mem, cache.reserve(50, 1), 50);
    cache.commit();
    const tick = 9; // window 3: ticks 7, 8 (and 9) are inside; 1…6 and the gap neuron outside
    cache.touch(8, tick);
    expect(cache.free).toBe(1);
    // Need 2, extra 3: 4 slots freed from outside (50, then 1, 2, 3), nothing from inside.
    cache.makeRoom(2, tick, 3);
    const left = (): number[] => Array.from({ length: cache.size }, (_, s) => cache.neuronAt(s)).sort((a, b) => a - b);
    expect(left()).toEqual([4, 5, 6, 7, 8]);
    // Need 9: the rest of outside goes (4, 5, 6: free 8), then inside, youngest first, only what is needed: 7 (age 2); 8 is this tick's.
    expect(cache.makeRoom(9, tick, 10)).toBe(9);
    expect(left()).toEqual([8]);
    for (let s = 0; s < cache.size; s++) for (let i = 0; i < STRIDE; i++) expect(mem[s * STRIDE + i]).toBe(bundleByte(cache.neuronAt(s), i));
  });

  it("clear forgets everything; reserving more than is free is refused", () => {
    const mem = new Uint8Array(4 * STRIDE);
    const cache = new NeuronCache(10, 4, STRIDE, () => mem, 2);
    const s = cache.reserve(3, 3);
    for (let j = 0; j < 3; j++) writeBundle(mem, s + j, 3 + j);
    cache.commit();
    expect(() => cache.reserve(0, 2)).toThrow(/2 slots asked, 1 free/);
    cache.clear();
    checkAgainstModel(cache, mem, new Map());
  });
});

describe("ReadPlanner", () => {
  it("merges adjacent neurons always and gaps only up to maxGap, never across a cached neuron", () => {
    const p = new ReadPlanner(100, 2);
    const cached = new Set([20]);
    p.plan(Int32Array.from([1, 2, 3, 6, 8, 9, 19, 21, 40]), 9, (n) => cached.has(n), 100);
    const runs = Array.from({ length: p.runCount }, (_, i) => [p.runs[2 * i], p.runs[2 * i + 1]]);
    // 1-3 then gap of 2 (4,5) merges to 6, gap 1 (7) merges to 8-9; 19 is 9 away; 21 cannot merge over cached 20.
    expect(runs).toEqual([[1, 9], [19, 1], [21, 1], [40, 1]]);
    expect(p.gapNeurons).toBe(3);
    expect(p.slots).toBe(12);
    // With no free slots to spare for gaps, nothing but adjacency merges.
    p.plan(Int32Array.from([1, 2, 3, 6]), 4, () => false, 4);
    expect(Array.from(p.runs.subarray(0, 2 * p.runCount))).toEqual([1, 3, 6, 1]);
  });

  it("group: runs split by a cached neuron share one staged span when the gap is small and the staging buffer holds it", () => {
    const p = new ReadPlanner(100, 2);
    const cached = new Set([4, 6, 7, 10, 11, 30]);
    // Runs cut by cached neurons: [3] 4 [5] 6,7 [8,9] 10,11 [12] … [29] 30 [31] … [60].
    p.plan(Int32Array.from([3, 5, 8, 9, 12, 29, 31, 60]), 8, (n) => cached.has(n), 100);
    const runs = Array.from({ length: p.runCount }, (_, i) => [p.runs[2 * i], p.runs[2 * i + 1]]);
    expect(runs).toEqual([[3, 1], [5, 1], [8, 2], [12, 1], [29, 1], [31, 1], [60, 1]]);
    const spans = () => Array.from({ length: p.spanCount }, (_, i) => [p.spans[2 * i], p.spans[2 * i + 1]]);
    p.group(0); // no staging buffer: every run alone
    expect(spans()).toEqual(runs.map((_, i) => [i, i]));
    p.group(100); // room for everything: 3…12 is one span (gaps 1, 2, 2), 29…31 another, 60 alone (gap 28 > 2)
    expect(spans()).toEqual([[0, 3], [4, 5], [6, 6]]);
    p.group(10); // span 3…12 takes 10 bundles, so 29…31 (3 more) no longer fits
    expect(spans()).toEqual([[0, 3], [4, 4], [5, 5], [6, 6]]);
    p.group(9); // 3…9 (7 bundles) fits, 3…12 (10) does not: then 12 alone; 29…31 does not fit the last 2
    expect(spans()).toEqual([[0, 2], [3, 3], [4, 4], [5, 5], [6, 6]]);
  });
});
