import { randomBytes } from "node:crypto";
import { closeSync, constants as fsc, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NodeFileSource } from "../../src/source/node-file-source.js";


/** A temp dir with one file of `size` random bytes. */
export function makeFile(size: number, dir = tmpdir()): { dir: string; path: string; bytes: Uint8Array; cleanup(): void } {
  const d = mkdtempSync(join(dir, "flashllm-src-"));
  const path = join(d, "data.bin");
  const bytes = new Uint8Array(randomBytes(size));
  writeFileSync(path, bytes);
  return { dir: d, path, bytes, cleanup: () => rmSync(d, { recursive: true, force: true }) };
}

/** Whether files under `dir` can be opened and read with O_DIRECT (tmpfs refused it before Linux 6.6). */
export function supportsDirect(dir: string): boolean {
  if (fsc.O_DIRECT === undefined) return false;
  const d = mkdtempSync(join(dir, "flashllm-odirect-"));
  try {
    const p = join(d, "probe.bin");
    writeFileSync(p, new Uint8Array(8192));
    const fd = openSync(p, fsc.O_RDONLY | fsc.O_DIRECT);
    try {
      readSync(fd, new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer), 0, 4096, 0);
      return true;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

/** Deterministic PRNG (mulberry32) so a failing random case reproduces. */
export function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}


/**
 * Wraps the source's positional read seam (`pread`): records reads in flight, and lets a
 * test delay, shorten or fail calls. Returns live counters.
 */
export function instrument(
  src: NodeFileSource,
  opts: {
    delayMs?: number;
    /** Replace a call: return a result, throw, or undefined to run the real read. */
    intercept?: (call: number, buffer: Uint8Array, offset: number, length: number, position: number) => Promise<{ bytesRead: number }> | undefined;
  } = {},
) {
  type Pread = (b: Uint8Array, o: number, l: number, p: number) => Promise<{ bytesRead: number }>;
  const seam = src as unknown as { pread: Pread };
  const real = seam.pread.bind(src);
  const probe = { calls: 0, inFlight: 0, maxInFlight: 0, settled: 0, lastSettleAt: 0 };
  seam.pread = async (b: Uint8Array, o: number, l: number, p: number) => {
    const call = probe.calls++;
    probe.inFlight++;
    probe.maxInFlight = Math.max(probe.maxInFlight, probe.inFlight);
    try {
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      return await (opts.intercept?.(call, b, o, l, p) ?? real(b, o, l, p));
    } finally {
      probe.inFlight--;
      probe.settled++;
      probe.lastSettleAt = performance.now();
    }
  };
  return probe;
}
