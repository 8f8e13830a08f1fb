// The entry of a reader thread (worker_threads): owns a NodeFileSource on the model file and fills
// SharedArrayBuffers (a shared WASM memory, or staging buffers) on request. It exists so that reads are
// submitted and completed on another core while the engine's thread computes: on the engine's own
// thread, a read that completes during a kernel call waits until the call returns.
import { parentPort, workerData } from "node:worker_threads";
import { NodeFileSource } from "./node-file-source.js";
import type { FromReader, ReaderFailure, ReaderWorkerData, ToReader } from "./reader-protocol.js";
import type { ReadRequest } from "./sdk.js";

if (!parentPort) throw new Error("reader-worker.js runs as a worker thread");
const port = parentPort;
const data = workerData as ReaderWorkerData;
const post = (m: FromReader) => port.postMessage(m);

function failure(e: unknown, offset = 0, length = 0): ReaderFailure {
  const err = e as { name?: string; message?: string; offset?: number; length?: number };
  return { name: err?.name ?? "Error", message: err?.message ?? String(e), offset: err?.offset ?? offset, length: err?.length ?? length };
}

async function main(): Promise<void> {
  let source: NodeFileSource;
  try {
    source = await NodeFileSource.open(data.path, { direct: data.direct, maxInFlight: data.maxInFlight, retries: data.retries });
  } catch (e) {
    post({ type: "open-failed", error: failure(e) });
    return;
  }
  post({ type: "opened", byteLength: source.byteLength });
  const buffers = new Map<number, SharedArrayBuffer>();
  const aborts = new Map<number, AbortController>();
  let inFlight = 0;
  let closing = false;

  const finishClose = async () => {
    await source.close();
    post({ type: "closed" });
    port.close();
  };

  port.on("message", (m: ToReader) => {
    if (m.type === "abort") {
      aborts.get(m.id)?.abort("aborted");
      return;
    }
    if (m.type === "close") {
      closing = true;
      for (const c of aborts.values()) c.abort("source closed");
      if (inFlight === 0) void finishClose();
      return;
    }
    for (const [id, sab] of m.newBuffers) buffers.set(id, sab);
    const transient = m.newBuffers.filter(([, , t]) => t).map(([id]) => id);
    const n = m.bufferIds.length;
    const requests: ReadRequest[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const offset = m.spans[3 * i];
      const length = m.spans[3 * i + 1];
      const at = m.spans[3 * i + 2];
      const sab = buffers.get(m.bufferIds[i]);
      if (!sab) throw new Error(`reader thread: unknown buffer ${m.bufferIds[i]}`); // a protocol bug: let the thread fail loudly
      requests[i] = { offset, length, target: new Uint8Array(sab, at, length) };
    }
    const ac = new AbortController();
    aborts.set(m.id, ac);
    inFlight++;
    const settle = (error?: ReaderFailure) => {
      for (const id of transient) buffers.delete(id);
      aborts.delete(m.id);
      post({ type: "done", id: m.id, error, stats: source.stats, buffersHeld: buffers.size });
      if (--inFlight === 0 && closing) void finishClose();
    };
    source.read(requests, ac.signal).then(() => settle(), (e) => settle(failure(e)));
  });
}

void main();
