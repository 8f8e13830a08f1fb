/**
 * The messages between {@link FlashWorkerClient} (main thread) and the worker host. Everything here
 * must survive `structuredClone`: plain data, `Blob`s and `ArrayBuffer`s, no classes or functions.
 * Errors cross as {@link SerializedError} and are rebuilt as the SDK's error classes on arrival.
 */
import type { ChatMessage, FlashErrorCode, FlashStats, FlashStrategy, GenerationStats, MemoryPlan, ModelConfig } from "@flashllm/sdk";
import type { HttpRangeSourceOptions } from "./http-range-source.js";
import type { OpfsSourceOptions } from "./opfs-source.js";

/** Where the worker reads a model from. */
export type ModelSourceSpec =
  /** A file in the origin private file system (see {@link importToOpfs}); `name` may contain `/`. */
  | { kind: "opfs"; name: string; opfs?: OpfsSourceOptions }
  /** A `File` the user picked (or any `Blob`); read slice by slice, never whole. */
  | { kind: "file"; file: Blob }
  /** A `.flm` on a web server that answers HTTP Range requests; relative URLs resolve against the page. */
  | { kind: "url"; url: string; http?: HttpSourceSettings };

/** The serialisable settings of {@link HttpRangeSource}: its options without a custom `fetch` or a signal. */
export type HttpSourceSettings = Omit<HttpRangeSourceOptions, "fetch" | "signal">;

/** Options of a load: the SDK's `openFlashModel` options that can cross a worker boundary. */
export interface LoadOptions {
  /** Hard limit on the model's WASM memory, bytes (see the SDK's `MemoryPlan`). Default: no limit. */
  memoryBudget?: number;
  strategy?: FlashStrategy;
  window?: number;
  strictWindow?: boolean;
  maxGapBytes?: number;
  /** KV cache positions; fewer positions leave more of the budget to the neuron cache. */
  contextLength?: number;
  /** Check each bundle read against the file's CRC-32: a corrupted file fails with CHECKSUM_MISMATCH instead of giving wrong text. */
  verifyReads?: boolean;
  /**
   * Shard workers (default 1: the model runs in the engine's worker). K > 1 cuts the model across K
   * nested workers, each with its own WASM memory (up to 4 GiB each) and its own handle on the model;
   * "auto" takes `navigator.hardwareConcurrency` workers when the page is cross-origin isolated, fewer
   * when a worker would hold too little of the model to pay for its round trips (see {@link chooseWorkers}).
   */
  workers?: number | "auto";
  /**
   * How shard workers synchronise: "shared" (SharedArrayBuffer + Atomics, needs cross-origin isolation)
   * or "message" (postMessage). Default: "shared" when the page is cross-origin isolated.
   */
  transport?: ShardTransportKind;
  /**
   * Threads the shards run on (default: `navigator.hardwareConcurrency`): shard i on thread i mod
   * threads, thread 0 the engine's worker, each other a nested worker hosting every shard given to it.
   */
  threads?: number;
}

/** How shard workers synchronise with the engine's worker. */
export type ShardTransportKind = "shared" | "message";

/** The engine a load ended up with. */
export interface EngineLayout {
  /** Workers holding the model: 1 (the engine's worker) or the number of shard workers. */
  workers: number;
  /** Shards only: how they synchronise. */
  transport?: ShardTransportKind;
  /** Why this many workers (and this transport), in words. */
  why: string;
  /** WASM memory of each worker right after loading (one entry with 1 worker). */
  memoryPerWorker: number[];
  /** Shards only: the engine worker's own WASM memory (embeddings, norms, activations). */
  coordinatorBytes?: number;
}

/** Sampling options of one generation (the SDK's `GenerateOptions` minus the signal). */
export interface GenerateSettings {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  stopTokens?: number[];
}

/** What a loaded model is, as the client sees it. */
export interface ModelInfo {
  /** Human-readable description of where it is read from (`opfs:name`, `file:name`, a URL). */
  source: string;
  /** Size of the `.flm` file, bytes. */
  fileBytes: number;
  config: ModelConfig;
  strategy: FlashStrategy;
  contextLength: number;
  /** How the budget was split; `memoryPlan.budget` is `Infinity` without a budget. */
  memoryPlan: MemoryPlan;
  /** WASM memory size right after loading. */
  wasmMemoryBytes: number;
  /** Time to open the model (header, manifest, resident weights, tokenizer), ms. */
  loadMs: number;
  /** Workers and memory per worker. */
  engine: EngineLayout;
  /** The model's `.flm` carries a chat template, so `chat` works. */
  hasChatTemplate: boolean;
}

