import type { FlashStats } from "../flash/stats.js";
import type { PrefetchStats } from "../flash/flash-ffn.js";
import type { ShardConfig } from "./shard-engine.js";
import type { CrcPiece } from "./resident.js";

/**
 * What the coordinator and its shards say to each other. Per step only d floats travel (the input
 * vector, each shard's partial): through a SharedArrayBuffer with Atomics when there is one
 * ({@link SharedLayout}), else inside `cmd`/`done` messages. A model whose predictors read the
 * residual stream before the FFN norm (PowerInfer's) also broadcasts that stream with each FFN step
 * (d more floats); other models never carry it. Everything else (start, statistics, abort, exit,
 * failure) is a message.
 */

/** The step a shard runs. */
export const Op = { attention: 1, feedForward: 2, logits: 3, /** nothing: measures a round trip */ noop: 4 } as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/** How a shard finished a step. */
export const Status = { ok: 0, aborted: 1 } as const;

/** An error as it crosses a thread boundary. */
export interface WireError {
  name: string;
  code?: string;
  message: string;
  details?: Record<string, unknown>;
}

export type ToShard =
  | { t: "init"; config: ShardConfig; dim: number; vocab: number; shared?: SharedArrayBuffer; shards: number; residual: boolean }
  /** `residual`: the residual stream entering the FFN block, on FFN steps of a model started with `residual`. */
  | { t: "cmd"; seq: number; op: OpCode; layer: number; pos: number; input: Float32Array; residual?: Float32Array }
  | { t: "abort"; seq: number }
  | { t: "stats"; id: number }
  | { t: "exit" };

/** Figures a shard reports on request. */
export interface ShardFigures {
  index: number;
  stats: FlashStats;
  prefetch: PrefetchStats;
  memoryBytes: number;
  capacity: number;
  /** Wall time in each kind of step, ms. */
  busy: { attentionMs: number; feedForwardMs: number; logitsMs: number };
}

export type FromShard =
  | { t: "ready"; pieces: CrcPiece[]; memoryBytes: number }
  | { t: "done"; seq: number; status: number; output: Float32Array }
  | { t: "failed"; error: WireError }
  | { t: "stats"; id: number; figures: ShardFigures }
  | { t: "exited" };

/** Turns anything thrown into a {@link WireError} (structured clone keeps plain objects only). */
export function toWire(e: unknown): WireError {
  const err = e as { name?: string; code?: string; message?: string; details?: Record<string, unknown> };
  let details: Record<string, unknown> | undefined;
  try {
    details = err?.details ? JSON.parse(JSON.stringify(err.details)) : undefined;
  } catch {
    details = undefined;
  }
  return { name: err?.name ?? "Error", code: typeof err?.code === "string" ? err.code : undefined, message: err?.message ?? String(e), details };
}

// Atomics.waitAsync (ES2024; Node ≥ 16, Chromium ≥ 87): typed here as the lib target predates it.
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

// Control words (Int32) at the start of the shared buffer.
const SEQ = 0;
const OP = 1;
const LAYER = 2;
const POS = 3;
const DONE0 = 8; // DONE(s) = 8 + 2s, STATUS(s) = 9 + 2s

/**
 * The shared buffer of a sharded model: control words (sequence, op, layer, position, and per shard
 * the last sequence done and its status), the input vector, the residual stream (only when the
 * model's predictors read it), one partial slot per shard, and the logits (each shard writes its
 * vocabulary range).
 */
export class SharedLayout {
  readonly ctrl: Int32Array;
  readonly input: Float32Array;
  /** The residual stream entering the FFN block, for predictors that read it; undefined otherwise. */
  readonly residual: Float32Array | undefined;
  readonly partials: Float32Array[];
  readonly logits: Float32Array;

  constructor(readonly buffer: SharedArrayBuffer, readonly shards: number, readonly dim: number, readonly vocab: number, withResidual: boolean) {
    const ctrlBytes = SharedLayout.ctrlBytes(shards);
    const vectors = SharedLayout.vectors(withResidual);
    this.ctrl = new Int32Array(buffer, 0, ctrlBytes / 4);
    this.input = new Float32Array(buffer, ctrlBytes, dim);
    this.residual = withResidual ? new Float32Array(buffer, ctrlBytes + dim * 4, dim) : undefined;
    this.partials = Array.from({ length: shards }, (_, s) => new Float32Array(buffer, ctrlBytes + (vectors + s) * dim * 4, dim));
    this.logits = new Float32Array(buffer, ctrlBytes + (vectors + shards) * dim * 4, vocab);
  }

  static ctrlBytes(shards: number): number {
    return Math.ceil(((DONE0 + 2 * shards) * 4) / 64) * 64;
  }

  // Broadcast vectors ahead of the partials: the input, and the residual stream when it travels.
  private static vectors(withResidual: boolean): number {
    return withResidual ? 2 : 1;
  }

  static bytes(shards: number, dim: number, vocab: number, withResidual: boolean): number {
    return SharedLayout.ctrlBytes(shards) + ((SharedLayout.vectors(withResidual) + shards) * dim + vocab) * 4;
  }

  static create(shards: number, dim: number, vocab: number, withResidual: boolean): SharedLayout {
    return new SharedLayout(new SharedArrayBuffer(SharedLayout.bytes(shards, dim, vocab, withResidual)), shards, dim, vocab, withResidual);
  }

  // Coordinator: publish a step; returns its sequence number.
  publish(op: OpCode, layer: number, pos: number): number {
    const c = this.ctrl;
    c[OP] = op;
    c[LAYER] = layer;
    c[POS] = pos;
    const seq = (Atomics.load(c, SEQ) + 1) | 0;
    Atomics.store(c, SEQ, seq);
    Atomics.notify(c, SEQ);
    return seq;
  }

  /** Coordinator: resolves when shard `s` has finished step `seq` with its status (-1 once `stopped()`). */
  async waitDone(s: number, seq: number, stopped: () => boolean): Promise<number> {
    const c = this.ctrl;
    for (;;) {
      if (stopped()) return -1;
      const done = Atomics.load(c, DONE0 + 2 * s);
      if (done === seq) return Atomics.load(c, DONE0 + 2 * s + 1);
      const w = waitAsync(c, DONE0 + 2 * s, done);
      if (w.async) await w.value;
    }
  }

  /** Shard: resolves with the next step after `seen` (or undefined once `stopped()` says so). */
  async nextStep(seen: number, stopped: () => boolean): Promise<{ seq: number; op: OpCode; layer: number; pos: number } | undefined> {
    const c = this.ctrl;
    for (;;) {
      if (stopped()) return undefined;
      const seq = Atomics.load(c, SEQ);
      if (seq !== seen) return { seq, op: c[OP] as OpCode, layer: c[LAYER], pos: c[POS] };
      const w = waitAsync(c, SEQ, seen);
      if (w.async) await w.value;
    }
  }

  /** Shard: step `seq` is done with `status`. */
  finish(s: number, seq: number, status: number): void {
    const c = this.ctrl;
    Atomics.store(c, DONE0 + 2 * s + 1, status);
    Atomics.store(c, DONE0 + 2 * s, seq);
    Atomics.notify(c, DONE0 + 2 * s);
  }

  /** Wakes every waiter (shutdown): they re-check their condition. */
  wakeAll(): void {
    Atomics.notify(this.ctrl, SEQ);
    for (let s = 0; s < this.shards; s++) Atomics.notify(this.ctrl, DONE0 + 2 * s);
  }
}
