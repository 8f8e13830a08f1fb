// The ready-made shard worker (dist/shard-worker.js), started by the engine's worker as a nested
// worker: its first message says where the model is; then it hosts every shard the engine's worker
// sends it (`WebShardHost` gives a thread each shard i with i mod threads equal to its number), each
// opening its own handle on the model and running the SDK's shard runtime. Messages carry the shard
// they are for (`ShardEnvelope`); the worker closes once every shard it hosts has exited.
import { runShard } from "@flashllm/sdk";
import type { ToShard } from "@flashllm/sdk/internal";
import { openShardSource } from "./open-source.js";
import type { ShardEnvelope, ShardOpen } from "./shard-host.js";

interface Scope {
  postMessage(m: unknown): void;
  addEventListener(type: "message", l: (e: MessageEvent) => void): void;
  close(): void;
}
const scope = globalThis as unknown as Scope;

let open: ShardOpen | undefined;
const listeners = new Map<number, (m: ToShard) => void>();
let hosting = 0;

function host(shard: number): void {
  hosting++;
  runShard(
    {
      postMessage: (m) => scope.postMessage({ shard, m }),
      onMessage: (l) => listeners.set(shard, l),
      close: () => {
        if (--hosting === 0) scope.close();
      },
    },
    async () => {
      if (!open) throw new Error("the shard worker got no model source before init");
      return openShardSource(open.source, open.exclusive);
    },
  );
}

scope.addEventListener("message", (e) => {
  const m = e.data as ShardOpen | ShardEnvelope<ToShard>;
  if ("t" in m && m.t === "flashllm-shard-source") {
    open = m;
    return;
  }
  const env = m as ShardEnvelope<ToShard>;
  if (!listeners.has(env.shard)) host(env.shard);
  listeners.get(env.shard)!(env.m);
});