/** A snapshot of the engine's figures, sent with every token (cumulative since load: diff for per-token). */
export interface EngineStats {
  /**
   * The FFN's figures; with shard workers, counts (bytes, neurons, hits, requests) are summed over the
   * shards and times (I/O, cache, compute) are the slowest shard's, as the shards run side by side.
   */
  flash: FlashStats;
  /** Current WASM memory size, bytes (with shard workers: the engine's worker's and every shard's). */
  wasmMemoryBytes: number;
  /** Current WASM memory of each worker holding the model. */
  workerMemoryBytes: number[];
  /** Largest WASM memory size seen since load, bytes. */
  peakWasmMemoryBytes: number;
}

/** One streamed token: the SDK's `GeneratedToken` plus the engine's figures right after it. */
export interface StreamedToken {
  token: number;
  text: string;
  position: number;
  stats: EngineStats;
}

/** What a finished generation reports. */
export interface GenerationResult extends GenerationStats {
  stats: EngineStats;
}

/** Progress of a long operation. `total` is undefined when not known yet. */
export interface Progress {
  phase: "import" | "load";
  /** Bytes done (imported, or read from the source while loading). */
  loaded: number;
  total?: number;
  /** Import only: bytes that were already in OPFS from an earlier, interrupted import. */
  resumedFrom?: number;
}

/** Options of one chat reply: sampling, plus stop strings besides the template's end-of-turn markers. */
export interface ChatSettings extends GenerateSettings {
  stop?: string[];
}

/** Options of an OPFS import that can cross a worker boundary. */
export interface ImportSettings {
  /** Bytes per read/write step (and between progress reports and resumption checkpoints). Default 8 MiB. */
  chunkBytes?: number;
  /** HTTP request headers for a URL import. */
  headers?: Record<string, string>;
}

/** Result of an OPFS import. */
export interface ImportResult {
  name: string;
  /** Size of the imported file. */
  bytes: number;
  /** Bytes kept from an earlier, interrupted import (0 = started from scratch). */
  resumedFrom: number;
  /** True when the file was already complete in OPFS and nothing was copied. */
  alreadyComplete: boolean;
}

/** The origin's storage figures (`navigator.storage.estimate()`), bytes. */
export interface StorageInfo {
  quota: number;
  usage: number;
  /** `quota - usage`: what an import may still take. */
  available: number;
  /** Whether the browser promised not to evict this origin's data under storage pressure. */
  persisted: boolean;
  /** Files in the OPFS root with their sizes and whether an import of them is complete. */
  files: { name: string; bytes: number; complete: boolean }[];
}

/** An error as it crosses the worker boundary. */
export interface SerializedError {
  name: string;
  message: string;
  code?: FlashErrorCode | "QUOTA_EXCEEDED";
  details?: Record<string, unknown>;
  stack?: string;
}

/** Messages the client sends. Every request carries an `id`; the answer carries the same `id`. */
export type WorkerRequest =
  | { type: "load"; id: number; source: ModelSourceSpec; options: LoadOptions }
  | { type: "generate"; id: number; prompt: string; options: GenerateSettings }
  /** A reply to `messages`, rendered with the model's chat template; streams tokens like generate. */
  | { type: "chat"; id: number; messages: ChatMessage[]; options: ChatSettings }
  | { type: "import"; id: number; from: Blob | string; name: string; options: ImportSettings }
  | { type: "stats"; id: number }
  | { type: "storage"; id: number }
  | { type: "remove"; id: number; name: string }
  | { type: "unload"; id: number }
  /** Cancels request `target` (no answer of its own; the target fails with ABORTED). */
  | { type: "abort"; id: number; target: number };

/** Messages the worker sends. */
export type WorkerResponse =
  | { type: "ready" }
  | { type: "progress"; id: number; progress: Progress }
  | { type: "token"; id: number; token: StreamedToken }
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; error: SerializedError };
