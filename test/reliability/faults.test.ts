// Failing storage: the FaultInjectingSource itself, then the engine over it. Every generation either
// completes with exactly the tokens of a fault-free run or fails with the source's error (a
// SourceError, or CHECKSUM_MISMATCH for wrong bytes with verifyReads); after every attempt the neuron
// cache is checked against its own invariants and against the file (no corrupted or half-read slot is
// live), and the WASM heap is checked for leaks and out-of-bounds writes.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AbortedError, FaultInjectingSource, FixedSelector, FlashError, FormatError, MemorySource, NeuronCache, SourceError,
  type FaultKind, type FlashModel, type FlashSource, type NeuronSelector, type ReadRequest,
} from "@flashllm/sdk/internal";
import { NodeFileSource } from "@flashllm/node-io";
import { HeapWatch, ModelTracker, Rng, Tally, budgetFor, checkFlashCache, ffnRange, flmSeed, tokensOf } from "./harness.js";

const PROMPT = "Once upon a time";
let flm: Uint8Array;
let budget: number;
let ffn: { offset: number; length: number };
let watch: HeapWatch;
const faultTally = new Tally(); // injected faults by kind
const outcomeTally = new Tally(); // generation outcomes
const summary: string[] = [];

const CONTEXT = 128;
const tracker = new ModelTracker();

beforeAll(async () => {
  const seed = await flmSeed("stories260K-f32");
  flm = seed.bytes;
  budget = await budgetFor(flm, 0.4, CONTEXT);
  ffn = ffnRange(flm);
  watch = await HeapWatch.create();
});

afterEach(async () => {
  await tracker.disposeAll();
  watch.end();
});

afterAll(() => {
  console.log(`faults injected: ${faultTally}\ngeneration outcomes: ${outcomeTally}\n${summary.join("\n")}`);
});

function countFaults(src: FaultInjectingSource): void {
  for (const [k, n] of Object.entries(src.stats.injected)) for (let i = 0; i < n; i++) faultTally.add(k);
}

/** Re-issues a read that failed with a SourceError, up to `retries` times (what a backend such as NodeFileSource does). */
class RetryingSource implements FlashSource {
  retried = 0;
  constructor(readonly inner: FlashSource, readonly retries: number) {}
  get byteLength(): number {
    return this.inner.byteLength;
  }
  async read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.inner.read(requests, signal);
      } catch (e) {
        if (!(e instanceof SourceError) || attempt >= this.retries) throw e;
        this.retried++;
      }
    }
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

// ---------------------------------------------------------------------------------------------------

