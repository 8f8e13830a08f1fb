import type { FlashSource } from "../source.js";
import type { ShardPort } from "./host.js";
import type { FromShard, ToShard } from "./protocol.js";
import { runShard } from "./runtime.js";

/**
 * A shard that runs on the coordinator's own thread: a {@link ShardPort} whose `runShard` lives in
 * this thread, its own kernels instance and WASM memory as a worker's would be. A host uses it for
 * shard 0, so that K shards take K threads (the caller's and K − 1 workers) instead of K + 1: the
 * coordinator is idle while the shards compute, and on a machine with K cores a (K+1)-th thread
 * only delays every step's wake-up (measured on 2 cores: ~10% of the token, DESIGN §8 note in
 * docs/benchmarks.md). Steps still go through the shared buffer (or messages) exactly as with a
 * worker; messages are delivered as microtasks, never synchronously, as a worker's would be.
 *
 * The shard cannot die on its own: whatever fails in it arrives as a `failed` message. `terminate`
 * stops it as `exit` does (its reads aborted, its memory and source released) and resolves when done.
 */
export function localShardPort(openSource: () => Promise<FlashSource>): ShardPort {
  let toShard: ((m: ToShard) => void) | undefined;
  let toCoordinator: ((m: FromShard) => void) | undefined;
  let closed = false;
  let exited: () => void = () => {};
  const gone = new Promise<void>((resolve) => (exited = resolve));
  let exitSent = false;
  const send = (m: ToShard) => {
    if (closed) return;
    if (m.t === "exit") exitSent = true;
    queueMicrotask(() => toShard?.(m));
  };
  runShard(
    {
      postMessage: (m) => {
        if (m.t === "exited") exited();
        queueMicrotask(() => toCoordinator?.(m));
      },
      onMessage: (listener) => (toShard = listener),
      close: () => {
        closed = true;
        exited();
      },
    },
    openSource,
  );
  return {
    postMessage: send,
    onMessage: (listener) => (toCoordinator = listener),
    onExit: () => {}, // it has no life of its own to lose
    async terminate() {
      if (!exitSent) send({ t: "exit" });
      await gone;
    },
  };
}
