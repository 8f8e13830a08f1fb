import { performance } from "node:perf_hooks";
import { openShardedModel, type FlashStrategy, type ShardFigures, type ShardedFlashModel, type TraceParams } from "@flashllm/sdk/internal";
import { formatBytes } from "../format-stats.js";
import { NodeShardHost } from "../shards/node-shard-host.js";
import { NodeFileSource } from "../source/index.js";
import { evict, fillNote, settle } from "./bench.js";

/** The variants `bench --workers K` runs (the trace selector decides what is active, as in `bench`). */
export const SHARD_VARIANTS = {
  "windowed+bundled": { label: "windowed + bundled", strategy: "windowed", prefetch: false, inMemory: false },
  lookahead: { label: "windowed + bundled + lookahead", strategy: "windowed", prefetch: true, inMemory: false },
  bundled: { label: "bundled only", strategy: "bundled", prefetch: false, inMemory: false },
  naive: { label: "naive (whole FFN per token)", strategy: "naive", prefetch: false, inMemory: false },
  // No budget, and the first (warm-up) token loads every neuron: the measured tokens read nothing, so
  // this is the shards' compute alone (the aim "2 workers ≤ 0.55x of 1" is about this part).
  memory: { label: "all in memory (floor)", strategy: "windowed", prefetch: false, inMemory: true },
} as const satisfies Record<string, { label: string; strategy: FlashStrategy; prefetch: boolean; inMemory: boolean }>;

export interface ShardBenchOptions {
  workers: number;
  budget: number;
  params: TraceParams;
  tokenIds: number[];
  window: number;
  warmup: number;
  tokens: number;
  direct: boolean;
  inFlight: number;
  maxGap: number;
  firstShardHere: boolean;
  /** Threads the shards run on (default: the cores). */
  shardThreads?: number;
}

/** Per shard, per measured token. */
export interface ShardRow {
  index: number;
  attentionMs: number;
  feedForwardMs: number;
  logitsMs: number;
  ioMs: number;
  memoryMs: number;
  ffnComputeMs: number;
  bytesRead: number;
  hitRate: number;
  capacity: number;
  wasmBytes: number;
}

export interface ShardBenchResult {
  name: string;
  label: string;
  workers: number;
  openMs: number;
  msPerToken: number;
  /** ms/token − the slowest shard's I/O wait + memory management: the same split as `bench` with one instance. */
  computeMs: number;
  /** The slowest shard's busy time (attention + FFN step + classifier) per token, ms. */
  busiestShardMs: number;
  /** A do-nothing step (broadcast + gather), µs; a token makes 2·layers + 1 of them. */
  roundTripUs: number;
  bytesPerToken: number;
  peakRssBytes: number;
  coordinatorBytes: number;
  shards: ShardRow[];
  cold: string;
  /** The least-filled shard's cache after warm-up (bundles loaded ÷ slots, at most 1; see bench's `warmFill`). */
  warmFill: number;
}

function diff(a: ShardFigures, b: ShardFigures, n: number): ShardRow {
  const s = a.stats;
  const t = b.stats;
  return {
    index: a.index,
    attentionMs: (a.busy.attentionMs - b.busy.attentionMs) / n,
    feedForwardMs: (a.busy.feedForwardMs - b.busy.feedForwardMs) / n,
    logitsMs: (a.busy.logitsMs - b.busy.logitsMs) / n,
    ioMs: (s.ioMs - t.ioMs) / n,
    memoryMs: (s.memoryMs - t.memoryMs) / n,
    ffnComputeMs: (s.computeMs - t.computeMs) / n,
    bytesRead: (s.bytesRead - t.bytesRead) / n,
    hitRate: (s.cacheHits - t.cacheHits) / Math.max(s.activeNeurons - t.activeNeurons, 1),
    capacity: a.capacity,
    wasmBytes: a.memoryBytes,
  };
}