describe("FaultInjectingSource", () => {
  const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff);
  const req = (offset: number, length: number): ReadRequest => ({ offset, length, target: new Uint8Array(length) });
  const same = (r: ReadRequest) => r.target.every((b, i) => b === bytes[r.offset + i]);

  it("passes reads through untouched when no fault is due, and counts them", async () => {
    const src = new FaultInjectingSource(new MemorySource(bytes));
    const r = [req(0, 100), req(1000, 3000)];
    await src.read(r);
    expect(r.every(same)).toBe(true);
    expect(src.stats).toMatchObject({ calls: 1, requests: 2, resolved: 1, rejected: 0 });
    expect(src.byteLength).toBe(4096);
  });

  it("error: rejects with a SourceError naming the request, before writing anything", async () => {
    const src = new FaultInjectingSource(new MemorySource(bytes));
    src.injectNext("error");
    const r = [req(64, 32)];
    const e = await src.read(r).catch((x) => x);
    expect(e).toBeInstanceOf(SourceError);
    expect(e.code).toBe("READ_FAILED");
    expect(e.offset).toBe(64);
    expect(r[0].target.every((b) => b === 0)).toBe(true);
    expect(src.log).toEqual([{ call: 0, kind: "error", offset: 64, length: 32 }]);
  });

  it("short: fills a prefix of one target, then rejects with a SourceError", async () => {
    const src = new FaultInjectingSource(new MemorySource(bytes), { seed: 3 });
    src.injectNext("short");
    const r = [req(100, 1000)];
    const e = await src.read(r).catch((x) => x);
    expect(e).toBeInstanceOf(SourceError);
    const got = Number(/(\d+) of 1000/.exec(e.message)![1]);
    expect(got).toBeLessThan(1000);
    expect(r[0].target.subarray(0, got).every((b, i) => b === bytes[100 + i])).toBe(true);
    expect(r[0].target.subarray(got).every((b) => b === 0)).toBe(true);
  });

  it("corrupt and zeros: resolve with wrong bytes in one target (only checksums catch them)", async () => {
    for (const kind of ["corrupt", "zeros"] as const) {
      const src = new FaultInjectingSource(new MemorySource(bytes), { seed: 5 });
      src.injectNext(kind);
      const r = [req(200, 2000)];
      await src.read(r);
      expect(same(r[0])).toBe(false);
      expect(src.stats.injected[kind]).toBe(1);
      expect(src.stats.resolved).toBe(1);
    }
  });

  it("delay and latency: slow but correct, and abortable without writing afterwards", async () => {
    const src = new FaultInjectingSource(new MemorySource(bytes), { delayMs: 30, latencyMs: 5 });
    src.injectNext("delay");
    const r = [req(0, 64)];
    const t0 = performance.now();
    await src.read(r);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(30);
    expect(same(r[0])).toBe(true);
    src.injectNext("delay");
    const ac = new AbortController();
    const r2 = [req(0, 64)];
    const p = src.read(r2, ac.signal);
    ac.abort();
    expect(await p.catch((x) => x)).toBeInstanceOf(AbortedError);
    await new Promise((res) => setTimeout(res, 50));
    expect(r2[0].target.every((b) => b === 0)).toBe(true); // nothing written after the rejection
  });

  it("hang: never settles until the signal fires or the source closes", async () => {
    const src = new FaultInjectingSource(new MemorySource(bytes));
    src.injectNext("hang", 2);
    const ac = new AbortController();
    let settled = false;
    const p = src.read([req(0, 8)], ac.signal).finally(() => (settled = true));
    await new Promise((res) => setTimeout(res, 20));
    expect(settled).toBe(false);
    ac.abort("stop");
    const e = await p.catch((x) => x);
    expect(e).toBeInstanceOf(AbortedError);
    expect(e.message).toBe("stop");
    const q = src.read([req(0, 8)]);
    await src.close();
    expect(await q.catch((x) => x)).toBeInstanceOf(SourceError);
  });

  it("faults by call index, by rule, by seeded rate, and only inside `range`", async () => {
    const src = new FaultInjectingSource(new MemorySource(bytes), { at: { 1: "error" }, rule: (c) => (c.index === 3 ? "error" : undefined) });
    const outcomes: boolean[] = [];
    for (let i = 0; i < 5; i++) outcomes.push(await src.read([req(0, 8)]).then(() => true, () => false));
    expect(outcomes).toEqual([true, false, true, false, true]);

    const runRates = async (seed: number) => {
      const s = new FaultInjectingSource(new MemorySource(bytes), { seed, rates: { error: 0.3 }, range: { offset: 1024, length: 1024 } });
      const out: string[] = [];
      for (let i = 0; i < 200; i++) out.push(await s.read([req(i % 2 ? 0 : 1500, 8)]).then(() => "ok", () => `fail@${i % 2 ? 0 : 1500}`));
      return out;
    };
    const a = await runRates(11);
    expect(await runRates(11)).toEqual(a); // reproducible
    expect(a.filter((x) => x === "fail@0")).toEqual([]); // outside the range: never
    const fails = a.filter((x) => x === "fail@1500").length;
    expect(fails).toBeGreaterThan(10);
    expect(fails).toBeLessThan(50);
    expect(() => new FaultInjectingSource(new MemorySource(bytes), { rates: { error: 0.7, short: 0.7 } })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("verifyReads", () => {
  it("off by default: the open reads no CRC table and the plan charges nothing for it", async () => {
    const model = await openFlash(new MemorySource(flm));
    expect(model.memoryPlan.crcTableBytes).toBe(0);
    const v = await openFlash(new MemorySource(flm), { verifyReads: true });
    expect(v.memoryPlan.crcTableBytes).toBe(4 * 5 * 172); // JS memory, outside the WASM budget
    expect(v.memoryPlan.totalBytes).toBe(model.memoryPlan.totalBytes);
    await model.dispose();
    await v.dispose();
    expect(watch.end()).toEqual([]);
  });

  for (const kind of ["corrupt", "zeros"] as const) {
    it(`${kind} bytes in a bundle read: CHECKSUM_MISMATCH naming layer and neuron, the load rolled back, the model still right`, async () => {
      const src = new FaultInjectingSource(new MemorySource(flm), { seed: 9, range: ffn });
      const model = await openFlash(src, { verifyReads: true, memoryBudget: budget });
      const reference = await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 20 });
      src.injectNext(kind);
      const before = model.flash.stats.neuronsLoaded;
      const e = await tokensOf(model, "Lily and Tom", { temperature: 0, maxTokens: 20 }).catch((x) => x);
      expect(e).toBeInstanceOf(FormatError);
      expect(e.code).toBe("CHECKSUM_MISMATCH");
      expect(e.details).toMatchObject({ section: expect.stringMatching(/^ffn\.\d$/), layer: expect.any(Number), neuron: expect.any(Number) });
      expect(e.message).toMatch(/neuron \d+ \(layer \d\)/);
      expect(model.lastStats?.finishReason).toBe("error");
      expect(checkFlashCache(model, flm)).toEqual([]);
      expect(model.flash.stats.neuronsLoaded).toBe(before); // nothing of the failed load counted or kept
      expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 20 })).toEqual(reference);
      countFaults(src);
      outcomeTally.add(`checksum-mismatch(${kind})`);
      await model.dispose();
      expect(watch.end()).toEqual([]);
    });
  }

  it("without verifyReads the same fault goes unnoticed and the wrong bytes stay in the cache (what verifyReads is for)", async () => {
    const src = new FaultInjectingSource(new MemorySource(flm), { seed: 9, range: ffn });
    const model = await openFlash(src); // no budget: nothing is evicted, so the bad slot stays
    src.injectNext("corrupt");
    await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 3 });
    expect(checkFlashCache(model, flm).join()).toMatch(/does not hold that neuron's bundle/);
    countFaults(src);
    await model.dispose();
    expect(watch.end()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------

async function openFlash(source: FlashSource, opts: Parameters<typeof import("@flashllm/sdk/internal").openFlashModel>[1] = {}): Promise<FlashModel> {
  const { openFlashModel } = await import("@flashllm/sdk/internal");
  return tracker.track(await openFlashModel(source, { kernels: watch.kernels, contextLength: CONTEXT, ...opts }));
}

/** Checks a failed generation's error against the faults injected during it. */
function expectSourcesError(e: unknown, kinds: FaultKind[]): string {
  if (e instanceof SourceError) {
    expect(kinds.some((k) => k === "error" || k === "short"), `SourceError without an error/short fault: ${String(e)}`).toBe(true);
    expect(e.message).toMatch(/injected/);
    return "failed:READ_FAILED";
  }
  if (e instanceof FormatError && e.code === "CHECKSUM_MISMATCH") {
    expect(kinds.some((k) => k === "corrupt" || k === "zeros"), `checksum error without a wrong-bytes fault: ${String(e)}`).toBe(true);
    return "failed:CHECKSUM_MISMATCH";
  }
  throw e;
}

describe("generation over failing storage", () => {
  const configs = [
    { strategy: "windowed" as const, tight: true },
    { strategy: "windowed" as const, tight: false },
    { strategy: "bundled" as const, tight: true },
    { strategy: "naive" as const, tight: true },
  ];
  for (const cfg of configs) {
    it(`${cfg.strategy}, ${cfg.tight ? "budget 40% of the FFN" : "no budget"}: same tokens as without faults, or the source's error; cache consistent after every attempt`, async () => {
      const prompts = ["Once upon a time", "Lily and Tom went to the park", "One day, a big bear", ""];
      const opts = { verifyReads: true, memoryBudget: cfg.tight ? budget : undefined, strategy: cfg.strategy };
      const counter = new FaultInjectingSource(new MemorySource(flm));
      const clean = await openFlash(counter, opts);
      await tokensOf(clean, prompts[0], { temperature: 0, maxTokens: 40 });
      const readsBefore = counter.stats.calls;
      await tokensOf(clean, prompts[1], { temperature: 0, maxTokens: 40 });
      // About 0.7 faults per generation: some complete at once, some need retries.
      const perRead = 0.7 / Math.max(1, counter.stats.calls - readsBefore);
      const src = new FaultInjectingSource(new MemorySource(flm), {
        seed: 17 + configs.indexOf(cfg),
        range: ffn,
        rates: { error: 0.3 * perRead, short: 0.2 * perRead, corrupt: 0.25 * perRead, zeros: 0.1 * perRead, delay: 0.15 * perRead },
        delayMs: 1,
      });
      const model = await openFlash(src, opts);
      const local = new Tally();
      for (let k = 0; k < prompts.length * 3; k++) {
        const prompt = prompts[k % prompts.length];
        const sampling = k % 3 === 2 ? { temperature: 0.8, seed: 100 + k } : { temperature: 0 };
        const want = await tokensOf(clean, prompt, { ...sampling, maxTokens: 40 });
        // Retry the generation until it completes (the application's retry), at most 30 times.
        for (let attempt = 0; ; attempt++) {
          const logBefore = src.log.length;
          try {
            const got = await tokensOf(model, prompt, { ...sampling, maxTokens: 40 });
            expect(got).toEqual(want);
            local.add(attempt === 0 ? "completed" : "completed after retry");
            break;
          } catch (e) {
            local.add(expectSourcesError(e, src.log.slice(logBefore).map((f) => f.kind)));
            expect(attempt).toBeLessThan(30);
          } finally {
            const problems = checkFlashCache(model, flm);
            expect(problems).toEqual([]);
            watch.checkLive("after attempt");
            expect(watch.take()).toEqual([]);
          }
        }
      }
      for (const [k, n] of local.counts) for (let i = 0; i < n; i++) outcomeTally.add(k);
      countFaults(src);
      summary.push(`  ${cfg.strategy}${cfg.tight ? " (tight budget)" : ""}: ${src.stats.calls} reads, faults ${JSON.stringify(src.stats.injected)}; attempts: ${local}`);
      expect(local.counts.get("completed") ?? 0).toBeGreaterThan(0);
      await model.dispose();
      await clean.dispose();
      expect(watch.end()).toEqual([]);
    }, 120_000);
  }

  it("with a retrying backend, transient read errors and short reads never reach generation", async () => {
    const fault = new FaultInjectingSource(new MemorySource(flm), { seed: 23, range: ffn, rates: { error: 0.1, short: 0.1 } });
    const src = new RetryingSource(fault, 8);
    const model = await openFlash(src, { memoryBudget: budget });
    const clean = await openFlash(new MemorySource(flm), { memoryBudget: budget });
    for (const prompt of ["Once upon a time", "One day, a big bear"]) {
      expect(await tokensOf(model, prompt, { temperature: 0, maxTokens: 60 })).toEqual(await tokensOf(clean, prompt, { temperature: 0, maxTokens: 60 }));
      outcomeTally.add("completed (backend retries)");
    }
    expect(src.retried).toBeGreaterThan(0);
    expect(checkFlashCache(model, flm)).toEqual([]);
    countFaults(fault);
    summary.push(`  retrying backend: ${fault.stats.calls} reads, ${src.retried} retried, faults ${JSON.stringify(fault.stats.injected)}`);
    await model.dispose();
    await clean.dispose();
    expect(watch.end()).toEqual([]);
  });

  it("over NodeFileSource (a real file), with faults injected on top", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flashllm-rel-"));
    const path = join(dir, "m.flm");
    writeFileSync(path, flm);
    const file = await NodeFileSource.open(path);
    const src = new FaultInjectingSource(file, { seed: 29, range: ffn, rates: { error: 0.005, corrupt: 0.005 } });
    const model = await openFlash(src, { memoryBudget: budget, verifyReads: true });
    const clean = await openFlash(new MemorySource(flm), { memoryBudget: budget });
    const want = await tokensOf(clean, PROMPT, { temperature: 0, maxTokens: 60 });
    let failures = 0;
    for (;;) {
      const logBefore = src.log.length;
      try {
        expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 60 })).toEqual(want);
        break;
      } catch (e) {
        outcomeTally.add(expectSourcesError(e, src.log.slice(logBefore).map((f) => f.kind)));
        expect(++failures).toBeLessThan(30);
      }
      expect(checkFlashCache(model, flm)).toEqual([]);
    }
    outcomeTally.add(failures === 0 ? "completed" : "completed after retry");
    countFaults(src);
    await model.dispose();
    await clean.dispose();
    await src.close();
    expect(watch.end()).toEqual([]);
  });

  it("the chunked path (more active neurons than slots) rolls back failed chunks too", async () => {
    const src = new FaultInjectingSource(new MemorySource(flm), { seed: 31, range: ffn, rates: { error: 0.003, corrupt: 0.003 } });
    // Resident + state at 128 positions + a cache of 100 slots: fewer than a layer's 172 neurons.
    const probe = await openFlash(new MemorySource(flm));
    const p = probe.memoryPlan;
    await probe.dispose();
    const small = p.residentBytes + p.stateBytes + p.ffnScratchBytes + 4096 + 48 + 100 * 784;
    const model = await openFlash(src, { memoryBudget: small, verifyReads: true });
    // About 100 slots (less the plan's staging buffer): fewer than one layer's 172, so chunks stream.
    expect(model.memoryPlan.capacity).toBeLessThan(172);
    expect(model.memoryPlan.capacity).toBeGreaterThan(50);
    const clean = await openFlash(new MemorySource(flm));
    const want = await tokensOf(clean, PROMPT, { temperature: 0, maxTokens: 20 });
    for (let attempt = 0; ; attempt++) {
      const logBefore = src.log.length;
      try {
        expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 20 })).toEqual(want);
        break;
      } catch (e) {
        outcomeTally.add(expectSourcesError(e, src.log.slice(logBefore).map((f) => f.kind)));
        expect(attempt).toBeLessThan(50);
      }
      expect(checkFlashCache(model, flm)).toEqual([]);
    }
    countFaults(src);
    await model.dispose();
    await clean.dispose();
    expect(watch.end()).toEqual([]);
  }, 60_000);

  it("a read error while opening (manifest, tokenizer, resident weights) is the source's error; nothing stays allocated; opening again works", async () => {
    for (let call = 0; call < 3; call++) {
      const src = new FaultInjectingSource(new MemorySource(flm), { at: { [call]: "error" } });
      const e = await openFlash(src, { memoryBudget: budget }).catch((x) => x);
      expect(e, `fault at call ${call}`).toBeInstanceOf(SourceError);
      expect(watch.end()).toEqual([]);
      const model = await openFlash(src, { memoryBudget: budget });
      await model.dispose();
      countFaults(src);
    }
    // Wrong bytes in the resident section or tokenizer are caught by the section CRCs.
    for (let call = 1; call < 3; call++) {
      const src = new FaultInjectingSource(new MemorySource(flm), { at: { [call]: "corrupt" }, seed: call });
      const e = await openFlash(src).catch((x) => x);
      expect(e).toBeInstanceOf(FormatError);
      expect(e.code).toBe("CHECKSUM_MISMATCH");
      expect(watch.end()).toEqual([]);
      countFaults(src);
    }
  });
});

