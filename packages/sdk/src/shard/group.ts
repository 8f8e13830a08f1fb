import { AbortedError, FlashError, ShardError } from "../errors.js";
import type { Kernels } from "../kernels/loader.js";
import type { FfnBackend } from "../model/ffn.js";
import type { ShardHost, ShardPort } from "./host.js";
import type { ShardConfig } from "./shard-engine.js";
import type { FromShard, OpCode, ShardFigures, WireError } from "./protocol.js";
import { Op, SharedLayout, Status } from "./protocol.js";
import type { CrcPiece } from "./resident.js";
import type { ShardSlice } from "./plan.js";

/** How steps reach the shards: a SharedArrayBuffer with Atomics, or messages carrying the vectors. */
export type ShardTransport = "shared" | "message";

/** Time a shard gets to free its memory and say `exited` before its worker is terminated anyway. */
const EXIT_GRACE_MS = 5000;

/**
 * The coordinator's handle on its K shard workers: starts them, runs one step on all of them and
 * waits for every partial, sums partials in shard order (deterministic), and tears everything down
 * when one fails. Also the model's {@link FfnBackend}: the FFN of a layer is one step and one sum.
 */
export class ShardGroup implements FfnBackend {
  private seq = 0;
  private failure: ShardError | undefined;
  private rejectFailure!: (e: ShardError) => void;
  private readonly failed: Promise<never>;
  private disposed = false;
  // Message transport: results of the current step, and who still owes one.
  private readonly partials: Float32Array[];
  private readonly logitsOut: Float32Array;
  private readonly input: Float32Array;
  private readonly residual: Float32Array | undefined;
  private pending: { seq: number; left: number; statuses: number[]; resolve: () => void } | undefined;
  private readonly statsWaiters = new Map<number, (f: ShardFigures) => void>();
  private readonly exited: Promise<void>[] = [];
  private statsId = 0;

  private constructor(
    private readonly k: Kernels,
    private readonly ports: ShardPort[],
    readonly slices: readonly ShardSlice[],
    readonly dim: number,
    readonly vocab: number,
    private readonly shared: SharedLayout | undefined,
    withResidual: boolean,
  ) {
    this.failed = new Promise<never>((_, reject) => (this.rejectFailure = reject));
    this.failed.catch(() => {}); // observed through every wait; never an unhandled rejection
    this.partials = slices.map(() => shared ? new Float32Array(0) : new Float32Array(dim));
    this.logitsOut = shared ? shared.logits : new Float32Array(vocab);
    this.input = shared ? shared.input : new Float32Array(dim);
    this.residual = !withResidual ? undefined : shared ? shared.residual : new Float32Array(dim);
  }

  /** How many shards. */
  get size(): number {
    return this.ports.length;
  }

  /** The transport in use. */
  get transport(): ShardTransport {
    return this.shared ? "shared" : "message";
  }

