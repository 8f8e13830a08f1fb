/**
 * The engine's side of the worker: receives {@link WorkerRequest}s, runs the SDK (`openFlashModel`,
 * `generate`), streams tokens and progress back. It runs in a dedicated worker because OPFS's
 * synchronous access handles exist only there, and because a forward pass must not block the page.
 */
import { AbortedError, FlashError, ShardedFlashModel, openFlashModel } from "@flashllm/sdk";
import type { FlashModel, FlashSource, FlashStats, GeneratedToken, GenerationStats, MemoryPlan, ReadRequest } from "@flashllm/sdk";
import { chooseWorkers } from "../choose-workers.js";
import { serializeError } from "../errors.js";
import type { HttpRangeSource } from "../http-range-source.js";
import { importToOpfs, removeFromOpfs, storageInfo } from "../opfs-import.js";
import type { EngineLayout, EngineStats, GenerationResult, LoadOptions, ModelInfo, ModelSourceSpec, WorkerRequest, WorkerResponse } from "../protocol.js";
import { OpfsSource } from "../opfs-source.js";
import { openSource } from "./open-source.js";
import { WebShardHost } from "./shard-host.js";

/** The part of `DedicatedWorkerGlobalScope` the host uses (the DOM library types `self` as a Window). */
export interface WorkerScope {
  postMessage(message: WorkerResponse): void;
  addEventListener(type: "message", listener: (e: MessageEvent<WorkerRequest>) => void): void;
}

interface Loaded {
  model: FlashModel | ShardedFlashModel;
  source: FlashSource;
  spec: ModelSourceSpec;
  info: ModelInfo;
  peak: number;
}

/** Options of {@link hostFlashWorker}. */
export interface HostOptions {
  /** URL of the shard worker module for `workers` > 1 (default: `shard-worker.js` beside this module). */
  shardWorkerUrl?: string | URL;
}

/**
 * Serves the engine on `scope` (default: the worker's global scope). Call it from your own worker
 * module if you bundle the engine yourself; `@flashllm/web-io/worker.js` is a ready-made one.
 */
