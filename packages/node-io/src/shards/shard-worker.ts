// The entry of one shard worker thread (worker_threads): hosts the shards the coordinator sends it
// (`NodeShardHost` gives a thread every shard i with i mod threads equal to its number), each with its
// own handle on the model file, its own WASM instance and the SDK's shard runtime (`hostShards`).
import { parentPort, workerData } from "node:worker_threads";
import { hostShards, type ShardEnvelope, type ToShard } from "@flashllm/sdk/internal";
import { NodeFileSource } from "../source/index.js";
import type { ShardWorkerData } from "./node-shard-host.js";

const port = parentPort;
if (!port) throw new Error("shard-worker.js runs as a worker thread");
const data = workerData as ShardWorkerData;
hostShards(
  {
    post: (env) => port.postMessage(env),
    onMessage: (listener) => port.on("message", (env: ShardEnvelope<ToShard>) => listener(env)),
    close: () => port.close(),
  },
  () => NodeFileSource.open(data.path, { direct: data.direct, maxInFlight: data.maxInFlight }),
);