  /**
   * Starts one worker per config and waits until every shard has loaded its slice. Returns the group
   * and every shard's resident CRC pieces. A shard that fails to start tears all of them down and
   * the error names it. `residual`: FFN steps also broadcast the residual stream entering the FFN
   * block (for predictors that read it, PowerInfer's); without, it never travels.
   */
  static async start(k: Kernels, host: ShardHost, configs: ShardConfig[], dim: number, vocab: number, transport: ShardTransport, residual = false): Promise<{ group: ShardGroup; pieces: CrcPiece[]; memoryBytes: number[] }> {
    if (transport === "shared" && typeof SharedArrayBuffer === "undefined") throw new FlashError("UNSUPPORTED", "SharedArrayBuffer is not available here (a browser page needs cross-origin isolation); use transport \"message\"");
    const shared = transport === "shared" ? SharedLayout.create(configs.length, dim, vocab, residual) : undefined;
    const ports: ShardPort[] = [];
    const ready: ((m: { pieces: CrcPiece[]; memoryBytes: number }) => void)[] = [];
    const readyPromises = configs.map((_, s) => new Promise<{ pieces: CrcPiece[]; memoryBytes: number }>((resolve) => (ready[s] = resolve)));
    try {
      for (let s = 0; s < configs.length; s++) ports.push(host.spawn(s));
    } catch (e) {
      await Promise.allSettled(ports.map((p) => p.terminate()));
      throw e;
    }
    const g = new ShardGroup(k, ports, configs[0].slices, dim, vocab, shared, residual);
    ports.forEach((port, s) => {
      let gone: () => void = () => {};
      g.exited.push(new Promise<void>((r) => (gone = r)));
      port.onMessage((m) => g.onMessage(s, m, ready[s], gone));
      port.onExit((e) => {
        gone();
        g.fail(s, { name: e.name, message: `worker ended: ${e.message}`, code: (e as { code?: string }).code });
      });
      port.postMessage({ t: "init", config: configs[s], dim, vocab, shared: shared?.buffer, shards: configs.length, residual });
    });
    try {
      const results = await Promise.race([Promise.all(readyPromises), g.failed]);
      return { group: g, pieces: results.flatMap((r) => r.pieces), memoryBytes: results.map((r) => r.memoryBytes) };
    } catch (e) {
      await g.teardown();
      throw e;
    }
  }

  private onMessage(s: number, m: FromShard, ready: (r: { pieces: CrcPiece[]; memoryBytes: number }) => void, gone: () => void): void {
    switch (m.t) {
      case "ready":
        ready({ pieces: m.pieces, memoryBytes: m.memoryBytes });
        break;
      case "failed":
        this.fail(s, m.error);
        break;
      case "done": {
        const p = this.pending;
        if (!p || p.seq !== m.seq) break;
        if (m.output.length === this.dim) this.partials[s].set(m.output);
        else if (m.output.length > 0) this.logitsOut.set(m.output, this.slices[s].vocab.first);
        p.statuses[s] = m.status;
        if (--p.left === 0) p.resolve();
        break;
      }
      case "stats":
        this.statsWaiters.get(m.id * 1000 + s)?.(m.figures);
        break;
      case "exited":
        gone();
        break;
    }
  }

  // The first failure wins: every wait rejects with it, and every worker is stopped.
  private fail(s: number, e: WireError): void {
    if (this.failure || this.disposed) return;
    const what = e.code ? `${e.name} [${e.code}]` : e.name;
    const failure = new ShardError(s, `${what}: ${e.message}`, { shardCode: e.code, shardError: e.name, ...(e.details ? { shardDetails: e.details } : {}) });
    this.failure = failure;
    // Waits reject once every worker is gone, so whoever catches the error finds nothing left running.
    void this.teardown().then(() => this.rejectFailure(failure));
  }

  /** Throws the failure that ended this group, if any, once its workers are gone. */
  private async check(): Promise<void> {
    if (this.failure) await this.failed;
    if (this.disposed) throw new FlashError("BAD_ARGUMENT", "this sharded model has been disposed");
  }

  /** The vector the next step broadcasts (d floats). */
  get stepInput(): Float32Array {
    return this.input;
  }

  /** Shard `s`'s partial of the last attention or FFN step. */
  partial(s: number): Float32Array {
    return this.shared ? this.shared.partials[s] : this.partials[s];
  }

  /** The logits of the last logits step, every shard's vocabulary range in place. */
  get logits(): Float32Array {
    return this.logitsOut;
  }

