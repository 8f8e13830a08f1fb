// The ready-made shard worker (dist/shard-worker.js), started by the engine's worker as a nested
// worker: its first message says where the model is; then it hosts every shard the engine's worker
// sends it (`WebShardHost` gives a thread each shard i with i mod threads equal to its number), each
// opening its own handle on the model and running the SDK's shard runtime (`hostShards`).
import { hostShards, type ShardEnvelope } from "@flashllm/sdk";
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
hostShards(
  {
    post: (env) => scope.postMessage(env),
    onMessage: (listener) =>
      scope.addEventListener("message", (e) => {
        const m = e.data as ShardOpen | ShardEnvelope<ToShard>;
        if ("t" in m && m.t === "flashllm-shard-source") open = m;
        else listener(m as ShardEnvelope<ToShard>);
      }),
    close: () => scope.close(),
  },
  async () => {
    if (!open) throw new Error("the shard worker got no model source before init");
    return openShardSource(open.source, open.exclusive);
  },
);
