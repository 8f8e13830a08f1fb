import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import {
  Kernels, TRACE_PRESETS, TraceSelector, XorShift32, measureTrace, openFlashModel, openFlm, synthShape,
  type FlashModel, type FlashStats, type FlashStrategy, type MemoryPlan, type OpenFlashOptions, type TraceParams,
} from "@flashllm/sdk/internal";
import { parseBudget } from "../budget.js";
import { formatBytes } from "../format-stats.js";
import { NodeFileSource, ThreadedFileSource, type NodeFileSourceStats } from "../source/index.js";
import { shardThreads } from "../shards/node-shard-host.js";
import { synthFile } from "./synth.js";

export interface BenchCommandOptions {
  model?: string;
  shape: string;
  full: boolean;
  layers?: number;
  vocab?: number;
  memoryBudget: string;
  trace: string;
  active?: number;
  overlap?: number;
  skew?: number;
  /** Override: how clustered a token's new neurons are in storage (0: no particular order). */
  coactivation?: number;
  lookaheadRecall: number;
  window: number;
  tokens: number;
  warmup: number;
  inFlight: number;
  direct: boolean;
  fio: boolean;
  variants?: string;
  outDir: string;
  seed: number;
  maxGap: number;
  queue?: number;
  /** Shard workers (1: the single-instance variants above). */
  workers?: number;
  /** With workers > 1: shard 0 on this thread (default) or in a worker too. */
  firstShardHere?: boolean;
  /** With workers > 1: threads the shards run on (default: the cores). */
  shardThreads?: number;
  /**
   * `predictor`: a real model's own trained predictors (and lookahead) on the tokens of a fixed story,
   * instead of the activation trace on random tokens (for `--model` files made by `flashllm calibrate`).
   */
  selector?: "trace" | "predictor";
  /** Where reads run: `thread` (a reader thread filling a shared WASM memory) or `inline` (this thread). */
  reader?: "thread" | "inline";
}

/** The text `--selector predictor` feeds (teacher-forced), repeated as needed. */
const BENCH_STORY =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog, Max. One day, Lily saw a big red ball under a tree. " +
  "She ran to the ball and kicked it very high. Max barked and ran after it. They played all day until the sun went down, and then they went home happy. ";

/** The variants of one run (docs/benchmarks.md): the paper's baselines and the full method, in one process. */
const VARIANTS = {
  naive: { label: "naive (whole FFN read and computed)", strategy: "naive", bundling: true, prefetch: false, inMemory: false, naiveComputes: "all" },
  "naive-active": { label: "naive read, active computed", strategy: "naive", bundling: true, prefetch: false, inMemory: false, naiveComputes: "selected" },
  bundled: { label: "bundled only", strategy: "bundled", bundling: true, prefetch: false, inMemory: false, naiveComputes: "all" },
  windowed: { label: "windowed only (unbundled rows)", strategy: "windowed", bundling: false, prefetch: false, inMemory: false, naiveComputes: "all" },
  "windowed+bundled": { label: "windowed + bundled", strategy: "windowed", bundling: true, prefetch: false, inMemory: false, naiveComputes: "all" },
  lookahead: { label: "windowed + bundled + lookahead", strategy: "windowed", bundling: true, prefetch: true, inMemory: false, naiveComputes: "all" },
  memory: { label: "all in memory (floor)", strategy: "windowed", bundling: true, prefetch: false, inMemory: true, naiveComputes: "all" },
} as const satisfies Record<string, { label: string; strategy: FlashStrategy; bundling: boolean; prefetch: boolean; inMemory: boolean; naiveComputes: "all" | "selected" }>;
type VariantName = keyof typeof VARIANTS;

interface FioResult {
  sequential: boolean;
  bs: number;
  depth: number;
  bytesPerSec: number;
  iops: number;
}

