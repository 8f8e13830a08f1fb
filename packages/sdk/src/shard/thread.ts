import { FlashError } from "../errors.js";
import type { FlashSource } from "../source.js";
import type { ShardPort } from "./host.js";
import type { FromShard, ToShard } from "./protocol.js";
import { runShard } from "./runtime.js";

/**
 * Several shards on one worker thread: a host puts shard i on thread i mod threads (no more threads
 * than cores), so one worker may hold several shards, each still its own `runShard`, kernels
 * instance, WASM memory and source. Messages between the coordinator and the thread carry the shard
 * they are for. {@link ShardThreadPorts} is the coordinator's side, {@link hostShards} the thread's;
 * the hosts (node-io's `worker_threads`, web-io's Web Workers) supply only the channel.
 */
export interface ShardEnvelope<M> {
  shard: number;
  m: M;
}

/** The coordinator's channel to one worker thread. */
export interface ThreadChannel {
  post(envelope: ShardEnvelope<ToShard>): void;
  /** Registers the one listener for the thread's messages. */
  onMessage(listener: (envelope: ShardEnvelope<FromShard>) => void): void;
  /** Stops the thread (whatever it is doing); resolves once it is gone. */
  end(): Promise<void>;
}

/** The coordinator's side of one worker thread: a {@link ShardPort} per shard it hosts. */
export class ShardThreadPorts {
  private readonly listeners = new Map<number, (m: FromShard) => void>();
  private readonly exitListeners = new Map<number, (e: Error) => void>();
  private readonly hosted = new Set<number>();
  private readonly done = new Set<number>(); // told to terminate, or told the thread was lost
  private ending: Promise<void> | undefined;
  private readonly gone: Promise<void>;
  private markGone: () => void = () => {};

  constructor(private readonly channel: ThreadChannel) {
    channel.onMessage((env) => this.listeners.get(env.shard)?.(env.m));
    this.gone = new Promise<void>((resolve) => (this.markGone = resolve));
  }

  /** Whether the thread was ended (a host starts a new one for shards spawned after that). */
  get ended(): boolean {
    return this.ending !== undefined;
  }

  /** The thread died on its own (an error, running out of memory, an exit not asked for): every shard on it not being stopped has lost it. */
  lost(e: Error): void {
    for (const s of this.hosted) {
      if (this.done.has(s)) continue;
      this.done.add(s);
      this.exitListeners.get(s)?.(e);
    }
  }

  port(shard: number): ShardPort {
    this.hosted.add(shard);
    return {
      postMessage: (m) => this.channel.post({ shard, m }),
      onMessage: (listener) => this.listeners.set(shard, listener),
      onExit: (listener) => this.exitListeners.set(shard, listener),
      // The thread ends once every shard it hosts has been told to: a group stops all its shards
      // together (teardown, dispose, a failed start), so no shard is cut off while still in use.
      // Each call resolves when the thread is gone.
      terminate: async () => {
        this.done.add(shard);
        if (!this.ending && [...this.hosted].every((s) => this.done.has(s))) this.ending = this.channel.end().finally(this.markGone);
        await this.gone;
      },
    };
  }
}

/**
 * Where each shard runs: shard i on thread i mod `threads`. Thread 0 is the caller's (its shards get a
 * `local` port) unless `firstHere` is false; every other thread is a worker the host starts (`start`)
 * on the first shard given to it, and hosts every later one. A host's `spawn` is this `spawn`.
 */
export class ShardThreadMap {
  private readonly threads = new Map<number, ShardThreadPorts>();

  constructor(
    /** Threads to spread the shards over (an integer ≥ 1). */
    readonly count: number,
    private readonly firstHere: boolean,
    private readonly local: () => ShardPort,
    private readonly start: (thread: number) => ShardThreadPorts,
  ) {
    if (!(Number.isInteger(count) && count >= 1)) throw new FlashError("BAD_ARGUMENT", `threads must be an integer ≥ 1, got ${count}`);
  }

  spawn(index: number): ShardPort {
    const t = index % this.count;
    if (t === 0 && this.firstHere) return this.local();
    let thread = this.threads.get(t);
    if (!thread || thread.ended) {
      thread = this.start(t);
      this.threads.set(t, thread);
    }
    return thread.port(index);
  }
}

/** The thread's channel to the coordinator. */
export interface ThreadEndpoint {
  post(envelope: ShardEnvelope<FromShard>): void;
  /** Registers the one listener for the coordinator's messages. */
  onMessage(listener: (envelope: ShardEnvelope<ToShard>) => void): void;
  /** Lets the thread end: every shard it hosted has exited. */
  close(): void;
}

/**
 * Runs, on a worker thread, every shard the coordinator sends messages for: the first message for a
 * shard starts its `runShard` (with its own source from `openSource`); the thread closes when all the
 * shards it hosts have exited.
 */
export function hostShards(thread: ThreadEndpoint, openSource: () => Promise<FlashSource>): void {
  const listeners = new Map<number, (m: ToShard) => void>();
  let hosting = 0;
  const start = (shard: number) => {
    hosting++;
    runShard(
      {
        postMessage: (m) => thread.post({ shard, m }),
        onMessage: (listener) => listeners.set(shard, listener),
        close: () => {
          if (--hosting === 0) thread.close();
        },
      },
      openSource,
    );
  };
  thread.onMessage((env) => {
    if (!listeners.has(env.shard)) start(env.shard);
    listeners.get(env.shard)!(env.m);
  });
}
