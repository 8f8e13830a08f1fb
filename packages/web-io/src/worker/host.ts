/**
 * The engine's side of the worker: receives {@link WorkerRequest}s, runs the SDK (`openFlashModel`,
 * `generate`), streams tokens and progress back. It runs in a dedicated worker because OPFS's
 * synchronous access handles exist only there, and because a forward pass must not block the page.
 */
import { AbortedError, FlashError, openFlashModel } from "@flashllm/sdk";
import type { FlashModel, FlashSource, ReadRequest } from "@flashllm/sdk";
import { BlobSource } from "../blob-source.js";
import { serializeError } from "../errors.js";
import { HttpRangeSource } from "../http-range-source.js";
import { importToOpfs, removeFromOpfs, storageInfo } from "../opfs-import.js";
import { OpfsSource } from "../opfs-source.js";
import type { EngineStats, GenerationResult, LoadOptions, ModelInfo, ModelSourceSpec, WorkerRequest, WorkerResponse } from "../protocol.js";

/** The part of `DedicatedWorkerGlobalScope` the host uses (the DOM library types `self` as a Window). */
export interface WorkerScope {
  postMessage(message: WorkerResponse): void;
  addEventListener(type: "message", listener: (e: MessageEvent<WorkerRequest>) => void): void;
}

interface Loaded {
  model: FlashModel;
  source: FlashSource;
  spec: ModelSourceSpec;
  info: ModelInfo;
  peak: number;
}

/**
 * Serves the engine on `scope` (default: the worker's global scope). Call it from your own worker
 * module if you bundle the engine yourself; `@flashllm/web-io/worker.js` is a ready-made one.
 */
export function hostFlashWorker(scope: WorkerScope = globalThis as unknown as WorkerScope): void {
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

  const stats = (): EngineStats => {
    if (!loaded) throw new FlashError("BAD_ARGUMENT", "no model is loaded");
    const mem = loaded.model.wasmMemoryBytes;
    loaded.peak = Math.max(loaded.peak, mem);
    return { flash: { ...loaded.model.flash.stats }, wasmMemoryBytes: mem, peakWasmMemoryBytes: loaded.peak };
  };

  scope.addEventListener("message", (e) => {
    const m = e.data;
    switch (m.type) {
      case "abort":
        running.get(m.target)?.abort("aborted");
        return;
      case "stats":
        try {
          post({ type: "result", id: m.id, value: stats() });
        } catch (err) {
          post({ type: "error", id: m.id, error: serializeError(err) });
        }
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
          let model: FlashModel;
          try {
            model = await openFlashModel(counted.source, { ...m.options, signal });
          } catch (err) {
            await source.close();
            throw err;
          }
          counted.stop();
          const info = describe(m.source, source, model, m.options, performance.now() - t0);
          loaded = { model, source, spec: m.source, info, peak: model.wasmMemoryBytes };
          return info;
        });
      case "generate":
        return serial(m.id, async (signal) => {
          if (!loaded) throw new FlashError("BAD_ARGUMENT", "no model is loaded: call load() first");
          const { model } = loaded;
          const gen = model.generate(m.prompt, { ...m.options, signal });
          for await (const t of gen) {
            post({ type: "token", id: m.id, token: { token: t.token, text: t.text, position: t.position, stats: stats() } });
            // Synchronous sources (OPFS) never give the event loop a turn: take one per token so that an
            // abort message can arrive.
            await yieldToEventLoop();
          }
          const result: GenerationResult = { ...model.lastStats!, stats: stats() };
          return result;
        });
    }
  });
  post({ type: "ready" });
}

async function openSource(spec: ModelSourceSpec, signal: AbortSignal): Promise<FlashSource> {
  switch (spec.kind) {
    case "opfs":
      return OpfsSource.open(spec.name, spec.opfs);
    case "file":
      return new BlobSource(spec.file);
    case "url":
      return HttpRangeSource.open(spec.url, { ...spec.http, signal });
    default:
      throw new FlashError("BAD_ARGUMENT", `unknown model source ${JSON.stringify(spec)}`);
  }
}

function describe(spec: ModelSourceSpec, source: FlashSource, model: FlashModel, options: LoadOptions, loadMs: number): ModelInfo {
  const where =
    spec.kind === "opfs" ? `opfs:${spec.name}` : spec.kind === "file" ? `file:${(spec.file as Partial<File>).name ?? "blob"}` : (source as HttpRangeSource).url;
  return {
    source: where,
    fileBytes: source.byteLength,
    config: { ...model.config },
    strategy: options.strategy ?? "windowed",
    contextLength: model.transformer.contextLength,
    memoryPlan: { ...model.memoryPlan },
    wasmMemoryBytes: model.wasmMemoryBytes,
    loadMs,
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
