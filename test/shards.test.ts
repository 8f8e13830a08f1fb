// The sharded engine (DESIGN §8): a model cut across K shard workers, each its own WASM instance,
// against run.c's references, the single-instance path, an independent float64 OPT forward pass, and
// the failures a user can meet (a shard that throws or dies, abort, dispose, a corrupt file).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, writeFileSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 as zlibCrc32 } from "node:zlib";
import {
  FlashModel, ShardedFlashModel, crc32, crc32Combine, evenSplit, openFlm, planShards, writeWithPredictor,
  type LanguageModel, type ModelConfig,
} from "@flashllm/sdk/internal";
import { NodeFileSource, NodeShardHost, convertFile, openModelFile } from "@flashllm/node-io";
import { NodeFileSink } from "../packages/node-io/src/file-sink.js";
import { ROOT, SHARED_MODELS, STORIES_BIN, STORIES_REF, STORIES_TOK, readJson, rng } from "./helpers.js";
import { LLAMA2_TEMPLATE } from "./chat-templates.js";

interface RefCase { prompt: string; prompt_tokens: number[]; tokens: number[]; steps: number }

const dir = mkdtempSync(join(tmpdir(), "flashllm-shards-"));
const F32 = join(dir, "stories260K-f32.flm");
const Q8 = join(dir, "stories260K-q8.flm");

beforeAll(async () => {
  await convertFile(STORIES_BIN, STORIES_TOK, F32, { dtype: "f32" });
  await convertFile(STORIES_BIN, STORIES_TOK, Q8, { dtype: "q8" });
});

/** Greedy tokens after the prompt, as run.c's `-n steps` (steps counts positions, prompt included). */
async function greedy(model: LanguageModel, prompt: string, steps: number): Promise<number[]> {
  const tokens = [...model.encodePrompt(prompt)];
  for await (const t of model.generate(prompt, { temperature: 0, maxTokens: steps + 1 - tokens.length })) tokens.push(t.token);
  return tokens;
}

/** Teacher-forced logits of `tokens`, copied. */
async function logitsOf(model: LanguageModel, tokens: number[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let pos = 0; pos < tokens.length; pos++) out.push((await model.transformer.forward(tokens[pos], pos)).slice());
  return out;
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) for (let v = 0; v < a[i].length; v++) m = Math.max(m, Math.abs(a[i][v] - b[i][v]));
  return m;
}

/** Worker threads alive in this process (each holds one MessagePort resource). */
const liveWorkers = () => process.getActiveResourcesInfo().filter((r) => r === "MessagePort").length;
// Open file descriptors of this process on `path` (shard 0 runs on this thread with its own handle).
const handlesOn = (path: string) => readdirSync("/proc/self/fd").filter((fd) => {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === realpathSync(path);
  } catch {
    return false; // closed while listing
  }
}).length;