  /**
   * Runs step `op` on every shard with {@link stepInput} and waits for all. An abort reaches every
   * shard (its reads are cancelled); once all have stopped, throws AbortedError.
   */
  async step(op: OpCode, layer: number, pos: number, signal?: AbortSignal): Promise<void> {
    await this.check();
    if (signal?.aborted) throw new AbortedError(typeof signal.reason === "string" ? signal.reason : "aborted");
    let seq: number;
    let all: Promise<number[]>;
    if (this.shared) {
      const sh = this.shared;
      seq = sh.publish(op, layer, pos);
      all = Promise.all(this.ports.map((_, s) => sh.waitDone(s, seq, () => this.failure !== undefined || this.disposed)));
    } else {
      seq = ++this.seq;
      const statuses = this.ports.map(() => Status.ok as number);
      all = new Promise<number[]>((resolve) => (this.pending = { seq, left: this.ports.length, statuses, resolve: () => resolve(statuses) }));
      const residual = op === Op.feedForward && this.residual ? this.residual.slice() : undefined;
      for (const p of this.ports) p.postMessage({ t: "cmd", seq, op, layer, pos, input: this.input.slice(), ...(residual ? { residual } : {}) });
    }
    const onAbort = () => {
      for (const p of this.ports) p.postMessage({ t: "abort", seq });
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const statuses = await Promise.race([all, this.failed]);
      await this.check(); // a failure stops the waits early (status -1): report it
      if (statuses.some((st) => st === Status.aborted)) throw new AbortedError(typeof signal?.reason === "string" ? signal.reason : "aborted");
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.pending = undefined;
    }
  }

  /** `out = Σ_s partial_s` in shard order, into `dim` floats of the coordinator's WASM memory. */
  sumPartials(out: number): void {
    const o = this.k.f32(out, this.dim);
    o.set(this.partial(0));
    for (let s = 1; s < this.ports.length; s++) {
      const p = this.partial(s);
      for (let i = 0; i < o.length; i++) o[i] += p[i];
    }
  }

  beginToken(): void {}

  /**
   * The FFN of `layer`: every shard's neuron range on input `x`, summed into `out`. `residual` (the
   * stream entering the FFN block) is broadcast too when the group was started with `residual`.
   */
  async run(layer: number, x: number, out: number, signal?: AbortSignal, residual?: number): Promise<void> {
    this.input.set(this.k.f32(x, this.dim));
    if (this.residual) {
      if (residual === undefined) throw new FlashError("BAD_ARGUMENT", "this sharded model's predictors read the residual stream, which this caller of the FFN does not pass");
      this.residual.set(this.k.f32(residual, this.dim));
    }
    await this.step(Op.feedForward, layer, 0, signal);
    this.sumPartials(out);
  }

  /**
   * Mean wall time of a step in which the shards do nothing, microseconds: the cost of one broadcast
   * and one gather (two per layer per token), whatever the model.
   */
  async roundTripMicros(steps = 200): Promise<number> {
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await this.step(Op.noop, 0, 0);
    return ((performance.now() - t0) * 1000) / steps;
  }

  /** Each shard's figures (FFN statistics, WASM memory). */
  async figures(): Promise<ShardFigures[]> {
    await this.check();
    const id = ++this.statsId;
    const all = Promise.all(this.ports.map((p, s) => new Promise<ShardFigures>((resolve) => {
      this.statsWaiters.set(id * 1000 + s, resolve);
      p.postMessage({ t: "stats", id });
    })));
    try {
      return await Promise.race([all, this.failed]);
    } finally {
      for (let s = 0; s < this.ports.length; s++) this.statsWaiters.delete(id * 1000 + s);
    }
  }

  /** Stops every worker now (their memory goes with them). */
  private async teardown(): Promise<void> {
    this.shared?.wakeAll();
    await Promise.allSettled(this.ports.map((p) => p.terminate()));
  }

  /**
   * Asks every shard to free its memory and exit, waits (a few seconds at most), then terminates the
   * workers: none outlives the model. A second call does nothing.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    const failedAlready = this.failure !== undefined;
    this.disposed = true;
    if (!failedAlready) {
      for (const p of this.ports) p.postMessage({ t: "exit" });
      this.shared?.wakeAll();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.all(this.exited), new Promise<void>((r) => (timer = setTimeout(r, EXIT_GRACE_MS)))]);
      clearTimeout(timer);
    }
    await this.teardown();
  }
}
