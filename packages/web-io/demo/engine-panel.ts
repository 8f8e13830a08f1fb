// What the tab offers the engine (cross-origin isolation: SharedArrayBuffer, which shard workers
// synchronise through; and if not, why), and what the loaded model runs on: how many workers, how they
// synchronise, and the memory of each.
import type { ModelInfo } from "../src/protocol.js";
import { formatBytes } from "../src/util.js";

export interface Isolation {
  isolated: boolean;
  /** Why the page is not isolated, in words (empty when it is). */
  why: string;
}

export function isolation(): Isolation {
  if (globalThis.crossOriginIsolated) return { isolated: true, why: "" };
  if (!globalThis.isSecureContext) {
    return { isolated: false, why: "the page is not a secure context (serve it over HTTPS, or from localhost)" };
  }
  return {
    isolated: false,
    why: "the server did not send “Cross-Origin-Opener-Policy: same-origin” with “Cross-Origin-Embedder-Policy: require-corp” (or “credentialless”)",
  };
}

/** Fills section 5 from the loaded model (`info`), or with what the tab offers when none is loaded. */
export function showEngine(el: (id: string) => HTMLElement, info: ModelInfo | undefined, memoryPerWorker?: number[]): void {
  const iso = isolation();
  const cores = navigator.hardwareConcurrency || 1;
  el("e-isolated").textContent = iso.isolated ? "yes" : "no";
  el("e-cores").textContent = String(cores);
  const e = info?.engine;
  el("e-workers").textContent = e ? String(e.workers) : "–";
  el("e-transport").textContent = !e ? "–" : e.workers === 1 ? "– (one worker)" : e.transport === "shared" ? "shared memory (Atomics)" : "messages";
  const mem = memoryPerWorker ?? e?.memoryPerWorker;
  el("e-mem").textContent = !mem ? "– (no model loaded)" : mem.map((b) => formatBytes(b)).join(" · ");
  el("e-choice").textContent = !e
    ? ""
    : `${e.workers === 1 ? "One worker" : `${e.workers} workers`}: ${e.why}.${e.coordinatorBytes !== undefined ? ` The engine's own worker holds ${formatBytes(e.coordinatorBytes)} (embeddings, norms) and coordinates them.` : ""}`;
  el("e-why").textContent = iso.isolated
    ? `SharedArrayBuffer is available: shard workers synchronise through shared memory. “auto” can use up to ${cores} workers.`
    : `Not isolated: ${iso.why}. Without SharedArrayBuffer, “auto” falls back to one worker; with 2 workers chosen, they exchange messages, which is slower.`;
}