describe("split plan", () => {
  const config = (nHeads: number, nKvHeads: number, hiddenDim: number, vocabSize: number): ModelConfig => ({
    dim: nHeads * 4, hiddenDim, nLayers: 1, nHeads, nKvHeads, vocabSize, seqLen: 8, normEps: 1e-5, ropeTheta: 10000,
    ropeStyle: "interleaved", activation: "silu", gated: true, sharedClassifier: false, norm: "rmsnorm",
  });
  it("covers every KV group, query head, neuron and vocabulary row exactly once, contiguous, sizes within one", () => {
    const r = rng(5);
    for (let trial = 0; trial < 300; trial++) {
      const nKv = 1 + Math.floor(r() * 9);
      const group = 1 + Math.floor(r() * 4);
      const c = config(nKv * group, nKv, 1 + Math.floor(r() * 300), 1 + Math.floor(r() * 500));
      const k = 1 + Math.floor(r() * Math.min(12, c.hiddenDim, c.vocabSize));
      const slices = planShards(c, k);
      expect(slices.length).toBe(k);
      for (const [field, total] of [["kvHeads", c.nKvHeads], ["heads", c.nHeads], ["neurons", c.hiddenDim], ["vocab", c.vocabSize]] as const) {
        let next = 0;
        const counts = slices.map((s) => s[field].count);
        for (const s of slices) {
          expect(s[field].first, `${field} of shard ${s.index}`).toBe(next);
          next += s[field].count;
        }
        expect(next).toBe(total);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(field === "heads" ? group : 1);
      }
      // Query heads follow their KV group: head h reads KV head floor(h / group) on the same shard.
      for (const s of slices) for (let h = s.heads.first; h < s.heads.first + s.heads.count; h++) {
        const kv = Math.floor(h / group);
        expect(kv >= s.kvHeads.first && kv < s.kvHeads.first + s.kvHeads.count).toBe(true);
      }
    }
  });
  it("spreads remainders over the first shards; a shard may own no heads when KV heads < K", () => {
    expect([0, 1, 2].map((s) => evenSplit(172, 3, s))).toEqual([{ first: 0, count: 58 }, { first: 58, count: 57 }, { first: 115, count: 57 }]);
    const s = planShards(config(8, 4, 172, 512), 5);
    expect(s.map((x) => x.kvHeads.count)).toEqual([1, 1, 1, 1, 0]);
    expect(s.map((x) => x.heads.count)).toEqual([2, 2, 2, 2, 0]);
  });
  it("refuses a worker count the model cannot be cut into", () => {
    expect(() => planShards(config(8, 4, 3, 512), 4)).toThrow(/workers must be an integer in \[1, 3\]/);
    expect(() => planShards(config(8, 4, 172, 512), 0)).toThrow(/workers must be an integer/);
    expect(() => planShards(config(8, 4, 172, 512), 1.5)).toThrow(/workers must be an integer/);
  });
});

describe("crc32Combine", () => {
  it("gives the CRC of a concatenation from its parts' CRCs (against zlib's crc32 of the whole)", () => {
    const r = rng(11);
    for (let trial = 0; trial < 200; trial++) {
      const a = Uint8Array.from({ length: Math.floor(r() * 300) }, () => Math.floor(r() * 256));
      const b = Uint8Array.from({ length: Math.floor(r() * (trial % 10 === 0 ? 70000 : 300)) }, () => Math.floor(r() * 256));
      const whole = new Uint8Array(a.length + b.length);
      whole.set(a);
      whole.set(b, a.length);
      expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(zlibCrc32(whole) >>> 0);
    }
  });
});

