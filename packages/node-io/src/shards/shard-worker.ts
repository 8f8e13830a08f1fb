// The entry of one shard worker (worker_threads): opens its own handle on the model file and runs the
// SDK's shard runtime, which talks to the coordinator through parentPort.
import { parentPort, workerData } from "node:worker_threads";
import { runShard, type ToShard } from "@flashllm/sdk/internal";
import { NodeFileSource } from "../source/index.js";
import type { ShardWorkerData } from "./node-shard-host.js";

const port = parentPort;
if (!port) throw new Error("shard-worker.js runs as a worker thread");
const data = workerData as ShardWorkerData;
runShard(
  {
    postMessage: (m) => port.postMessage(m),
    onMessage: (listener) => port.on("message", (m: ToShard) => listener(m)),
    close: () => port.close(),
  },
  () => NodeFileSource.open(data.path, { direct: data.direct, maxInFlight: data.maxInFlight }),
);
