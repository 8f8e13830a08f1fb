import { AbortedError, SourceError, throwIfAborted } from "../errors.js";
import type { FlashSource, ReadRequest } from "../source.js";

/**
 * What an injected fault does to one `read()` call:
 * - `error`: rejects with a {@link SourceError} before any byte is written (a failed device read);
 * - `short`: fills only the first part of one request's target, then rejects with a `SourceError`
 *   (a backend reporting a short read it could not complete, as the {@link FlashSource} contract asks);
 * - `corrupt`: resolves, but one request's target has 1 to 3 flipped bits (bad media or a bad
 *   transfer: only checksums can catch it);
 * - `zeros`: resolves, but the tail of one request's target is zeros (a short read returned as zeros,
 *   which the contract forbids; only checksums can catch it);
 * - `delay`: resolves correctly after `delayMs` (a slow read; abortable);
 * - `hang`: never resolves until the call's AbortSignal fires (or the source is closed).
 */
export type FaultKind = "error" | "short" | "corrupt" | "zeros" | "delay" | "hang";

/** Every {@link FaultKind}, in the order random rates are drawn. */
export const FAULT_KINDS: readonly FaultKind[] = ["error", "short", "corrupt", "zeros", "delay", "hang"];

/** One `read()` call as the fault rules see it. */
export interface ReadCall {
  /** 0-based index of the call since construction (or {@link FaultInjectingSource.resetStats}). */
  readonly index: number;
  readonly requests: readonly ReadRequest[];
}

/** Options of {@link FaultInjectingSource}. */
export interface FaultInjectingOptions {
  /** Seed of the PRNG that draws random faults and what they damage (default 1): runs reproduce. */
  seed?: number;
  /** Probability, per eligible `read()` call, of each fault kind (their sum at most 1). Default: none. */
  rates?: Partial<Record<FaultKind, number>>;
  /** Faults at given call indices (see {@link ReadCall.index}). */
  at?: Readonly<Record<number, FaultKind>>;
  /** A custom rule, asked for every eligible call before `at` and `rates`; return a kind or `undefined`. */
  rule?: (call: ReadCall) => FaultKind | undefined;
  /** Only calls with a request overlapping `[offset, offset + length)` get faults (e.g. the FFN sections). */
  range?: { offset: number; length: number };
  /** Duration of `delay` faults, ms (default 5). */
  delayMs?: number;
  /** Added to every call, faulty or not, ms (default 0): slow storage. Abortable. */
  latencyMs?: number;
}

/** A fault that was injected. */
export interface InjectedFault {
  /** Index of the `read()` call. */
  call: number;
  kind: FaultKind;
  /** The request damaged (`short`, `corrupt`, `zeros`) or the first request of the call. */
  offset: number;
  length: number;
}

/** Counters of a {@link FaultInjectingSource}. */
export interface FaultStats {
  /** `read()` calls. */
  calls: number;
  /** Requests in those calls. */
  requests: number;
  /** Faults injected, by kind. */
  injected: Record<FaultKind, number>;
  /** Calls that resolved (faults `corrupt`, `zeros` and `delay` included). */
  resolved: number;
  /** Calls that rejected (injected faults, aborts, and the inner source's own errors). */
  rejected: number;
}

/**
 * A {@link FlashSource} wrapper that injects storage faults, for tests of code that reads models
 * (yours and the SDK's): errors, short reads, slow or hanging reads, and reads that return wrong
 * bytes. Faults come from a queue ({@link injectNext}), fixed call indices, a custom rule, or seeded
 * random rates; every injected fault is counted and logged.
 *
 * It keeps the contract a backend must keep: it never writes into a target after its `read()` has
 * settled, and an aborted call rejects with `AbortedError`. Wrong-bytes faults (`corrupt`, `zeros`)
 * break the contract on purpose: `openFlashModel(..., { verifyReads: true })` detects them in FFN
 * bundles, the section CRCs in resident weights and the tokenizer.
 */
export class FaultInjectingSource implements FlashSource {
  readonly byteLength: number;
  /** When false, calls pass straight through (and are still counted). */
  enabled = true;
  /** Every injected fault, oldest first (the first 10 000). */
  readonly log: InjectedFault[] = [];
  private counters: FaultStats = zeroStats();
  private readonly queue: FaultKind[] = [];
  private readonly random: () => number;
  private readonly pendingHangs = new Set<() => void>();
  private closed = false;

  constructor(
    /** The source the bytes come from. */
    readonly inner: FlashSource,
    private readonly options: FaultInjectingOptions = {},
  ) {
    this.byteLength = inner.byteLength;
    this.random = mulberry32(options.seed ?? 1);
    let total = 0;
    for (const k of FAULT_KINDS) {
      const r = options.rates?.[k] ?? 0;
      if (!(r >= 0 && r <= 1)) throw new RangeError(`rate of "${k}" faults must be in [0, 1], got ${r}`);
      total += r;
    }
    if (total > 1 + 1e-9) throw new RangeError(`fault rates sum to ${total}, more than 1`);
  }