describe("stories260K across shards", () => {
  const cases = readJson(`${STORIES_REF}/greedy.json`).cases as RefCase[];
  it.each([2, 3])("K=%i: every run.c greedy reference, token for token", async (k) => {
    const model = await openModelFile(F32, { workers: k, contextLength: 256 });
    expect(model).toBeInstanceOf(ShardedFlashModel);
    for (const c of cases) expect(await greedy(model, c.prompt, c.steps), JSON.stringify(c.prompt)).toEqual(c.tokens);
    await model.dispose();
  });

  it("K=2 and K=5 (a shard without heads), both transports: logits within 1e-5 of one instance and 1e-4 of run.c", async () => {
    const trace = readJson(`${STORIES_REF}/trace_once_upon_a_time_first20.json`);
    const ref = new Float32Array(readFileSync(`${STORIES_REF}/logits_once_upon_a_time_first20.f32`).buffer.slice(0));
    const fed: number[] = trace.steps.map((s: { token: number }) => s.token);
    const one = await openModelFile(F32, { contextLength: 32 });
    const base = await logitsOf(one, fed);
    await one.dispose();
    const refRows = fed.map((_, p) => ref.subarray(p * 512, (p + 1) * 512));
    for (const [k, transport] of [[2, "shared"], [2, "message"], [5, "shared"]] as const) {
      const model = (await openModelFile(F32, { workers: k, transport, contextLength: 32 })) as ShardedFlashModel;
      expect(model.group.transport).toBe(transport);
      if (k === 5) expect(model.slices[4].heads.count).toBe(0);
      const got = await logitsOf(model, fed);
      expect(maxDiff(got, base), `K=${k} ${transport} vs K=1`).toBeLessThan(1e-5);
      expect(maxDiff(got, refRows), `K=${k} ${transport} vs run.c`).toBeLessThan(1e-4);
      await model.dispose();
    }
  });

  it("q8: K=3 gives one instance's greedy tokens, logits within 2% of q8's own distance from the f32 model (each shard quantizes its own slices)", async () => {
    const one = await openModelFile(Q8, { contextLength: 128 });
    const three = await openModelFile(Q8, { workers: 3, contextLength: 128 });
    const f32 = await openModelFile(F32, { contextLength: 128 });
    for (const c of cases.slice(0, 3)) expect(await greedy(three, c.prompt, 100)).toEqual(await greedy(one, c.prompt, 100));
    const toks = cases[1].tokens.slice(0, 40);
    const q8One = await logitsOf(one, toks);
    const d = maxDiff(await logitsOf(three, toks), q8One);
    // Each shard quantizes its own slice of the attention output and its own batches of h·scale for
    // the FFN's down columns, so K=3 is not K=1's computation (measured 2.0e-3 against a distance of
    // 0.30 between q8 and f32 logits on these tokens); a wrong split would move the logits by far more.
    const q8Error = maxDiff(q8One, await logitsOf(f32, toks));
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(0.02 * q8Error);
    await three.dispose();
    await one.dispose();
    await f32.dispose();
  });

  it("a file's chat template crosses into the sharded model: chat gives one instance's reply", async () => {
    const path = join(dir, "stories260K-chat.flm");
    await convertFile(STORIES_BIN, STORIES_TOK, path, { chatTemplate: LLAMA2_TEMPLATE });
    const messages = [{ role: "user", content: "Tell me about a cat." }];
    const reply = async (model: LanguageModel) => {
      const ids: number[] = [];
      for await (const t of model.chat(messages, { temperature: 0, maxTokens: 20 })) ids.push(t.token);
      return ids;
    };
    const one = await openModelFile(path, { contextLength: 128 });
    const two = await openModelFile(path, { workers: 2, contextLength: 128 });
    expect(two.chatTemplate).toBe(LLAMA2_TEMPLATE);
    const expected = await reply(one);
    expect(expected.length).toBeGreaterThan(0);
    expect(await reply(two)).toEqual(expected);
    await one.dispose();
    await two.dispose();
  });

  it("workers: 1 is the single-instance path, bit for bit", async () => {
    const a = await openModelFile(F32, { workers: 1, contextLength: 32 });
    const b = await openModelFile(F32, { contextLength: 32 });
    expect(a).toBeInstanceOf(FlashModel);
    const toks = cases[0].tokens.slice(0, 20);
    expect(maxDiff(await logitsOf(a, toks), await logitsOf(b, toks))).toBe(0);
    await a.dispose();
    await b.dispose();
  });

  it("a budget is split across shards: each plan within its share, the same tokens at half the file", async () => {
    const bytes = readFileSync(F32).byteLength;
    // Each shard keeps its own KV cache, activations and classifier slice: at this toy size that is a
    // larger share of the file than at 7B, so 60% rather than the 50% one instance runs in.
    const budget = Math.floor(bytes * 0.6);
    const model = (await openModelFile(F32, { workers: 2, contextLength: 64, memoryBudget: budget })) as ShardedFlashModel;
    const p = model.memoryPlan;
    expect(p.shards.length).toBe(2);
    expect(p.totalBytes).toBeLessThanOrEqual(budget);
    for (const s of p.shards) expect(s.totalBytes).toBeLessThanOrEqual((budget - p.coordinatorBytes) / 2);
    // A cache smaller than the FFN: neurons are evicted and read again, and the tokens do not change.
    expect(p.shards[0].capacity).toBeLessThan(5 * 86);
    expect(await greedy(model, cases[1].prompt, 63)).toEqual(cases[1].tokens.slice(0, 64));
    const figures = await model.shardFigures();
    expect(figures.map((f) => f.index)).toEqual([0, 1]);
    for (const f of figures) {
      expect(f.stats.tokens).toBe(63);
      expect(f.stats.bytesRead).toBeGreaterThan(0);
      expect(f.memoryBytes).toBeLessThanOrEqual(s0(p) + 2 * 1024 * 1024); // plan + module and page slack
    }
    await model.dispose();
    const tooSmall = await openModelFile(F32, { workers: 2, memoryBudget: 100_000 }).catch((e) => e);
    expect(tooSmall).toMatchObject({ code: "BUDGET_TOO_SMALL" });
    expect(tooSmall.message).toMatch(/^shard 0 of 2 \(budget share -?\d+ bytes after the coordinator's \d+\)/);
  });
});

const s0 = (p: ShardedFlashModel["memoryPlan"]) => Math.max(...p.shards.map((s) => s.totalBytes));

describe("stories260K-relu with a predictor across shards", () => {
  it("each shard evaluates its rows of the predictor: the same selections and tokens as one instance", async () => {
    const relu = join(dir, "relu.flm");
    const bin = `${ROOT}packages/node-io/models/stories260K-relu/stories260K_relu.bin`;
    await convertFile(bin, `${ROOT}packages/node-io/models/stories260K-relu/tok512.bin`, relu, { activation: "relu" });
    // A random rank-8 predictor: what is checked is the split (rows of B and c per shard, A whole).
    const r = rng(3);
    const randn = (n: number) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * 0.5);
    const layers = Array.from({ length: 5 }, () => ({ rank: 8, a: randn(8 * 64), b: randn(172 * 8), c: randn(172), threshold: 0.1 }));
    const file = await openFlm(await NodeFileSource.open(relu));
    const withPred = join(dir, "relu-pred.flm");
    const sink = await NodeFileSink.create(withPred);
    await writeWithPredictor(file, { dim: 64, hiddenDim: 172, recallTarget: 0.9, layers }, sink);
    await sink.commit();
    await file.source.close();
    const one = await openModelFile(withPred, { contextLength: 128 });
    const two = (await openModelFile(withPred, { workers: 2, contextLength: 128 })) as ShardedFlashModel;
    const prompt = "Once upon a time";
    expect(await greedy(two, prompt, 100)).toEqual(await greedy(one, prompt, 100));
    const f1 = (one as FlashModel).flash.stats;
    const f2 = await two.shardFigures();
    expect(f1.activeNeurons).toBeLessThan(0.9 * f1.layerRuns * 172); // the predictor skips neurons
    expect(f2[0].stats.activeNeurons + f2[1].stats.activeNeurons).toBe(f1.activeNeurons);
    // Shards read ahead by default (the lookahead: layer l+1's neurons during layer l); off on request.
    for (const f of f2) expect(f.prefetch.issued, `shard ${f.index}`).toBeGreaterThan(0);
    const noAhead = (await openModelFile(withPred, { workers: 2, contextLength: 128, prefetch: false })) as ShardedFlashModel;
    expect(await greedy(noAhead, prompt, 100)).toEqual(await greedy(one, prompt, 100));
    for (const f of await noAhead.shardFigures()) expect(f.prefetch.issued).toBe(0);
    await noAhead.dispose();
    await two.dispose();
    await one.dispose();
    // flashllm eval --workers 2 (the sparse model in shards): the same report as one instance.
    const { spawnSync } = await import("node:child_process");
    const evalWith = (w: number) =>
      spawnSync(process.execPath, [join(ROOT, "packages/node-io/dist/cli.js"), "eval", withPred, "--text", join(ROOT, "test/data/tinystories_tail60k.txt"), "--positions", "200", "--workers", String(w)], { encoding: "utf8" });
    const e1 = evalWith(1);
    const e2 = evalWith(2);
    expect(e1.status, e1.stderr).toBe(0);
    expect(e2.status, e2.stderr).toBe(0);
    expect(e1.stdout).toMatch(/selector predictor on 200 held-out positions/);
    expect(e2.stdout).toBe(e1.stdout);
  });
});

describe("failures", () => {
  let before = 0;
  beforeAll(() => {
    before = liveWorkers();
  });
  afterAll(() => {
    expect(liveWorkers()).toBe(before);
  });

  it("dispose ends every worker; a second dispose does nothing", async () => {
    const model = await openModelFile(F32, { workers: 3, threads: 3, contextLength: 16 });
    // Shard 0 runs on this thread, shards 1 and 2 in workers; each has its own handle on the file (the
    // workers' descriptors are this process's too), and so has the coordinator.
    expect(liveWorkers()).toBe(before + 2);
    expect(handlesOn(F32)).toBe(4);
    await model.dispose();
    expect(liveWorkers()).toBe(before);
    expect(handlesOn(F32)).toBe(0);
    await model.dispose();
  });

  it("a shard whose reads fail ends the generation with a ShardError naming it; every worker is gone", async () => {
    const path = join(dir, "truncated.flm");
    copyFileSync(F32, path);
    const model = await openModelFile(path, { workers: 2, contextLength: 64 });
    const m = (model as ShardedFlashModel).file.manifest;
    // Cut the file inside the last layer's FFN section, in shard 1's neurons: only shard 1 reads there.
    const last = m.sections.find((s) => s.name === `ffn.${m.config.nLayers - 1}`)!;
    truncateSync(path, last.offset + 100 * m.ffn.bundleStride);
    const err = await greedy(model, "Once upon a time", 20).catch((e) => e);
    expect(err).toMatchObject({ name: "ShardError", code: "SHARD_FAILED", shard: 1 });
    expect(err.message).toMatch(/^shard 1: SourceError \[READ_FAILED\]/);
    expect(liveWorkers()).toBe(before);
    // The model is unusable now, and says why.
    await expect(greedy(model, "Once", 5)).rejects.toMatchObject({ code: "SHARD_FAILED", shard: 1 });
    await model.dispose();
  });

  it("shard 0 (on this thread) whose reads fail: a ShardError naming it, the workers torn down, its file handle closed", async () => {
    const { openFlashModel, localShardPort, FaultInjectingSource } = { ...(await import("@flashllm/sdk/internal")), ...(await import("@flashllm/sdk/testing")) };
    const file = await openFlm(await NodeFileSource.open(F32));
    const m = file.manifest;
    await file.source.close();
    const last = m.sections.find((s) => s.name === `ffn.${m.config.nLayers - 1}`)!;
    const workers = new NodeShardHost(F32);
    // Shard 0's own source fails every read in the last layer's FFN: only shard 0 sees a fault.
    const host = {
      spawn: (s: number) => s > 0 ? workers.spawn(s) : localShardPort(async () => new FaultInjectingSource(await NodeFileSource.open(F32), { range: { offset: last.offset, length: last.length }, rates: { error: 1 } })),
    };
    const source = await NodeFileSource.open(F32);
    const model = await openFlashModel(source, { workers: 2, shardHost: host, contextLength: 64 });
    expect(liveWorkers()).toBe(before + 1);
    const err = await greedy(model, "Once upon a time", 20).catch((e) => e);
    expect(err).toMatchObject({ name: "ShardError", code: "SHARD_FAILED", shard: 0 });
    expect(err.message).toMatch(/^shard 0: SourceError \[READ_FAILED\]: injected read error/);
    expect(liveWorkers()).toBe(before);
    expect(handlesOn(F32)).toBe(1); // the coordinator's own source only: shard 0's and shard 1's are closed
    await model.dispose();
    await source.close();
    expect(handlesOn(F32)).toBe(0);
  });

  it("more shards than threads: K=3 on 2 threads is one worker (shards 0 and 2 here, 1 there), run.c's tokens, nothing left after dispose", async () => {
    const model = await openModelFile(F32, { workers: 3, threads: 2, contextLength: 256 });
    expect(liveWorkers()).toBe(before + 1);
    expect(handlesOn(F32)).toBe(4); // the coordinator's and one per shard, wherever it runs
    const cases = readJson(`${STORIES_REF}/greedy.json`).cases as RefCase[];
    for (const c of cases.slice(0, 2)) expect(await greedy(model, c.prompt, c.steps)).toEqual(c.tokens);
    await model.dispose();
    expect(liveWorkers()).toBe(before);
    expect(handlesOn(F32)).toBe(0);
  });

  it("a worker hosting two shards (K=4 on 2 threads), both transports: logits within 1e-5 of one instance", async () => {
    const toks = (readJson(`${STORIES_REF}/greedy.json`).cases as RefCase[])[0].tokens.slice(0, 24);
    const one = await openModelFile(F32, { contextLength: 32 });
    const base = await logitsOf(one, toks);
    await one.dispose();
    for (const transport of ["shared", "message"] as const) {
      const model = await openModelFile(F32, { workers: 4, threads: 2, transport, contextLength: 32 });
      expect(liveWorkers()).toBe(before + 1);
      expect(maxDiff(await logitsOf(model, toks), base), transport).toBeLessThan(1e-5);
      await model.dispose();
    }
    expect(liveWorkers()).toBe(before);
  });

  it("a worker hosting two shards that exits mid-generation: a ShardError naming one of them, everything torn down", async () => {
    process.env.FLASHLLM_EXIT_AT_STEP = "7";
    const host = new NodeShardHost(F32, { threads: 2, workerScript: join(ROOT, "test/fixtures/exiting-shard-worker.mjs") });
    const { openFlashModel } = await import("@flashllm/sdk");
    const source = await NodeFileSource.open(F32);
    const model = await openFlashModel(source, { workers: 4, shardHost: host, contextLength: 64 });
    expect(liveWorkers()).toBe(before + 1);
    const err = await greedy(model, "Once upon a time", 20).catch((e) => e);
    expect(err).toMatchObject({ code: "SHARD_FAILED" });
    expect(err.message).toMatch(/^shard [0-3]: Error: worker ended: the worker exited with code 7/);
    expect(liveWorkers()).toBe(before);
    await model.dispose();
    await source.close();
    expect(handlesOn(F32)).toBe(0);
    delete process.env.FLASHLLM_EXIT_AT_STEP;
  });

  it("a worker that exits mid-generation: a ShardError naming it, the others torn down", async () => {
    process.env.FLASHLLM_EXIT_AT_STEP = "7";
    const host = new NodeShardHost(F32, { workerScript: join(ROOT, "test/fixtures/exiting-shard-worker.mjs") });
    const { openFlashModel } = await import("@flashllm/sdk");
    const source = await NodeFileSource.open(F32);
    const model = await openFlashModel(source, { workers: 2, shardHost: host, contextLength: 64 });
    const err = await greedy(model, "Once upon a time", 20).catch((e) => e);
    expect(err).toMatchObject({ code: "SHARD_FAILED" });
    expect(err.message).toMatch(/^shard [01]: Error: worker ended: the worker exited with code 7/);
    expect(liveWorkers()).toBe(before);
    await model.dispose();
    await source.close();
    delete process.env.FLASHLLM_EXIT_AT_STEP;
  });

  it("a shard that runs out of heap at start: a ShardError naming it, no worker left", async () => {
    const err = await openModelFile(F32, { workers: 2, contextLength: 16, resourceLimits: { maxOldGenerationSizeMb: 1, maxYoungGenerationSizeMb: 1 } }).catch((e) => e);
    expect(err).toMatchObject({ code: "SHARD_FAILED" });
    expect(err.message).toMatch(/^shard [01]: /);
    expect(liveWorkers()).toBe(before);
  });

  it("abort reaches every shard: AbortedError, then the model generates the same tokens again", async () => {
    const model = await openModelFile(F32, { workers: 2, contextLength: 256 });
    const ac = new AbortController();
    const got: number[] = [];
    const err = await (async () => {
      for await (const t of model.generate("Once upon a time", { temperature: 0, maxTokens: 100, signal: ac.signal })) {
        got.push(t.token);
        if (got.length === 5) ac.abort("stop");
      }
    })().catch((e) => e);
    expect(err).toMatchObject({ name: "AbortedError", code: "ABORTED" });
    expect(got.length).toBe(5);
    expect(model.lastStats?.finishReason).toBe("aborted");
    const ref = readJson(`${STORIES_REF}/greedy.json`).cases[1] as RefCase;
    expect(await greedy(model, ref.prompt, ref.steps)).toEqual(ref.tokens);
    await model.dispose();
  });

  it("abort at random moments (mid-step too): AbortedError or a finished run, and the shards stay in step", async () => {
    const ref = readJson(`${STORIES_REF}/greedy.json`).cases[2] as RefCase;
    for (const transport of ["shared", "message"] as const) {
      const model = await openModelFile(F32, { workers: 2, transport, contextLength: 256 });
      const r = rng(transport === "shared" ? 21 : 22);
      for (let trial = 0; trial < 6; trial++) {
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort("stop"), r() * 40);
        const err = await (async () => {
          for await (const _ of model.generate("Once upon a time", { temperature: 0, maxTokens: 150, signal: ac.signal })) void _;
        })().catch((e) => e);
        clearTimeout(timer);
        if (err !== undefined) expect(err).toMatchObject({ code: "ABORTED" });
      }
      expect(await greedy(model, ref.prompt, ref.steps), transport).toEqual(ref.tokens);
      await model.dispose();
    }
  });

  it("a corrupt resident byte owned by a shard fails the combined checksum: CHECKSUM_MISMATCH, no worker left", async () => {
    const path = join(dir, "corrupt.flm");
    const bytes = readFileSync(F32);
    const file = await openFlm(await NodeFileSource.open(F32));
    const m = file.manifest;
    await file.source.close();
    const resident = m.sections.find((s) => s.name === "resident")!;
    const wq = m.tensors.find((t) => t.name === "layers.3.wq")!;
    bytes[resident.offset + wq.offset + wq.length - 7] ^= 0x10; // the last row: shard 1's head
    writeFileSync(path, bytes);
    const err = await openModelFile(path, { workers: 2, contextLength: 16 }).catch((e) => e);
    expect(err).toMatchObject({ name: "FormatError", code: "CHECKSUM_MISMATCH" });
    expect(err.message).toMatch(/checksum mismatch in section "resident"/);
    expect(liveWorkers()).toBe(before);
  });

  it("bad worker counts and selectors are refused before any worker starts", async () => {
    await expect(openModelFile(F32, { workers: 0 })).rejects.toThrow(/workers must be an integer ≥ 1, got 0/);
    await expect(openModelFile(F32, { workers: 600 })).rejects.toThrow(/workers must be an integer in \[1, 64\]/);
    const { openFlashModel, AllNeurons } = await import("@flashllm/sdk/internal");
    const source = await NodeFileSource.open(F32);
    await expect(openFlashModel(source, { workers: 2 })).rejects.toThrow(/needs a shardHost/);
    await expect(openFlashModel(source, { workers: 2, shardHost: new NodeShardHost(F32), selector: new AllNeurons(172) })).rejects.toThrow(/selector object cannot cross/);
    await source.close();
    expect(liveWorkers()).toBe(before);
  });
});

