/**
 * Every error the SDK throws on purpose is a {@link FlashError} with a machine-readable `code`, so a
 * caller can tell "the file is corrupt" from "the budget is too small" without parsing messages.
 * Messages carry the numbers (offsets, expected vs actual sizes, need vs budget).
 */
export type FlashErrorCode =
  | "BAD_MAGIC"
  | "BAD_VERSION"
  | "BAD_HEADER"
  | "BAD_MANIFEST"
  | "TRUNCATED"
  | "SIZE_MISMATCH"
  | "OUT_OF_BOUNDS"
  | "CHECKSUM_MISMATCH"
  | "WRONG_DIMS"
  | "UNSUPPORTED"
  | "BUDGET_TOO_SMALL"
  | "OUT_OF_MEMORY"
  | "CONTEXT_OVERFLOW"
  | "BAD_TOKENIZER"
  | "BAD_ARGUMENT"
  | "READ_FAILED"
  | "ABORTED"
  | "BUSY"
  | "QUOTA_EXCEEDED"
  | "SHARD_FAILED"
  | "NO_CHAT_TEMPLATE"
  | "BAD_CHAT_TEMPLATE"
  | "CACHE_UNUSABLE";

/** Base class of all typed flashllm errors. */
export class FlashError extends Error {
  /** What went wrong, stable across versions. */
  readonly code: FlashErrorCode;
  /** Structured details (sizes, offsets, section names) for programs; the message has them for people. */
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: FlashErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FlashError";
    this.code = code;
    this.details = details;
  }
}

/** A model, tokenizer or container file is malformed: bad magic, truncated, wrong sizes, bad checksum. */
export class FormatError extends FlashError {
  constructor(code: FlashErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = "FormatError";
  }
}

/** A storage backend failed to deliver the bytes asked for. */
export class SourceError extends FlashError {
  /** Byte offset of the failed request. */
  readonly offset: number;
  /** Length of the failed request. */
  readonly length: number;
  constructor(message: string, offset: number, length: number, options?: { cause?: unknown }) {
    super("READ_FAILED", message, { offset, length }, options);
    this.name = "SourceError";
    this.offset = offset;
    this.length = length;
  }
}

/** The memory budget cannot hold what the model needs; `details` has the need and the budget. */
export class BudgetError extends FlashError {
  constructor(message: string, details: Record<string, unknown>) {
    super("BUDGET_TOO_SMALL", message, details);
    this.name = "BudgetError";
  }
}

/** The operation was cancelled through its AbortSignal. */
export class AbortedError extends FlashError {
  constructor(message = "aborted") {
    super("ABORTED", message);
    this.name = "AbortedError";
  }
}

/**
 * A shard of a sharded model (its own worker and WASM memory) failed: it threw, exited or ran out of
 * memory. `shard` names it; `shardError` is what it reported (name, code, message). The model's other
 * shards have been torn down: it cannot be used any more.
 */
export class ShardError extends FlashError {
  /** Index of the shard that failed. */
  readonly shard: number;
  constructor(shard: number, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super("SHARD_FAILED", `shard ${shard}: ${message}`, { shard, ...details }, options);
    this.name = "ShardError";
    this.shard = shard;
  }
}

/** Throws {@link AbortedError} if the signal has fired. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new AbortedError(typeof signal.reason === "string" ? signal.reason : "aborted");
}