  /** A snapshot of the counters. */
  get stats(): FaultStats {
    return { ...this.counters, injected: { ...this.counters.injected } };
  }

  /** Zeroes the counters and the call index (the log is kept). */
  resetStats(): void {
    this.counters = zeroStats();
  }

  /** Queues `count` faults of `kind` for the next eligible calls (before any other rule). */
  injectNext(kind: FaultKind, count = 1): void {
    for (let i = 0; i < count; i++) this.queue.push(kind);
  }

  /** Drops queued faults. */
  clearQueue(): void {
    this.queue.length = 0;
  }

  async read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    const index = this.counters.calls++;
    this.counters.requests += requests.length;
    try {
      await this.readWithFaults(index, requests, signal);
      this.counters.resolved++;
    } catch (e) {
      this.counters.rejected++;
      throw e;
    }
  }

  /** Closes the inner source; a hanging read then rejects. */
  async close(): Promise<void> {
    this.closed = true;
    for (const wake of [...this.pendingHangs]) wake();
    await this.inner.close();
  }

  private async readWithFaults(index: number, requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    if (this.options.latencyMs) await sleep(this.options.latencyMs, signal);
    const kind = this.enabled && this.eligible(requests) ? this.pick({ index, requests }) : undefined;
    if (kind === undefined) return this.inner.read(requests, signal);
    const victim = this.victim(requests);
    const r = requests[victim] ?? { offset: 0, length: 0, target: new Uint8Array(0) };
    this.counters.injected[kind]++;
    if (this.log.length < 10_000) this.log.push({ call: index, kind, offset: r.offset, length: r.length });
    switch (kind) {
      case "error":
        throw new SourceError(`injected read error: ${r.length} bytes at offset ${r.offset} (call ${index})`, r.offset, r.length);
      case "delay":
        await sleep(this.options.delayMs ?? 5, signal);
        return this.inner.read(requests, signal);
      case "hang":
        await this.hang(signal);
        throw new SourceError(`injected hang ended by close: ${r.length} bytes at offset ${r.offset}`, r.offset, r.length);
      case "short": {
        const got = r.length > 0 ? Math.floor(this.random() * r.length) : 0;
        const partial = requests.slice(0, victim);
        if (got > 0) partial.push({ offset: r.offset, length: got, target: r.target.subarray(0, got) });
        await this.inner.read(partial, signal);
        throw new SourceError(`injected short read: ${got} of ${r.length} bytes at offset ${r.offset} (call ${index})`, r.offset, r.length);
      }
      case "zeros": {
        await this.inner.read(requests, signal);
        if (r.length > 0) r.target.fill(0, Math.floor(this.random() * r.length), r.length);
        return;
      }
      case "corrupt": {
        await this.inner.read(requests, signal);
        const flips = 1 + Math.floor(this.random() * 3);
        for (let i = 0; i < flips && r.length > 0; i++) r.target[Math.floor(this.random() * r.length)] ^= 1 << Math.floor(this.random() * 8);
        return;
      }
    }
  }

  private eligible(requests: readonly ReadRequest[]): boolean {
    const range = this.options.range;
    if (!range) return true;
    return requests.some((r) => r.offset < range.offset + range.length && r.offset + r.length > range.offset);
  }

  private pick(call: ReadCall): FaultKind | undefined {
    if (this.queue.length > 0) return this.queue.shift();
    const ruled = this.options.rule?.(call);
    if (ruled !== undefined) return ruled;
    const fixed = this.options.at?.[call.index];
    if (fixed !== undefined) return fixed;
    const rates = this.options.rates;
    if (!rates) return undefined;
    let x = this.random();
    for (const k of FAULT_KINDS) {
      x -= rates[k] ?? 0;
      if (x < 0) return k;
    }
    return undefined;
  }

  // The request a fault damages: a random non-empty one (inside `range` when given).
  private victim(requests: readonly ReadRequest[]): number {
    const range = this.options.range;
    const candidates: number[] = [];
    requests.forEach((r, i) => {
      if (r.length > 0 && (!range || (r.offset < range.offset + range.length && r.offset + r.length > range.offset))) candidates.push(i);
    });
    if (candidates.length === 0) return 0;
    return candidates[Math.floor(this.random() * candidates.length)];
  }

  private hang(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closed) return resolve();
      const wake = () => {
        this.pendingHangs.delete(wake);
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.pendingHangs.delete(wake);
        reject(abortError(signal));
      };
      this.pendingHangs.add(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

function zeroStats(): FaultStats {
  return { calls: 0, requests: 0, injected: { error: 0, short: 0, corrupt: 0, zeros: 0, delay: 0, hang: 0 }, resolved: 0, rejected: 0 };
}

function abortError(signal?: AbortSignal): AbortedError {
  return new AbortedError(typeof signal?.reason === "string" ? signal.reason : "aborted");
}

/** Waits `ms`, rejecting with AbortedError as soon as `signal` fires. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** mulberry32: a small seeded PRNG (reproducible faults; also the test suites' source of random inputs). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