describe("OPT family across shards", () => {
  it("a random OPTForCausalLM at K=2 and K=3 (a shard without heads, vocabulary 7/7/6): logits within 1e-4 of a float64 forward pass", async () => {
    const { P: positions, V: vocab, makeWeights, referenceLogits, writeCheckpoint } = await import("./opt-helpers.js");
    const optDir = mkdtempSync(join(tmpdir(), "flashllm-opt-shards-"));
    const w = makeWeights();
    writeCheckpoint(optDir, w);
    const out = join(optDir, "opt.flm");
    await convertFile(optDir, join(optDir, "vocab.json"), out);
    for (const k of [2, 3]) {
      const model = (await openModelFile(out, { workers: k, contextLength: positions })) as ShardedFlashModel;
      if (k === 3) expect(model.slices.map((s) => [s.heads.count, s.vocab.count])).toEqual([[1, 7], [1, 7], [0, 6]]);
      const tokens = model.tokenizer.encode("helloabbacafetea");
      const ref = referenceLogits(w, tokens);
      const got = await logitsOf(model, tokens);
      let maxErr = 0;
      for (let pos = 0; pos < tokens.length; pos++) for (let v = 0; v < vocab; v++) maxErr = Math.max(maxErr, Math.abs(got[pos][v] - ref[pos][v]));
      expect(maxErr, `K=${k}`).toBeLessThan(1e-4);
      await model.dispose();
    }
  });

  const GPT = `${SHARED_MODELS}/shakespeare-relu-gpt`;
  it.skipIf(!existsSync(`${GPT}/model.safetensors`))(`shakespeare-relu-gpt at K=2: the reference's greedy tokens${existsSync(GPT) ? "" : " (SKIPPED: ../shared/models absent)"}`, async () => {
    const out = join(dir, "gpt.flm");
    await convertFile(GPT, `${GPT}/vocab.json`, out);
    const model = await openModelFile(out, { workers: 2 });
    const c = readJson(`${GPT}/reference/greedy.json`).cases.find((k: { prompt: string }) => k.prompt === "To be, or not to be");
    const tokens = [...c.prompt_tokens];
    for await (const t of model.generate(c.prompt, { temperature: 0, maxTokens: c.tokens.length - tokens.length })) tokens.push(t.token);
    expect(tokens).toEqual(c.tokens);
    await model.dispose();
  });
});
