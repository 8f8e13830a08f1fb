import { AbortedError } from "../errors.js";
import type { FlashSource } from "../source.js";
import type { FromShard, OpCode, ToShard } from "./protocol.js";
import { Op, SharedLayout, Status, toWire } from "./protocol.js";
import { ShardEngine } from "./shard-engine.js";

/** The worker's side of its channel to the coordinator (Node's `parentPort`, a Web Worker's `self`). */
export interface ShardEndpoint {
  postMessage(message: FromShard): void;
  /** Registers the one listener for the coordinator's messages. */
  onMessage(listener: (message: ToShard) => void): void;
  /** Lets the worker end: no more messages will be sent or received. */
  close(): void;
}

/**
 * Runs one shard in a worker: waits for `init`, opens its source (through the host's `openSource`)
 * and loads its slice, then runs steps until `exit`. Steps arrive through the shared buffer when
 * the coordinator sent one, else as messages. A step that throws is reported as `failed` (the
 * coordinator then tears the model down); an aborted step is reported as done with status aborted.
 */
export function runShard(endpoint: ShardEndpoint, openSource: () => Promise<FlashSource>): void {
  let engine: ShardEngine | undefined;
  let source: FlashSource | undefined;
  let shared: SharedLayout | undefined;
  let index = 0;
  let stopping = false;
  let abortedUpTo = 0; // steps with a sequence ≤ this are aborted
  let current: { seq: number; ac: AbortController } | undefined;
  let dim = 0;
  let vocab = 0;
  let partial = new Float32Array(0);
  let logits = new Float32Array(0);
  let queue: Promise<void> = Promise.resolve(); // the step in progress: message steps chain on it, exit waits for it
  let opening: Promise<void> = Promise.resolve(); // init's open: exit waits for it, then releases what it opened

  const fail = (e: unknown) => {
    endpoint.postMessage({ t: "failed", error: toWire(e) });
  };

  // Runs one step; the results land in `partial` (or the shared logits), returns the status.
  const step = async (seq: number, op: OpCode, layer: number, pos: number, input: Float32Array, residual: Float32Array | undefined, out: Float32Array, logitsOut: Float32Array): Promise<number> => {
    if (seq <= abortedUpTo) return Status.aborted;
    const ac = new AbortController();
    current = { seq, ac };
    try {
      if (op === Op.attention) engine!.attention(layer, pos, input, out);
      else if (op === Op.feedForward) await engine!.feedForward(layer, input, out, ac.signal, residual);
      else if (op === Op.logits) engine!.logits(input, logitsOut);
      return Status.ok;
    } catch (e) {
      if (e instanceof AbortedError || (e as { code?: string })?.code === "ABORTED") return Status.aborted;
      throw e;
    } finally {
      current = undefined;
    }
  };

  const sharedLoop = async (layout: SharedLayout) => {
    const slice = engine!.slice;
    const logitsOut = layout.logits.subarray(slice.vocab.first, slice.vocab.first + slice.vocab.count);
    let seen = 0; // the buffer starts at sequence 0; the first step may be published before this loop starts
    for (;;) {
      const next = await layout.nextStep(seen, () => stopping);
      if (!next) return;
      seen = next.seq;
      const running = step(next.seq, next.op, next.layer, next.pos, layout.input, layout.residual, layout.partials[index], logitsOut);
      queue = running.then(() => {}, () => {});
      layout.finish(index, next.seq, await running);
    }
  };

  const exit = async () => {
    stopping = true;
    current?.ac.abort();
    shared?.wakeAll();
    try {
      await opening;
      await queue;
      await engine?.dispose();
      await source?.close();
    } catch (e) {
      fail(e);
    }
    engine = undefined;
    endpoint.postMessage({ t: "exited" });
    endpoint.close();
  };

  endpoint.onMessage((msg) => {
    switch (msg.t) {
      case "init": {
        index = msg.config.index;
        dim = msg.dim;
        vocab = msg.vocab;
        opening = (async () => {
          try {
            source = await openSource();
            if (stopping) return; // told to exit while opening: exit (which waits for this) releases it
            const opened = await ShardEngine.open(source, msg.config);
            engine = opened.engine;
            if (stopping) return;
            partial = new Float32Array(dim);
            logits = new Float32Array(engine.slice.vocab.count);
            endpoint.postMessage({ t: "ready", pieces: opened.pieces, memoryBytes: engine.memoryBytes });
            if (msg.shared) {
              shared = new SharedLayout(msg.shared, msg.shards, dim, vocab, msg.residual);
              sharedLoop(shared).catch(fail);
            }
          } catch (e) {
            fail(e);
          }
        })();
        break;
      }
      case "cmd": {
        const { seq, op, layer, pos, input, residual } = msg;
        queue = queue.then(async () => {
          try {
            const status = await step(seq, op, layer, pos, input, residual, partial, logits);
            endpoint.postMessage({ t: "done", seq, status, output: op === Op.logits ? logits.slice() : op === Op.noop ? new Float32Array(0) : partial.slice() });
          } catch (e) {
            fail(e);
          }
        });
        break;
      }
      case "abort":
        abortedUpTo = Math.max(abortedUpTo, msg.seq);
        if (current && current.seq <= msg.seq) current.ac.abort("aborted");
        break;
      case "stats":
        if (engine) {
          const f = engine.ffn;
          endpoint.postMessage({ t: "stats", id: msg.id, figures: { index, stats: { ...f.stats }, prefetch: { ...f.prefetchStats }, memoryBytes: engine.memoryBytes, capacity: f.capacity, busy: { ...engine.busy } } });
        }
        break;
      case "exit":
        void exit();
        break;
    }
  });
}
