// ThreadedFileSource: the same bytes as the file (checked against the file itself) into a shared WASM
// memory and into ordinary buffers, the same typed errors as NodeFileSource, and no thread left behind.
import { chmodSync, readdirSync, truncateSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kernels } from "@flashllm/sdk/internal";
import { AbortedError, SourceError } from "../../src/source/sdk.js";
import { ThreadedFileSource } from "../../src/source/threaded-file-source.js";
import { makeFile, rng, supportsDirect } from "./helpers.js";

const SIZE = 3 * 1024 * 1024 + 123;
let file: ReturnType<typeof makeFile>;

beforeAll(() => {
  file = makeFile(SIZE);
});
afterAll(() => file.cleanup());

/**
 * OS threads of this process (an idle source's worker is unref'd, so Node's active-resource list does
 * not show it; the kernel's task list does). Counted after a pause, as thread exit is asynchronous.
 */
async function liveThreads(): Promise<number> {
  await new Promise((r) => setTimeout(r, 100));
  return readdirSync("/proc/self/task").length;
}

/** Index of the first differing byte, or -1 (vitest's toEqual is slow on large typed arrays). */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe("ThreadedFileSource", () => {
  it("fills targets in a shared WASM memory in place with the file's bytes, many random requests per call", async () => {
    const k = await Kernels.load(undefined, { sharedMemory: true });
    expect(k.sharedMemory).toBe(true);
    const src = await ThreadedFileSource.open(file.path, { maxInFlight: 4 });
    const next = rng(7);
    for (let round = 0; round < 5; round++) {
      const reqs = Array.from({ length: 40 }, () => {
        const length = 1 + next(40000);
        const offset = next(SIZE - length);
        return { offset, length, block: k.alloc(length, 16) };
      });
      await src.read(reqs.map((r) => ({ offset: r.offset, length: r.length, target: k.u8(r.block.ptr, r.length) })));
      for (const r of reqs) {
        expect(firstDiff(k.u8(r.block.ptr, r.length), file.bytes.subarray(r.offset, r.offset + r.length))).toBe(-1);
        k.free(r.block);
      }
    }
    expect(src.stats.requests).toBe(200);
    expect(src.stats.bytes).toBeGreaterThan(0);
    await src.close();
  });

  it("reads into ordinary (unshared) buffers through staging, and keeps going after memory.grow", async () => {
    const src = await ThreadedFileSource.open(file.path);
    const a = new Uint8Array(5000);
    const b = new Uint8Array(new ArrayBuffer(70000), 100, 65000);
    await src.read([{ offset: 17, length: 5000, target: a }, { offset: SIZE - 65000, length: 65000, target: b }]);
    expect(firstDiff(a, file.bytes.subarray(17, 5017))).toBe(-1);
    expect(firstDiff(b, file.bytes.subarray(SIZE - 65000))).toBe(-1);
    for (let i = 0; i < 50; i++) await src.read([{ offset: i * 100, length: 100, target: new Uint8Array(100) }]);
    expect(src.buffersHeld).toBe(0); // staging buffers are forgotten with their batch: no leak per read
    const k = await Kernels.load(undefined, { sharedMemory: true });
    const small = k.alloc(4096);
    await src.read([{ offset: 0, length: 4096, target: k.u8(small.ptr, 4096) }]);
    const big = k.alloc(8 << 20); // grows the memory: a new SharedArrayBuffer object for the same memory
    await src.read([{ offset: 4096, length: 2 << 20, target: k.u8(big.ptr, 2 << 20) }]);
    expect(firstDiff(k.u8(small.ptr, 4096), file.bytes.subarray(0, 4096))).toBe(-1);
    expect(firstDiff(k.u8(big.ptr, 2 << 20), file.bytes.subarray(4096, 4096 + (2 << 20)))).toBe(-1);
    expect(src.buffersHeld).toBe(2); // the memory's buffer before and after growth
    await src.close();
  });

  it("O_DIRECT in the thread gives the same bytes (aligned reads in place, unaligned ones bounced)", async () => {
    if (!supportsDirect(file.dir)) {
      console.warn("skipped: the temp filesystem refuses O_DIRECT");
      return;
    }
    const k = await Kernels.load(undefined, { sharedMemory: true });
    const src = await ThreadedFileSource.open(file.path, { direct: true, maxInFlight: 8 });
    const aligned = k.alloc(1 << 20, 4096);
    const odd = k.alloc(10000, 16);
    await src.read([
      { offset: 8192, length: 1 << 20, target: k.u8(aligned.ptr, 1 << 20) },
      { offset: 12345, length: 10000, target: k.u8(odd.ptr, 10000) },
    ]);
    expect(firstDiff(k.u8(aligned.ptr, 1 << 20), file.bytes.subarray(8192, 8192 + (1 << 20)))).toBe(-1);
    expect(firstDiff(k.u8(odd.ptr, 10000), file.bytes.subarray(12345, 22345))).toBe(-1);
    const s = src.stats;
    expect(s.directReads).toBeGreaterThan(0);
    expect(s.bouncedReads).toBeGreaterThan(0);
    await src.close();
  });

  it("out-of-range requests are refused before anything is read; a truncated file reports SourceError; abort gives AbortedError", async () => {
    const f = makeFile(1 << 20);
    const src = await ThreadedFileSource.open(f.path);
    await expect(src.read([{ offset: (1 << 20) - 10, length: 20, target: new Uint8Array(20) }])).rejects.toThrow(SourceError);
    truncateSync(f.path, 1000); // shrinks under the open source: the thread's reads come back short
    const err = await src.read([{ offset: 5000, length: 100, target: new Uint8Array(100) }]).catch((e) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect(String(err.message)).toMatch(/end of file|truncated/);
    const ac = new AbortController();
    ac.abort();
    await expect(src.read([{ offset: 0, length: 10, target: new Uint8Array(10) }], ac.signal)).rejects.toThrow(AbortedError);
    await src.close();
    await expect(src.read([{ offset: 0, length: 10, target: new Uint8Array(10) }])).rejects.toThrow(/closed/);
    f.cleanup();
  });

  it("a file it cannot open is a SourceError from open, and no thread is left", async () => {
    const before = await liveThreads();
    await expect(ThreadedFileSource.open(`${file.dir}/missing.bin`)).rejects.toThrow(SourceError);
    const f = makeFile(100);
    chmodSync(f.path, 0o000);
    if (process.getuid?.() !== 0) await expect(ThreadedFileSource.open(f.path)).rejects.toThrow(SourceError);
    f.cleanup();
    expect(await liveThreads()).toBe(before);
  });

  it("close ends the thread; a thread that dies rejects pending reads with SourceError", async () => {
    const before = await liveThreads();
    const src = await ThreadedFileSource.open(file.path);
    expect(await liveThreads()).toBeGreaterThan(before);
    await src.close();
    expect(await liveThreads()).toBe(before);

    const doomed = await ThreadedFileSource.open(file.path);
    // biome-ignore lint/suspicious/noExplicitAny: reaching the private worker to kill it, as a crash would
    const pending = doomed.read([{ offset: 0, length: 2 << 20, target: new Uint8Array(2 << 20) }]);
    await (doomed as any).worker.terminate();
    await expect(pending).rejects.toThrow(SourceError);
    await expect(doomed.read([{ offset: 0, length: 1, target: new Uint8Array(1) }])).rejects.toThrow(/reader thread/);
    await doomed.close();
    expect(await liveThreads()).toBe(before);
  });
});
