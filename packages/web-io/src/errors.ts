import { AbortedError, BudgetError, FlashError, FormatError, ShardError, SourceError } from "@flashllm/sdk";
import type { FlashErrorCode } from "@flashllm/sdk";
import type { SerializedError } from "./protocol.js";

/**
 * The origin's storage cannot hold a model being imported into OPFS. `details` has `needed` and
 * `available` (bytes). Its `code` is `"QUOTA_EXCEEDED"`.
 */
export class QuotaError extends FlashError {
  constructor(message: string, details: Record<string, unknown>, options?: { cause?: unknown }) {
    super("QUOTA_EXCEEDED", message, details, options);
    this.name = "QuotaError";
  }
}

/** Flattens an error for `postMessage` (Error objects lose their class and fields in structuredClone). */
export function serializeError(e: unknown): SerializedError {
  if (e instanceof FlashError) {
    return { name: e.name, message: e.message, code: e.code, details: plainDetails(e.details), stack: e.stack };
  }
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack };
  return { name: "Error", message: String(e) };
}

/** Rebuilds an error sent by {@link serializeError} as the SDK's class, so `instanceof` and `code` work. */
export function deserializeError(s: SerializedError): Error {
  const details = s.details ?? {};
  let e: Error;
  switch (s.name) {
    case "AbortedError":
      e = new AbortedError(s.message);
      break;
    case "SourceError":
      e = new SourceError(s.message, Number(details.offset ?? 0), Number(details.length ?? 0));
      break;
    case "BudgetError":
      e = new BudgetError(s.message, details);
      break;
    case "FormatError":
      e = new FormatError(s.code as FlashErrorCode, s.message, details);
      break;
    case "ShardError":
      e = new ShardError(Number(details.shard ?? -1), "", details);
      e.message = s.message; // already "shard N: …"
      break;
    case "QuotaError":
      e = new QuotaError(s.message, details);
      break;
    default:
      if (s.code) {
        e = new FlashError(s.code as FlashErrorCode, s.message, details);
        e.name = s.name;
      } else {
        e = new Error(s.message);
        e.name = s.name;
      }
  }
  // Keep the worker's stack: it points at the line that failed, the client's would point at the port.
  if (s.stack) e.stack = s.stack;
  return e;
}

// Details may hold anything; keep only what structuredClone accepts without throwing.
function plainDetails(d: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) {
    if (v === null || ["string", "number", "boolean", "undefined"].includes(typeof v)) out[k] = v;
    else {
      try {
        out[k] = structuredClone(v);
      } catch {
        out[k] = String(v);
      }
    }
  }
  return out;
}
