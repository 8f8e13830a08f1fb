import { AbortedError, SourceError } from "@flashllm/sdk";
import type { ReadRequest } from "@flashllm/sdk";

/**
 * Caps operations in flight across all callers of one source (a source may see several `read` calls
 * at once; browsers queue HTTP/1.1 requests beyond ~6 per host anyway, where they cannot be aborted
 * as cleanly as ours).
 */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`in-flight limit must be an integer ≥ 1, got ${max}`);
  }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Resolves after `ms`, or rejects with AbortedError as soon as `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedFrom(signal));
    const done = () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    };
    const t = setTimeout(done, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortedFrom(signal!));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The SDK's AbortedError for a fired signal (keeps a string reason as the message, as the SDK does). */
export function abortedFrom(signal: AbortSignal): AbortedError {
  return new AbortedError(typeof signal.reason === "string" ? signal.reason : "aborted");
}

/** A signal that fires when any of `signals` fires. */
export function anySignal(signals: (AbortSignal | undefined)[]): AbortSignal {
  const list = signals.filter((s): s is AbortSignal => s !== undefined);
  if (typeof AbortSignal.any === "function") return AbortSignal.any(list);
  const c = new AbortController();
  for (const s of list) {
    if (s.aborted) c.abort(s.reason);
    else s.addEventListener("abort", () => c.abort(s.reason), { once: true });
  }
  return c.signal;
}

/** Checks a request against a source of `size` bytes; throws SourceError naming the source. */
export function checkRequest(r: ReadRequest, size: number, what: string): void {
  const { offset, length, target } = r;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new SourceError(`read of ${length} bytes at offset ${offset} is outside ${what} (${size} bytes)`, offset, length);
  }
  if (target.byteLength < length) {
    throw new SourceError(
      `read of ${length} bytes at offset ${offset}: the target holds only ${target.byteLength} bytes (a view detached by memory.grow?)`,
      offset,
      length,
    );
  }
}

export { formatBytes } from "@flashllm/sdk/internal";

/**
 * Runs `work` for each item with at most `limiter.max` in flight; on the first failure, fires
 * `cancel` so the others stop early, and still waits for every started task to settle before
 * rejecting, because tasks write into the caller's memory (a view of WASM memory) and must not
 * do so after `read` has returned.
 */
export async function runAll<T>(items: readonly T[], limiter: Limiter, cancel: AbortController, work: (item: T) => Promise<void>): Promise<void> {
  let first: unknown;
  let failed = false;
  await Promise.all(
    items.map((item) =>
      limiter
        .run(async () => {
          if (failed || cancel.signal.aborted) return;
          await work(item);
        })
        .catch((e) => {
          if (!failed) {
            failed = true;
            first = e;
            cancel.abort();
          }
        }),
    ),
  );
  if (failed) throw first;
}