/** Runs each variant with `workers` shard workers, from cold storage, and measures it. */
export async function benchShards(path: string, names: string[], o: ShardBenchOptions, say: (m: string) => void): Promise<ShardBenchResult[]> {
  const results: ShardBenchResult[] = [];
  for (const name of names) {
    const spec = SHARD_VARIANTS[name as keyof typeof SHARD_VARIANTS];
    if (!spec) throw new Error(`--workers runs the variants ${Object.keys(SHARD_VARIANTS).join(", ")}; not "${name}"`);
    await settle();
    const cold = evict(path);
    say(`[bench] ${spec.label}, ${o.workers} workers: ${cold}`);
    const source = await NodeFileSource.open(path, { direct: o.direct, maxInFlight: o.inFlight });
    let model: ShardedFlashModel | undefined;
    try {
      const t0 = performance.now();
      model = await openShardedModel(source, {
        workers: o.workers,
        shardHost: new NodeShardHost(path, { direct: o.direct, maxInFlight: o.inFlight, firstShardHere: o.firstShardHere, threads: o.shardThreads }),
        memoryBudget: spec.inMemory ? undefined : o.budget,
        strategy: spec.strategy,
        prefetch: spec.prefetch,
        window: o.window,
        maxGapBytes: o.maxGap,
        traceSelector: { ...o.params, firstTokenAll: spec.inMemory },
        contextLength: o.warmup + o.tokens + 2,
      });
      const openMs = performance.now() - t0;
      let pos = 0;
      for (; pos < o.warmup; pos++) await model.transformer.forward(o.tokenIds[pos], pos);
      const f0 = await model.shardFigures();
      const warmFill = Math.min(...f0.map((f) => Math.min(1, f.stats.neuronsLoaded / f.capacity)));
      let peakRss = process.memoryUsage().rss;
      const t1 = performance.now();
      for (let i = 0; i < o.tokens; i++, pos++) {
        await model.transformer.forward(o.tokenIds[pos], pos);
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      }
      const total = performance.now() - t1;
      const f1 = await model.shardFigures();
      const rows = f1.map((f, s) => diff(f, f0[s], o.tokens));
      const roundTripUs = await model.group.roundTripMicros();
      const msPerToken = total / o.tokens;
      const r: ShardBenchResult = {
        name, label: spec.label, workers: o.workers, openMs, msPerToken,
        computeMs: msPerToken - Math.max(...rows.map((x) => x.ioMs + x.memoryMs)),
        busiestShardMs: Math.max(...rows.map((x) => x.attentionMs + x.feedForwardMs + x.logitsMs)),
        roundTripUs, bytesPerToken: rows.reduce((a, x) => a + x.bytesRead, 0), peakRssBytes: peakRss,
        coordinatorBytes: model.wasmMemoryBytes, shards: rows, cold, warmFill,
      };
      results.push(r);
      say(`[bench]   ${msPerToken.toFixed(1)} ms/token, compute ${r.computeMs.toFixed(1)} ms/token; opened in ${(openMs / 1000).toFixed(1)} s; ${formatBytes(r.bytesPerToken)}/token read; a broadcast+gather ${roundTripUs.toFixed(0)} µs${fillNote(warmFill)}`);
      for (const x of rows) {
        say(
          `[bench]   shard ${x.index}: attention ${x.attentionMs.toFixed(1)}, FFN step ${x.feedForwardMs.toFixed(1)} (I/O ${x.ioMs.toFixed(1)}, memory ${x.memoryMs.toFixed(1)}, FFN compute ${x.ffnComputeMs.toFixed(1)}), classifier ${x.logitsMs.toFixed(1)} ms/token; ` +
            `${formatBytes(x.bytesRead)}/token, hit ${(100 * x.hitRate).toFixed(1)}%, cache ${x.capacity} bundles, WASM ${formatBytes(x.wasmBytes)}`,
        );
      }
    } finally {
      await model?.dispose();
      await source.close();
    }
  }
  return results;
}