export function hostFlashWorker(scope: WorkerScope = globalThis as unknown as WorkerScope, options: HostOptions = {}): void {
  let loaded: Loaded | undefined;
  const running = new Map<number, AbortController>();
  // Loads, generations and imports run one after another: they share one model and one WASM memory.
  let queue: Promise<unknown> = Promise.resolve();
  const post = (m: WorkerResponse) => scope.postMessage(m);

  const serial = (id: number, op: (signal: AbortSignal) => Promise<unknown>) => {
    const controller = new AbortController();
    running.set(id, controller);
    queue = queue.then(async () => {
      try {
        if (controller.signal.aborted) throw new AbortedError();
        post({ type: "result", id, value: await op(controller.signal) });
      } catch (e) {
        post({ type: "error", id, error: serializeError(e) });
      } finally {
        running.delete(id);
      }
    });
  };

  const unload = async () => {
    const l = loaded;
    loaded = undefined;
    if (l) {
      await l.model.dispose();
      await l.source.close();
    }
  };

  const stats = async (): Promise<EngineStats> => {
    if (!loaded) throw new FlashError("BAD_ARGUMENT", "no model is loaded");
    const l = loaded;
    let flash: FlashStats;
    let workerMemoryBytes: number[];
    if (l.model instanceof ShardedFlashModel) {
      const figures = await l.model.shardFigures();
      flash = combineShardStats(figures.map((f) => f.stats));
      workerMemoryBytes = figures.map((f) => f.memoryBytes);
    } else {
      flash = { ...l.model.flash.stats };
      workerMemoryBytes = [l.model.wasmMemoryBytes];
    }
    // With shards, the engine's worker holds the coordinator's memory besides the shards'.
    const mem = workerMemoryBytes.reduce((a, b) => a + b, 0) + (l.model instanceof ShardedFlashModel ? l.model.wasmMemoryBytes : 0);
    l.peak = Math.max(l.peak, mem);
    return { flash, wasmMemoryBytes: mem, workerMemoryBytes, peakWasmMemoryBytes: l.peak };
  };

  // Streams a generation's tokens with the engine's figures after each; returns the run's figures.
  const stream = async (id: number, model: FlashModel | ShardedFlashModel, gen: AsyncGenerator<GeneratedToken, GenerationStats>): Promise<GenerationResult> => {
    for await (const t of gen) {
      post({ type: "token", id, token: { token: t.token, text: t.text, position: t.position, stats: await stats() } });
      // Synchronous sources (OPFS) never give the event loop a turn: take one per token so that an
      // abort message can arrive.
      await yieldToEventLoop();
    }
    return { ...model.lastStats!, stats: await stats() };
  };

  scope.addEventListener("message", (e) => {
    const m = e.data;
    switch (m.type) {
      case "abort":
        running.get(m.target)?.abort("aborted");
        return;
      case "stats":
        stats().then(
          (value) => post({ type: "result", id: m.id, value }),
          (err) => post({ type: "error", id: m.id, error: serializeError(err) }),
        );
        return;
      case "storage":
        storageInfo().then(
          (value) => post({ type: "result", id: m.id, value }),
          (err) => post({ type: "error", id: m.id, error: serializeError(err) }),
        );
        return;
      case "unload":
        return serial(m.id, async () => {
          await unload();
        });
      case "remove":
        return serial(m.id, async () => {
          if (loaded?.spec.kind === "opfs" && loaded.spec.name === m.name) await unload();
          await removeFromOpfs(m.name);
        });
      case "import":
        return serial(m.id, async (signal) => {
          // The import needs the file's exclusive handle: a model read from it must let go first.
          if (loaded?.spec.kind === "opfs" && loaded.spec.name === m.name) await unload();
          return importToOpfs(m.from, m.name, {
            ...m.options,
            signal,
            onProgress: (progress) => post({ type: "progress", id: m.id, progress }),
          });
        });
      case "load":
        return serial(m.id, async (signal) => {
          await unload();
          const t0 = performance.now();
          const source = await openSource(m.source, signal);
          const counted = countingSource(source, (loadedBytes) => post({ type: "progress", id: m.id, progress: { phase: "load", loaded: loadedBytes } }));
          const { workers: asked, transport, threads, ...opts } = m.options;
          let model: FlashModel | ShardedFlashModel;
          let choice: ReturnType<typeof chooseWorkers>;
          try {
            const tab = { cores: globalThis.navigator?.hardwareConcurrency ?? 1, isolated: globalThis.crossOriginIsolated === true };
            choice = chooseWorkers(asked, tab, source.byteLength, opts.memoryBudget, transport);
            model =
              choice.workers > 1
                ? await openFlashModel(counted.source, { ...opts, signal, workers: choice.workers, transport: choice.transport, shardHost: new WebShardHost(m.source, { workerUrl: options.shardWorkerUrl, exclusive: source instanceof OpfsSource && !source.shared, threads }) })
                : await openFlashModel(counted.source, { ...opts, signal });
          } catch (err) {
            await source.close();
            throw err;
          }
          counted.stop();
          const info = describe(m.source, source, model, m.options, performance.now() - t0, choice.why);
          loaded = { model, source, spec: m.source, info, peak: info.wasmMemoryBytes };
          return info;
        });
      case "generate":
        return serial(m.id, async (signal) => {
          if (!loaded) throw new FlashError("BAD_ARGUMENT", "no model is loaded: call load() first");
          const { model } = loaded;
          return stream(m.id, model, model.generate(m.prompt, { ...m.options, signal }));
        });
      case "chat":
        return serial(m.id, async (signal) => {
          if (!loaded) throw new FlashError("BAD_ARGUMENT", "no model is loaded: call load() first");
          const { model } = loaded;
          return stream(m.id, model, model.chat(m.messages, { ...m.options, signal }));
        });
    }
  });
  post({ type: "ready" });
}

/**
 * The shards' FFN figures as one: counts summed; times are the slowest shard's, since the shards run
 * side by side and a step waits for the last of them.
 */
