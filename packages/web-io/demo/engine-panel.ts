// What the tab offers the engine: cross-origin isolation (SharedArrayBuffer, which the sharded engine's
// workers synchronise through), and if not, why; how many workers run and the memory of each. This build
// runs one worker; the sharded engine fills in `e-workers` and `e-mem` per worker when it lands.
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

export function showEngine(el: (id: string) => HTMLElement, workers: number, memoryPerWorker: number | undefined): void {
  const iso = isolation();
  const cores = navigator.hardwareConcurrency || 1;
  el("e-isolated").textContent = iso.isolated ? "yes" : "no";
  el("e-workers").textContent = String(workers);
  el("e-mem").textContent = memoryPerWorker === undefined ? "– (no model loaded)" : formatBytes(memoryPerWorker);
  el("e-cores").textContent = String(cores);
  el("e-why").textContent = iso.isolated
    ? `SharedArrayBuffer is available, so a sharded engine can split a model over up to ${cores} workers in this tab, each with its own memory. This build runs the engine in one worker.`
    : `Not isolated: ${iso.why}. Without SharedArrayBuffer a sharded engine falls back to one worker (or to messages between workers, which is slower); this build runs one worker either way.`;
}
