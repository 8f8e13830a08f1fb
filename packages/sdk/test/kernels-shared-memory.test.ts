// The kernels on a shared linear memory (withSharedMemory rewrites the module's memory section): the
// memory really is shared (its buffer a SharedArrayBuffer another thread can fill), it grows, and the
// kernels give bit-identical results to the same kernels on an ordinary memory, on fresh random inputs.
import { describe, expect, it } from "vitest";
import { Kernels } from "../src/kernels/loader.js";
import { withSharedMemory } from "../src/kernels/shared-memory.js";
import { rng } from "../../../test/helpers.js";

describe("kernels on a shared memory", () => {
  it("the rewritten module declares one shared memory with wasm32's maximum, and nothing else changes", () => {
    // A minimal module: (memory 3) only.
    const plain = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 3]);
    const shared = withSharedMemory(plain);
    expect([...shared]).toEqual([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 6, 1, 3, 3, 0x80, 0x80, 4]);
    const mem = new WebAssembly.Instance(new WebAssembly.Module(shared), {}).exports;
    expect(Object.keys(mem)).toEqual([]);
    expect(() => withSharedMemory(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]))).toThrow(/no memory section/);
  });

  it("gives a SharedArrayBuffer that grows, and the same matvec_q8, ffn inputs and rmsnorm bits as an ordinary memory", async () => {
    const a = await Kernels.load();
    const b = await Kernels.load(undefined, { sharedMemory: true });
    expect(a.sharedMemory).toBe(false);
    expect(b.sharedMemory).toBe(true);
    const before = b.memoryBytes;
    const big = b.alloc(32 << 20);
    expect(b.memoryBytes).toBeGreaterThan(before);
    expect(b.k.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    b.free(big);
    const next = rng(11);
    for (const [rows, cols] of [[7, 33], [64, 256], [33, 1000]]) {
      const w = Int8Array.from({ length: rows * cols }, () => Math.round((next() - 0.5) * 254));
      const scales = Float32Array.from({ length: rows }, () => next() * 0.02);
      const x = Float32Array.from({ length: cols }, () => (next() - 0.5) * 4);
      const out = [a, b].map((k) => {
        const pw = k.alloc(rows * cols), ps = k.alloc(rows * 4), px = k.alloc(cols * 4), pq = k.alloc((cols + 8) * 2), po = k.alloc(rows * 4), pn = k.alloc(cols * 4), pg = k.alloc(cols * 4);
        k.i8(pw.ptr, rows * cols).set(w);
        k.f32(ps.ptr, rows).set(scales);
        k.f32(px.ptr, cols).set(x);
        k.f32(pg.ptr, cols).fill(1.5);
        k.k.matvec_q8(po.ptr, pw.ptr, ps.ptr, px.ptr, pq.ptr, rows, cols);
        k.k.rmsnorm(pn.ptr, px.ptr, pg.ptr, cols, 1e-5);
        return [new Uint32Array(k.f32(po.ptr, rows).slice().buffer), new Uint32Array(k.f32(pn.ptr, cols).slice().buffer)];
      });
      expect(out[1][0]).toEqual(out[0][0]);
      expect(out[1][1]).toEqual(out[0][1]);
    }
  });
});