// ---------------------------------------------------------------------------------------------------

describe("the cache's state after failures", () => {
  it("a reservation the cache refuses mid-load leaves no pending reservation (white box)", async () => {
    // Three separate runs per layer (no gap merging), so a load reserves several times.
    const sets = Array.from({ length: 5 }, () => [0, 10, 20, 30, 31, 32, 90, 171]);
    const opts = { selector: new FixedSelector(sets), maxGapBytes: 0, memoryBudget: budget };
    const clean = await openFlash(new MemorySource(flm), opts);
    const want = await tokensOf(clean, PROMPT, { temperature: 0, maxTokens: 10 });
    const model = await openFlash(new MemorySource(flm), opts);
    const cache = (model.flash as unknown as { cache: { reserve: NeuronCache["reserve"]; reserved: number } }).cache;
    const reserve = cache.reserve.bind(cache);
    let refused = 0;
    cache.reserve = (first: number, count: number) => {
      if (cache.reserved > 0) {
        refused++;
        throw new FlashError("BUDGET_TOO_SMALL", "refused (test)");
      }
      return reserve(first, count);
    };
    const e = await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 10 }).catch((x) => x);
    cache.reserve = reserve;
    expect(refused).toBe(1);
    expect(e).toBeInstanceOf(FlashError);
    expect(e.message).toBe("refused (test)");
    expect(cache.reserved).toBe(0);
    expect(checkFlashCache(model, flm)).toEqual([]);
    expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 10 })).toEqual(want);
    await model.dispose();
    await clean.dispose();
    expect(watch.end()).toEqual([]);
  });

  it("a selector that breaks its contract (unsorted, repeated or out-of-range ids) is refused before the cache is touched", async () => {
    const sets: number[][] = [[5, 3], [7, 7], [0, 172], [-1, 2]];
    for (const bad of sets) {
      let armed = false;
      const selector: NeuronSelector = {
        name: "bad",
        select(_layer, _x, out) {
          const ids = armed ? bad : [1, 2, 3, 40, 41, 100];
          out.set(ids);
          return ids.length;
        },
      };
      const model = await openFlash(new MemorySource(flm), { memoryBudget: budget, selector });
      const want = await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 5 });
      armed = true;
      const e = await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 5 }).catch((x) => x);
      expect(e, JSON.stringify(bad)).toBeInstanceOf(FlashError);
      expect(e.code).toBe("BAD_ARGUMENT");
      expect(e.message).toMatch(/selector "bad"/);
      expect(checkFlashCache(model, flm)).toEqual([]);
      armed = false;
      expect(await tokensOf(model, PROMPT, { temperature: 0, maxTokens: 5 })).toEqual(want);
      await model.dispose();
    }
    expect(watch.end()).toEqual([]);
  });

  it("NeuronCache against a reference model: random touches, evictions, loads that fail and loads that commit", () => {
    const r = new Rng(1234);
    const stats = new Tally();
    for (let round = 0; round < 30; round++) {
      const neurons = 20 + r.int(200);
      const capacity = 1 + r.int(Math.min(neurons, 64));
      const stride = 16;
      const mem = new Uint8Array(capacity * stride);
      const window = 1 + r.int(12);
      const cache = new NeuronCache(neurons, capacity, stride, () => mem, window);
      const model = new Set<number>(); // the neurons the cache must hold
      const used = new Map<number, number>(); // neuron → last tick it was touched
      const stamp = (n: number) => (n * 37 + 11) & 0xff; // every byte of neuron n's "bundle"
      let tick = 0;
      for (let step = 0; step < 300; step++) {
        tick++;
        const op = r.int(10);
        if (op < 5) {
          // A layer run: touch a sorted set, make room, load the missing ones (maybe failing).
          const want = [...new Set(Array.from({ length: 1 + r.int(capacity) }, () => r.int(neurons)))].sort((a, b) => a - b);
          for (const n of want) {
            cache.touch(n, tick);
            used.set(n, tick);
          }
          const missing = want.filter((n) => cache.slotOf(n) < 0);
          const before = new Set(model);
          cache.makeRoom(missing.length, tick);
          // Eviction may only remove neurons, never those used at this tick.
          for (const n of model) if (cache.slotOf(n) < 0) model.delete(n);
          for (const n of want) if (before.has(n) && !model.has(n)) expect.fail(`neuron ${n} used at this tick was evicted`);
          if (cache.free < missing.length) expect.fail(`makeRoom left ${cache.free} free slots for ${missing.length} missing neurons`);
          const reserved: number[] = [];
          for (const n of missing) {
            const s = cache.reserve(n, 1);
            mem.fill(stamp(n), s * stride, (s + 1) * stride);
            reserved.push(n);
          }
          if (r.chance(0.3)) {
            // The read failed, maybe halfway: garbage in the reserved slots, then rollback.
            for (let s = cache.size; s < capacity; s++) if (r.chance(0.5)) mem.fill(0xee, s * stride, (s + 1) * stride);
            cache.rollback();
            stats.add("rollback");
          } else {
            cache.commit();
            for (const n of reserved) model.add(n);
            stats.add("commit");
          }
        } else if (op < 7) {
          const gone = cache.evictOutsideWindow(tick);
          for (const n of model) if (cache.slotOf(n) < 0) model.delete(n);
          stats.add(`evictOutsideWindow(${gone > 0 ? ">0" : "0"})`);
        } else if (op < 8) {
          cache.clear();
          model.clear();
          stats.add("clear");
        } else if (op < 9) {
          cache.makeRoom(r.int(capacity + 1), tick);
          for (const n of model) if (cache.slotOf(n) < 0) model.delete(n);
          stats.add("makeRoom");
        } else {
          // Optional room only (`extra`, for gap neurons and later layers): only neurons that left the window may go.
          cache.makeRoom(0, tick, r.int(capacity + 1));
          for (const n of model) {
            if (cache.slotOf(n) >= 0) continue;
            if (tick - (used.get(n) ?? -Infinity) < window) expect.fail(`makeRoom(0, extra) evicted neuron ${n} used ${tick - used.get(n)!} ticks ago (window ${window})`);
            model.delete(n);
          }
          stats.add("makeRoom(extra only)");
        }
        // Invariants: the live slots hold exactly the model's neurons, each with its own bytes.
        const fail = (why: string) => expect.fail(`round ${round} step ${step}: ${why}`);
        if (cache.size !== model.size) fail(`size ${cache.size}, model ${model.size}`);
        if (cache.free !== capacity - cache.size) fail(`free ${cache.free}`);
        for (let s = 0; s < cache.size; s++) {
          const n = cache.neuronAt(s);
          if (!model.has(n)) fail(`slot ${s} holds neuron ${n}, not in the model`);
          if (cache.slotOf(n) !== s) fail(`neuron ${n} at slot ${s} maps to ${cache.slotOf(n)}`);
          for (let b = 0; b < stride; b++) if (mem[s * stride + b] !== stamp(n)) fail(`slot ${s} of neuron ${n} holds wrong bytes`);
        }
        for (const n of model) if (cache.neuronAt(cache.slotOf(n)) !== n) fail(`neuron ${n} lost`);
      }
    }
    summary.push(`  NeuronCache model test: ${stats.cases} operations: ${stats}`);
  });
});