interface VariantResult {
  name: VariantName;
  label: string;
  skipped?: string;
  tokens: number;
  /**
   * Bundles loaded during warm-up ÷ cache slots, at most 1: below 1 the measured tokens still fill
   * the cache, so they write memory never touched before (its first-touch page faults, 4.3 s per GiB
   * on this VM, land in their I/O time) and evict nothing (eviction's cost is not yet in "memory").
   */
  warmFill?: number;
  msPerToken: number;
  tokensPerSec: number;
  /** Per token, ms: the paper's split. compute = total − I/O − memory (attention, FFN kernel, selector, the rest). */
  ioMs: number;
  memoryMs: number;
  computeMs: number;
  ffnComputeMs: number;
  bytesPerToken: number;
  requestsPerToken: number;
  meanRequestBytes: number;
  /** What the file system was asked for (O_DIRECT rounds to 4 KiB blocks; large requests are split). */
  fsBytesPerToken: number;
  fsReadsPerToken: number;
  hitRate: number;
  neuronsLoadedPerToken: number;
  capacity: number;
  cacheShareOfFfn: number;
  plan: MemoryPlan;
  wasmBytes: number;
  peakRssBytes: number;
  cold: string;
  ioBytesPerSec: number;
  prefetch?: { readMsPerToken: number; waitMsPerToken: number; hiddenShare: number; bytesPerToken: number };
  fio?: FioResult;
  shareOfFio?: number;
  speedup?: number;
  /** Against the second baseline: the whole FFN read, only the active neurons computed. */
  speedupActive?: number;
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

/** `flashllm bench`. */
export async function benchCommand(o: BenchCommandOptions): Promise<void> {
  const say = (m: string) => process.stderr.write(m + "\n");
  const baselineRss = process.memoryUsage().rss;
  const outDir = resolve(o.outDir);
  await mkdir(outDir, { recursive: true });

  // 1. The model: given, or synthesized (kept, so a second run reuses it).
  let path = o.model;
  let shapeName = "given file";
  if (!path) {
    const shape = synthShape(o.shape, o.full ? { nLayers: o.layers, vocabSize: o.vocab } : { nLayers: o.layers ?? 4, vocabSize: o.vocab ?? 4000 });
    shapeName = shape.name;
    const c = shape.config;
    path = join(outDir, `synth-${o.shape}-L${c.nLayers}-v${c.vocabSize}-s${o.seed}.flm`);
    if (!existsSync(path)) await synthFile(shape, path, { seed: o.seed, bundleAlign: 16 });
    else say(`[bench] reusing ${path}`);
  }
  const fileBytes = (await stat(path)).size;
  const budget = parseBudget(o.memoryBudget, fileBytes);
  const preset = TRACE_PRESETS[o.trace];
  if (!preset) throw new Error(`unknown trace preset ${o.trace}`);
  const params: TraceParams = {
    activeFraction: o.active ?? preset.activeFraction,
    overlap: o.overlap ?? preset.overlap,
    skew: o.skew ?? preset.skew,
    coactivation: o.coactivation ?? preset.coactivation ?? 0,
    seed: o.seed,
    lookaheadRecall: o.lookaheadRecall,
  };
  const probe = await NodeFileSource.open(path);
  const file0 = await openFlm(probe);
  const m = file0.manifest;
  const c = m.config;
  const ffnBytes = c.nLayers * c.hiddenDim * m.ffn.bundleStride;
  const ffnStart = file0.ffnLayerOffset(0);
  await probe.close();
  const traceStats = measureTrace(c.hiddenDim, params, 400, o.window);
  const uv = Number(process.env.UV_THREADPOOL_SIZE ?? 4);

  const machine = machineInfo(path);
  const header = [
    `flashllm bench — ${new Date().toISOString()}`,
    `model: ${path} (${shapeName}; ${m.architecture}, dim ${c.dim}, FFN ${c.hiddenDim}${m.ffn.gated ? " gated" : ""} ${c.activation}, ${c.nLayers} layers, vocab ${c.vocabSize}), ${formatBytes(fileBytes)}, FFN ${formatBytes(ffnBytes)} (${m.ffn.dtype}, bundle ${m.ffn.bundleBytes} B, stride ${m.ffn.bundleStride} B)`,
    o.selector === "predictor"
      ? `Active sets come from the file's own trained predictors (prefetch: its lookahead${m.predictor?.lookahead ? ", trained" : ", untrained: layer l+1's predictor on layer l's input"}), on a fixed story, teacher-forced; the trace line below is unused.`
      : `RANDOM WEIGHTS: this measures I/O, memory management and the compute path at this shape, not text quality. Active sets come from the activation-trace selector, not the weights.`,
    `trace "${preset.name}" (${preset.source}): active ${(100 * params.activeFraction).toFixed(1)}%/token, overlap with previous token ${(100 * params.overlap).toFixed(0)}%, hotness skew (Zipf) ${params.skew}, co-activation ${params.coactivation} (${params.coactivation ? "neurons stored in co-activation order" : "neurons stored in no particular order"}); ` +
      `measured: newly needed per token with a window of ${o.window}: ${(100 * traceStats.newPerToken).toFixed(2)}% of the FFN (paper, OPT-6.7B: 2.4%), union over k=1/2/4/8 tokens ${[1, 2, 4, 8].map((k) => (100 * traceStats.union[k]).toFixed(1)).join("/")}%, top-10% neurons ${(100 * traceStats.top10Share).toFixed(1)}% of activations, ${traceStats.newRunsPerNeuron.toFixed(2)} storage runs per newly needed neuron`,
    `budget ${formatBytes(budget)} (${o.memoryBudget} of the file), window ${o.window} tokens, ${o.warmup} warm-up + ${o.tokens} measured tokens per variant, ${o.inFlight} reads in flight (UV_THREADPOOL_SIZE=${uv}, UV_USE_IO_URING=${process.env.UV_USE_IO_URING ?? "unset"}; ${o.queue ?? o.inFlight} submitted at once; ${o.reader === "thread" ? "on a reader thread into a shared WASM memory" : "on the engine's thread"}), runs merged across gaps ≤ ${formatBytes(o.maxGap)}, lookahead recall ${params.lookaheadRecall}`,
    `cold storage: ${o.direct ? "O_DIRECT reads" : "buffered reads"}; the file is also evicted from the page cache before each variant (${hasTool("vmtouch") ? "vmtouch -e" : "dd iflag=nocache"}), checked with fincore`,
    `machine: ${machine.cpu}, ${machine.cores} cores (shared with other work), ${formatBytes(machine.ramBytes)} RAM, ${machine.disk}, Linux ${machine.kernel}, Node ${process.version}`,
  ];
  for (const h of header) say(`[bench] ${h}`);
  if (uv < o.inFlight) say(`[bench] note: UV_THREADPOOL_SIZE=${uv} < ${o.inFlight} reads in flight: libuv runs only ${uv} at once (npm run bench sets it)`);

  // 2'. With shard workers: the sharded engine's variants, per-shard figures, and the round-trip cost.
  const tokenIdsShards = Array.from({ length: o.warmup + o.tokens + 1 }, ((r) => () => r.int(c.vocabSize))(new XorShift32(o.seed + 17)));
  if ((o.workers ?? 1) > 1) {
    const { benchShards } = await import("./bench-shards.js");
    const names = o.variants?.split(",").map((s) => s.trim()) ?? ["windowed+bundled"];
    const threads = Math.min(o.workers ?? 1, shardThreads(o.shardThreads));
    const workerThreads = o.firstShardHere === false ? threads : threads - 1;
    say(`[bench] ${o.workers} shards on ${o.firstShardHere === false ? `${threads} worker threads` : `this thread and ${workerThreads} worker thread${workerThreads === 1 ? "" : "s"}`} (shard i on thread i mod ${threads}; load average ${loadavg().map((x) => x.toFixed(1)).join(" ")})`);
    const shardResults = await benchShards(path, names, { workers: o.workers!, budget, params, tokenIds: tokenIdsShards, window: o.window, warmup: o.warmup, tokens: o.tokens, direct: o.direct, inFlight: o.queue ?? o.inFlight, maxGap: o.maxGap, firstShardHere: o.firstShardHere ?? true, shardThreads: o.shardThreads }, say);
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const base = join(outDir, `bench-${c.nLayers}L-${o.workers}w-${stamp}`);
    await writeFile(`${base}.json`, JSON.stringify({ header, machine, loadavg: loadavg(), model: { path, shape: shapeName, bytes: fileBytes, config: c }, budget, params, options: o, results: shardResults }, null, 2));
    say(`[bench] wrote ${base}.json`);
    return;
  }

  // 2. The variants, one after another, each from cold storage with a fresh WASM memory.
  const names = (o.variants?.split(",").map((s) => s.trim()) ?? Object.keys(VARIANTS)) as VariantName[];
  for (const n of names) if (!(n in VARIANTS)) throw new Error(`unknown variant "${n}"; known: ${Object.keys(VARIANTS).join(", ")}`);
  const results: VariantResult[] = [];
  const tokenIds = o.selector === "predictor" ? await storyTokens(path, o.warmup + o.tokens + 1) : Array.from({ length: o.warmup + o.tokens + 1 }, ((r) => () => r.int(c.vocabSize))(new XorShift32(o.seed + 17)));
  for (const name of names) {
    const spec = VARIANTS[name];
    if (spec.inMemory && fileBytes > 3.75 * 2 ** 30) { // one instance; `--workers K` holds up to K × 4 GiB
      results.push({ name, label: spec.label, skipped: `the model (${formatBytes(fileBytes)}) does not fit wasm32's 4 GiB`, ...emptyResult() });
      say(`[bench] ${spec.label}: skipped: the model does not fit wasm32's 4 GiB`);
      continue;
    }
    await settle(); // the previous variant's WASM memory goes before this one starts
    const cold = evict(path);
    say(`[bench] ${spec.label}: ${cold}`);
    const r = await runVariant(path, name, { ...o, budget, params, tokenIds, cold });
    results.push(r);
    say(`[bench]   ${r.msPerToken.toFixed(1)} ms/token: I/O ${r.ioMs.toFixed(1)}, memory ${r.memoryMs.toFixed(1)}, compute ${r.computeMs.toFixed(1)}; ${formatBytes(r.bytesPerToken)}/token in ${r.requestsPerToken.toFixed(0)} requests; hit ${(100 * r.hitRate).toFixed(1)}%; ${formatBytes(r.ioBytesPerSec)}/s while reading${fillNote(r.warmFill)}`);
  }

  // 3. fio on the same file, request size and depth: the storage limit each variant is measured against.
  const fioCache = new Map<string, FioResult>();
  let fioNote = "";
  if (o.fio) {
    if (!hasTool("fio") && hasTool("apt-get") && process.getuid?.() === 0) {
      say("[bench] fio is missing: installing it (apt-get install -y fio)");
      spawnSync("apt-get", ["install", "-y", "fio"], { stdio: "ignore" });
    }
    if (!hasTool("fio")) {
      fioNote = "fio is missing: install it (Debian: apt-get install -y fio) and run again";
      say(`[bench] ${fioNote}`);
    } else {
      for (const r of results) {
        if (r.skipped || r.fsReadsPerToken === 0) continue;
        const bs = Math.min(8 << 20, Math.max(4096, Math.ceil(r.fsBytesPerToken / r.fsReadsPerToken / 4096) * 4096));
        const sequential = r.name === "naive" || r.name === "naive-active" || r.name === "memory"; // naive reads each layer front to back
        const key = `${bs}/${o.inFlight}/${sequential}`;
        if (!fioCache.has(key)) {
          say(`[bench] fio: ${sequential ? "sequential" : "random"} reads of ${formatBytes(bs)}, ${o.inFlight} in flight, O_DIRECT, over the FFN sections`);
          fioCache.set(key, runFio(path, ffnStart, ffnBytes, bs, o.inFlight, o.full ? 6 : 4, sequential));
        }
        r.fio = fioCache.get(key)!;
        r.shareOfFio = r.ioBytesPerSec / r.fio.bytesPerSec;
      }
    }
  }
  const naive = results.find((r) => r.name === "naive" && !r.skipped);
  const naiveActive = results.find((r) => r.name === "naive-active" && !r.skipped);
  for (const r of results) {
    if (r.skipped) continue;
    if (naive) r.speedup = naive.msPerToken / r.msPerToken;
    if (naiveActive) r.speedupActive = naiveActive.msPerToken / r.msPerToken;
  }

  // 4. Report: table, aims, JSON, SVG.
  const table = formatTable(results);
  const aims = formatAims(results, baselineRss, o.inFlight);
  process.stdout.write(["", ...header, "", table, "", ...aims, ...(fioNote ? [fioNote] : []), ""].join("\n") + "\n");
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const base = join(outDir, `bench-${c.nLayers}L-${stamp}`);
  await writeFile(`${base}.json`, JSON.stringify({ header, machine, model: { path, shape: shapeName, bytes: fileBytes, config: c, ffn: m.ffn }, budget, params, traceStats, options: o, results, aims }, null, 2));
  await writeFile(`${base}.svg`, svgChart(results, `${shapeName}, budget ${o.memoryBudget} (${formatBytes(budget)}), ${o.direct ? "O_DIRECT" : "evicted page cache"}`));
  say(`[bench] wrote ${base}.json and ${base}.svg`);
}

/** `n` token ids of {@link BENCH_STORY} (repeated) in the model's own tokenizer. */
async function storyTokens(path: string, n: number): Promise<number[]> {
  const source = await NodeFileSource.open(path);
  try {
    const model = await openFlashModel(source, { contextLength: 8 });
    const ids = model.tokenizer.encode(BENCH_STORY.repeat(Math.ceil(n / 20)), true, false).slice(0, n);
    await model.dispose();
    return ids;
  } finally {
    await source.close();
  }
}

interface RunContext extends BenchCommandOptions {
  budget: number;
  params: TraceParams;
  tokenIds: number[];
  cold: string;
}

/**
 * Opens the model for one variant exactly as users do (`openFlashModel`, its own WASM memory and
 * source; variants differ only in options), runs warm-up and measured tokens through its Transformer.
 */
async function runVariant(path: string, name: VariantName, o: RunContext): Promise<VariantResult> {
  const spec = VARIANTS[name];
  const threaded = o.reader === "thread";
  const sourceOptions = { direct: o.direct, maxInFlight: o.queue ?? o.inFlight };
  const source = threaded ? await ThreadedFileSource.open(path, sourceOptions) : await NodeFileSource.open(path, sourceOptions);
  let model: FlashModel | undefined;
  try {
    const c = (await openFlm(source)).manifest.config;
    const trace = new TraceSelector(c.hiddenDim, c.nLayers, { ...o.params, firstTokenAll: spec.inMemory }, "trace");
    model = await openModel(source, {
      memoryBudget: spec.inMemory ? undefined : o.budget,
      contextLength: o.warmup + o.tokens + 2,
      strategy: spec.strategy,
      window: o.window,
      selector: o.selector === "predictor" ? "predictor" : trace,
      bundling: spec.bundling,
      prefetch: spec.prefetch,
      naiveComputes: spec.naiveComputes,
      maxGapBytes: o.maxGap,
      kernels: threaded ? await Kernels.load(undefined, { sharedMemory: true }) : undefined,
    });
    await settle(); // the resident section's JS copy is garbage now: let V8 free it before RSS is sampled
    const ffn = model.flash;
    const t = model.transformer;
    let pos = 0;
    for (; pos < o.warmup; pos++) await t.forward(o.tokenIds[pos], pos);
    const s0 = { ...ffn.stats };
    const warmFill = Math.min(1, s0.neuronsLoaded / ffn.capacity);
    const src0 = source.stats;
    const pf0 = { ...ffn.prefetchStats };
    let peakRss = process.memoryUsage().rss;
    const t0 = performance.now();
    for (let i = 0; i < o.tokens; i++, pos++) {
      await t.forward(o.tokenIds[pos], pos);
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }
    const total = performance.now() - t0;
    const s = diffStats(ffn.stats, s0);
    const src = diffSource(source.stats, src0);
    const n = o.tokens;
    const io = s.ioMs / n;
    const mem = s.memoryMs / n;
    const pf = ffn.prefetchStats;
    const r: VariantResult = {
      name, label: spec.label, tokens: n,
      msPerToken: total / n, tokensPerSec: (1000 * n) / total,
      ioMs: io, memoryMs: mem, computeMs: total / n - io - mem, ffnComputeMs: s.computeMs / n,
      bytesPerToken: s.bytesRead / n, requestsPerToken: s.readRequests / n, meanRequestBytes: s.bytesRead / Math.max(s.readRequests, 1),
      fsBytesPerToken: src.bytes / n, fsReadsPerToken: src.reads / n,
      hitRate: s.cacheHits / Math.max(s.activeNeurons, 1), neuronsLoadedPerToken: s.neuronsLoaded / n,
      capacity: ffn.capacity, cacheShareOfFfn: ffn.capacity / (c.nLayers * c.hiddenDim), warmFill,
      plan: model.memoryPlan, wasmBytes: model.wasmMemoryBytes, peakRssBytes: peakRss, cold: o.cold,
      ioBytesPerSec: src.ioWaitMs > 0 ? src.bytes / (src.ioWaitMs / 1000) : 0,
    };
    if (spec.prefetch) {
      const readMs = pf.readMs - pf0.readMs;
      const waitMs = pf.waitMs - pf0.waitMs;
      r.prefetch = { readMsPerToken: readMs / n, waitMsPerToken: waitMs / n, hiddenShare: readMs > 0 ? 1 - waitMs / readMs : 0, bytesPerToken: (pf.bytes - pf0.bytes) / n };
    }
    return r;
  } finally {
    await model?.dispose();
    await source.close();
  }
}

// In its own frame, so no interpreter register keeps the resident section's JS copy alive afterwards.
function openModel(source: NodeFileSource | ThreadedFileSource, opts: OpenFlashOptions): Promise<FlashModel> {
  return openFlashModel(source, opts);
}

/** Says when the measured tokens were still filling the cache (see {@link VariantResult.warmFill}). */
export function fillNote(fill: number | undefined): string {
  if (fill === undefined || fill >= 1) return "";
  return `; the cache was ${(100 * fill).toFixed(0)}% filled after warm-up: measured tokens still fill it (first-touch page faults, no evictions yet; a longer --warmup measures the steady state)`;
}

/** Full GCs with pauses between, so V8's array-buffer sweeper has returned freed memory to the OS. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
}

function diffStats(a: FlashStats, b: FlashStats): FlashStats {
  const out = { ...a };
  for (const key of Object.keys(a) as (keyof FlashStats)[]) out[key] = a[key] - b[key];
  return out;
}

function diffSource(a: NodeFileSourceStats, b: NodeFileSourceStats): NodeFileSourceStats {
  const out = { ...a };
  for (const key of Object.keys(a) as (keyof NodeFileSourceStats)[]) out[key] = a[key] - b[key];
  return out;
}

function emptyResult(): Omit<VariantResult, "name" | "label" | "skipped"> {
  return {
    tokens: 0, msPerToken: NaN, tokensPerSec: NaN, ioMs: NaN, memoryMs: NaN, computeMs: NaN, ffnComputeMs: NaN, bytesPerToken: NaN, requestsPerToken: NaN,
    meanRequestBytes: NaN, fsBytesPerToken: NaN, fsReadsPerToken: 0, hitRate: NaN, neuronsLoadedPerToken: NaN, capacity: 0, cacheShareOfFfn: NaN,
    plan: undefined as unknown as MemoryPlan, wasmBytes: NaN, peakRssBytes: NaN, cold: "", ioBytesPerSec: NaN,
  };
}

function hasTool(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

/** Drops the file from the page cache and says how much of it fincore still finds there. */
export function evict(path: string): string {
  if (hasTool("vmtouch")) spawnSync("vmtouch", ["-q", "-e", path], { stdio: "ignore" });
  else spawnSync("dd", [`if=${path}`, "iflag=nocache", "count=0", "status=none"], { stdio: "ignore" });
  if (!hasTool("fincore")) return "evicted (fincore missing: not checked)";
  const out = spawnSync("fincore", ["--bytes", "--noheadings", "--output", "RES", path], { encoding: "utf8" }).stdout.trim();
  return `evicted: fincore reports ${formatBytes(Number(out) || 0)} of the file cached`;
}

function runFio(path: string, offset: number, size: number, bs: number, depth: number, seconds: number, sequential: boolean): FioResult {
  const out = execFileSync("fio", [
    "--name=flashllm", `--filename=${path}`, "--readonly", `--rw=${sequential ? "read" : "randread"}`, `--bs=${bs}`, `--iodepth=${depth}`, "--ioengine=libaio", "--direct=1",
    `--offset=${offset}`, `--size=${Math.floor(size / bs) * bs}`, `--runtime=${seconds}`, "--time_based", "--output-format=json",
  ], { encoding: "utf8", maxBuffer: 64 << 20 });
  const job = JSON.parse(out.slice(out.indexOf("{"))).jobs[0].read;
  return { sequential, bs, depth, bytesPerSec: job.bw_bytes, iops: job.iops };
}

function machineInfo(path: string): { cpu: string; cores: number; ramBytes: number; kernel: string; disk: string } {
  let disk = "disk unknown";
  try {
    const dev = execFileSync("df", ["--output=source", path], { encoding: "utf8" }).trim().split("\n").pop()!.trim();
    const name = dev.replace("/dev/", "").replace(/[0-9]+$/, "");
    const rot = execFileSync("cat", [`/sys/block/${name}/queue/rotational`], { encoding: "utf8" }).trim();
    disk = `${dev} (${rot === "0" ? "non-rotational" : "rotational"}, virtual disk)`;
  } catch {
    /* keep "unknown" */
  }
  return { cpu: cpus()[0]?.model ?? "unknown CPU", cores: cpus().length, ramBytes: totalmem(), kernel: release(), disk };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

function formatTable(results: VariantResult[]): string {
  const head = ["variant", "ms/token", "tok/s", "I/O ms", "memory ms", "compute ms", "speed-up", "vs naive-active", "MiB/token", "requests/token", "mean request", "hit rate", "read GB/s", "fio GB/s", "% of fio", "peak RSS", "WASM memory"];
  const rows = results.map((r) =>
    r.skipped
      ? [r.label, `skipped: ${r.skipped}`, ...head.slice(2).map(() => "")]
      : [
          r.label, r.msPerToken.toFixed(1), r.tokensPerSec.toFixed(2), r.ioMs.toFixed(1), r.memoryMs.toFixed(2), r.computeMs.toFixed(1),
          r.speedup ? `${r.speedup.toFixed(1)}x` : "", r.speedupActive ? `${r.speedupActive.toFixed(1)}x` : "", mib(r.bytesPerToken), r.requestsPerToken.toFixed(0), formatBytes(r.meanRequestBytes),
          `${(100 * r.hitRate).toFixed(1)}%`, r.ioBytesPerSec > 0 ? (r.ioBytesPerSec / 1e9).toFixed(2) : "", r.fio ? (r.fio.bytesPerSec / 1e9).toFixed(2) : "",
          r.shareOfFio !== undefined ? `${(100 * r.shareOfFio).toFixed(0)}%` : "", formatBytes(r.peakRssBytes), formatBytes(r.wasmBytes),
        ],
  );
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

function formatAims(results: VariantResult[], baselineRss: number, inFlight: number): string[] {
  const ok = (b: boolean) => (b ? "MET" : "NOT MET");
  const run = results.filter((r) => !r.skipped && r.name !== "memory");
  const best = run.filter((r) => !r.name.startsWith("naive")).sort((a, b) => a.msPerToken - b.msPerToken)[0];
  const lines = ["Aims (figures from this run):"];
  if (best?.speedup !== undefined) {
    const naive = run.find((r) => r.name === "naive");
    const fair = naive?.shareOfFio !== undefined ? ` (naive read at ${(100 * naive.shareOfFio).toFixed(0)}% of fio: the speed-up counts only at ≥85%: ${ok(naive.shareOfFio >= 0.85)})` : "";
    lines.push(`- ≥10x faster than naive: best is ${best.label} at ${best.speedup.toFixed(1)}x: ${ok(best.speedup >= 10)}${fair}`);
    if (best.speedupActive !== undefined) lines.push(`- against the second baseline (whole FFN read, active neurons computed): ${best.speedupActive.toFixed(1)}x`);
  }
  for (const r of run) {
    const parts = [`- ${r.label}:`];
    if (r.shareOfFio !== undefined && r.fio) parts.push(`I/O ${(r.ioBytesPerSec / 1e9).toFixed(2)} GB/s = ${(100 * r.shareOfFio).toFixed(0)}% of fio (${r.fio.sequential ? "sequential" : "random"} ${formatBytes(r.fio.bs)} reads, ${inFlight} in flight: ${(r.fio.bytesPerSec / 1e9).toFixed(2)} GB/s) [≥85%: ${ok(r.shareOfFio >= 0.85)}];`);
    const memShare = r.memoryMs / r.msPerToken;
    parts.push(`memory management ${(100 * memShare).toFixed(1)}% of the token time [<5%: ${ok(memShare < 0.05)}];`);
    const limit = r.plan.budget + r.plan.overheadBytes;
    parts.push(`WASM memory ${formatBytes(r.wasmBytes)} vs budget + runtime overhead ${formatBytes(limit)} [${ok(r.wasmBytes <= limit)}];`);
    // Host-side runtime overhead: the Node process before any model (V8, libuv, the CLI) and the file
    // source's page-aligned bounce buffers, one per read in flight (1 MiB + 8 KiB each).
    const host = baselineRss + inFlight * ((1 << 20) + 8192);
    parts.push(`peak RSS while decoding ${formatBytes(r.peakRssBytes)} vs that + host overhead ${formatBytes(host)} (Node at start ${formatBytes(baselineRss)}, ${inFlight} bounce buffers) = ${formatBytes(limit + host)} [${ok(r.peakRssBytes <= limit + host)}]`);
    if (!r.name.startsWith("naive")) parts.push(`; loaded ${(100 * r.neuronsLoadedPerToken / (r.capacity / r.cacheShareOfFfn)).toFixed(2)}% of the FFN per token (cache holds ${(100 * r.cacheShareOfFfn).toFixed(1)}% of it)`);
    if (r.prefetch) parts.push(`; lookahead hid ${(100 * r.prefetch.hiddenShare).toFixed(0)}% of its prefetch read time (${r.prefetch.readMsPerToken.toFixed(1)} ms/token read, ${r.prefetch.waitMsPerToken.toFixed(1)} ms/token still waited)`);
    lines.push(parts.join(" "));
  }
  return lines;
}

/** A horizontal stacked-bar chart of the per-token split, one bar per variant. */
function svgChart(results: VariantResult[], subtitle: string): string {
  const rows = results.filter((r) => !r.skipped);
  const W = 900;
  const left = 250;
  const barH = 26;
  const top = 60;
  const H = top + rows.length * (barH + 14) + 50;
  const max = Math.max(...rows.map((r) => r.msPerToken), 1);
  const sx = (ms: number) => ((W - left - 120) * ms) / max;
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const colors = { io: "#d9534f", memory: "#f0ad4e", compute: "#5b8def" };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">Time per token: I/O wait, memory management, compute (ms)</text>`,
    `<text x="10" y="42" fill="#555">${esc(subtitle)}</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * (barH + 14);
    let x = left;
    parts.push(`<text x="${left - 8}" y="${y + barH / 2 + 4}" text-anchor="end">${esc(r.label)}</text>`);
    for (const [key, ms] of [["io", r.ioMs], ["memory", r.memoryMs], ["compute", r.computeMs]] as const) {
      const w = Math.max(0, sx(ms));
      parts.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${colors[key]}"><title>${key} ${ms.toFixed(1)} ms</title></rect>`);
      x += w;
    }
    parts.push(`<text x="${(x + 6).toFixed(1)}" y="${y + barH / 2 + 4}">${r.msPerToken.toFixed(0)} ms${r.speedup ? ` (${r.speedup.toFixed(1)}x)` : ""}</text>`);
  });
  const ly = H - 22;
  [["I/O wait", colors.io], ["memory management", colors.memory], ["compute", colors.compute]].forEach(([t, col], i) => {
    parts.push(`<rect x="${left + i * 190}" y="${ly - 11}" width="14" height="14" fill="${col}"/><text x="${left + i * 190 + 20}" y="${ly}">${t}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
