// The ready-made shard worker (dist/shard-worker.js), started by the engine's worker as a nested
// worker: its first message says where the model is; it opens its own handle on it and runs the SDK's
// shard runtime, which talks to the coordinator through this worker's port.
import { runShard } from "@flashllm/sdk";
import type { ToShard } from "@flashllm/sdk/internal";
import { openShardSource } from "./open-source.js";
import type { ShardOpen } from "./shard-host.js";

interface Scope {
  postMessage(m: unknown): void;
  addEventListener(type: "message", l: (e: MessageEvent) => void): void;
  close(): void;
}
const scope = globalThis as unknown as Scope;

let open: ShardOpen | undefined;
let listener: ((m: ToShard) => void) | undefined;
scope.addEventListener("message", (e) => {
  const m = e.data as ShardOpen | ToShard;
  if (m.t === "flashllm-shard-source") open = m;
  else listener?.(m);
});
runShard(
  {
    postMessage: (m) => scope.postMessage(m),
    onMessage: (l) => (listener = l),
    close: () => scope.close(),
  },
  async () => {
    if (!open) throw new Error("the shard worker got no model source before init");
    return openShardSource(open.source, open.exclusive);
  },
);