export function combineShardStats(all: readonly FlashStats[]): FlashStats {
  const out = { ...all[0] };
  const times = new Set<keyof FlashStats>(["ioMs", "memoryMs", "computeMs"]);
  for (const s of all.slice(1)) {
    for (const k of Object.keys(out) as (keyof FlashStats)[]) {
      if (k === "tokens") continue;
      out[k] = times.has(k) ? Math.max(out[k], s[k]) : out[k] + s[k];
    }
  }
  return out;
}

function describe(spec: ModelSourceSpec, source: FlashSource, model: FlashModel | ShardedFlashModel, options: LoadOptions, loadMs: number, why: string): ModelInfo {
  const where =
    spec.kind === "opfs" ? `opfs:${spec.name}` : spec.kind === "file" ? `file:${(spec.file as Partial<File>).name ?? "blob"}` : (source as HttpRangeSource).url;
  let memoryPlan: MemoryPlan;
  let engine: EngineLayout;
  let wasmMemoryBytes: number;
  if (model instanceof ShardedFlashModel) {
    memoryPlan = shardedPlanSummary(model);
    engine = { workers: model.workers, transport: model.group.transport, why, memoryPerWorker: [...model.shardMemoryBytes], coordinatorBytes: model.wasmMemoryBytes };
    wasmMemoryBytes = model.wasmMemoryBytes + model.shardMemoryBytes.reduce((a, b) => a + b, 0);
  } else {
    memoryPlan = { ...model.memoryPlan };
    engine = { workers: 1, why, memoryPerWorker: [model.wasmMemoryBytes] };
    wasmMemoryBytes = model.wasmMemoryBytes;
  }
  return {
    source: where,
    fileBytes: source.byteLength,
    config: { ...model.config },
    strategy: options.strategy ?? "windowed",
    contextLength: model.transformer.contextLength,
    memoryPlan,
    wasmMemoryBytes,
    loadMs,
    engine,
    hasChatTemplate: model.chatTemplate !== undefined,
  };
}

/**
 * A sharded model's plan in the single-instance shape: every shard's parts summed, the coordinator's
 * share (embeddings, norms, activations) counted as resident, and its module as overhead besides each
 * shard's.
 */
function shardedPlanSummary(model: ShardedFlashModel): MemoryPlan {
  const p = model.memoryPlan;
  const sum = (f: (m: MemoryPlan) => number) => p.shards.reduce((a, m) => a + f(m), 0);
  return {
    budget: p.budget,
    overheadBytes: sum((m) => m.overheadBytes) + p.shards[0].overheadBytes,
    residentBytes: sum((m) => m.residentBytes) + p.coordinatorBytes,
    stateBytes: sum((m) => m.stateBytes),
    ffnScratchBytes: sum((m) => m.ffnScratchBytes),
    cacheBytes: sum((m) => m.cacheBytes),
    capacity: sum((m) => m.capacity),
    stagingBytes: sum((m) => m.stagingBytes),
    totalBytes: p.totalBytes,
    crcTableBytes: sum((m) => m.crcTableBytes),
  };
}

// Reports bytes read while a model opens (the resident section can be large over HTTP).
function countingSource(inner: FlashSource, report: (bytes: number) => void): { source: FlashSource; stop(): void } {
  let bytes = 0;
  let on = true;
  return {
    source: {
      get byteLength() {
        return inner.byteLength;
      },
      async read(requests: readonly ReadRequest[], signal?: AbortSignal) {
        await inner.read(requests, signal);
        if (!on) return;
        for (const r of requests) bytes += r.length;
        report(bytes);
      },
      close: () => inner.close(),
    },
    stop() {
      on = false;
    },
  };
}

// A macrotask turn, without setTimeout's 4 ms clamp. The channel is made on first use, so that merely
// importing this module (e.g. in Node) leaves no open port behind.
let channel: MessageChannel | undefined;
const waiting: (() => void)[] = [];
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof MessageChannel !== "function") return void setTimeout(resolve, 0);
    if (!channel) {
      channel = new MessageChannel();
      channel.port1.onmessage = () => waiting.shift()?.();
    }
    waiting.push(resolve);
    channel.port2.postMessage(0);
  });
}
