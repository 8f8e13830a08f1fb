/**
 * The messages between {@link FlashWorkerClient} (main thread) and the worker host. Everything here
 * must survive `structuredClone`: plain data, `Blob`s and `ArrayBuffer`s, no classes or functions.
 * Errors cross as {@link SerializedError} and are rebuilt as the SDK's error classes on arrival.
 */
import type { FlashErrorCode, FlashStats, FlashStrategy, GenerationStats, MemoryPlan, ModelConfig } from "@flashllm/sdk";
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
}

/** A snapshot of the engine's figures, sent with every token (cumulative since load: diff for per-token). */
export interface EngineStats {
  flash: FlashStats;
  /** Current WASM memory size, bytes. */
  wasmMemoryBytes: number;
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
