// The entry of one shard worker thread (worker_threads): hosts the shards the coordinator sends it
// (`NodeShardHost` gives a thread every shard `i` with `i mod threads` equal to its number), each
// with its own handle on the model file, its own WASM instance and the SDK's shard runtime. Messages
// carry the shard they are for (`ShardEnvelope`). The thread lets go of its port once every shard it
// hosts has exited.
import { parentPort, workerData } from "node:worker_threads";
import { runShard, type ToShard } from "@flashllm/sdk/internal";
import { NodeFileSource } from "../source/index.js";
import type { ShardEnvelope, ShardWorkerData } from "./node-shard-host.js";

const port = parentPort;
if (!port) throw new Error("shard-worker.js runs as a worker thread");
const data = workerData as ShardWorkerData;
const listeners = new Map<number, (m: ToShard) => void>();
let open = 0;

function host(shard: number): void {
  open++;
  runShard(
    {
      postMessage: (m) => port!.postMessage({ shard, m }),
      onMessage: (listener) => listeners.set(shard, listener),
      close: () => {
        if (--open === 0) port!.close();
      },
    },
    () => NodeFileSource.open(data.path, { direct: data.direct, maxInFlight: data.maxInFlight }),
  );
}

port.on("message", (env: ShardEnvelope<ToShard>) => {
  if (!listeners.has(env.shard)) host(env.shard);
  listeners.get(env.shard)!(env.m);
});
