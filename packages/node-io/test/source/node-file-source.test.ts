import { read as fsRead, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeFileSource, type NodeFileSourceOptions } from "../../src/source/node-file-source.js";
import { AbortedError, SourceError, type ReadRequest } from "../../src/source/sdk.js";
import { instrument, makeFile, rng, supportsDirect } from "./helpers.js";

const B = 4096;
const SIZE = 3 * 1024 * 1024 + 1234; // not a multiple of 4096: the last block is partial
const DIRECT_OK = supportsDirect(tmpdir());
if (!DIRECT_OK) console.warn(`O_DIRECT refused under ${tmpdir()}: direct-mode tests are skipped`);

let file: ReturnType<typeof makeFile>;
beforeAll(() => {
  file = makeFile(SIZE);
});
afterAll(() => file.cleanup());

function wasmBytes(size: number): Uint8Array {
  return new Uint8Array(new WebAssembly.Memory({ initial: Math.ceil(size / 65536) }).buffer);
}

/** Fills `mem` with a pattern, so writes outside targets (even of equal bytes by chance) show up. */
function pattern(mem: Uint8Array): Uint8Array {
  for (let i = 0; i < mem.length; i++) mem[i] = (i * 131 + 7) & 255;
  return mem.slice();
}

interface Shape {
  offset: number;
  length: number;
  /** Where the target starts: "aligned" (4096), "congruent" (≡ offset mod 4096) or anywhere. */
  place: "aligned" | "congruent" | "any";
}

/** Random requests that cover the awkward cases. */
function randomShapes(next: (n: number) => number, count: number): Shape[] {
  const places = ["aligned", "congruent", "any"] as const;
  const out: Shape[] = [
    { offset: 0, length: 0, place: "any" },
    { offset: SIZE - 1, length: 1, place: "any" },
    { offset: SIZE - 1, length: 1, place: "congruent" },
    { offset: SIZE - 5000, length: 5000, place: "congruent" },
    { offset: 3 * B - 7, length: 20, place: "any" },
    { offset: 0, length: SIZE, place: "aligned" },
  ];
  for (let i = 0; i < count; i++) {
    const place = places[next(3)];
    switch (next(6)) {
      case 0: out.push({ offset: next(SIZE + 1), length: 0, place }); break;
      case 1: out.push({ offset: next(SIZE), length: 1, place }); break;
      case 2: { // crosses a block boundary
        const edge = (1 + next(Math.floor(SIZE / B) - 1)) * B;
        out.push({ offset: edge - 1 - next(300), length: 2 + next(600), place });
        break;
      }
      case 3: { // aligned blocks
        const offset = next(Math.floor(SIZE / B) - 40) * B;
        out.push({ offset, length: (1 + next(32)) * B, place });
        break;
      }
      case 4: { // to the end of the file
        const length = 1 + next(3 * B);
        out.push({ offset: SIZE - length, length, place });
        break;
      }
      default: {
        const length = next(200_000);
        out.push({ offset: next(SIZE - length), length, place });
      }
    }
  }
  return out;
}

/** Lays targets out in one buffer with gaps; returns the requests. */
function layout(mem: Uint8Array, shapes: Shape[], next: (n: number) => number): ReadRequest[] {
  let at = 0;
  return shapes.map((s) => {
    at += next(3000);
    if (s.place !== "any") at = Math.ceil(at / B) * B;
    if (s.place === "congruent") at += s.offset % B;
    const target = mem.subarray(at, at + s.length);
    at += s.length;
    return { offset: s.offset, length: s.length, target };
  });
}

function spaceFor(shapes: Shape[]): number {
  return shapes.reduce((n, s) => n + s.length + 3000 + 2 * B, 0);
}

/** Checks every target holds the file's bytes and every other byte of `mem` kept its pattern. */
function expectFilled(mem: Uint8Array, before: Uint8Array, requests: ReadRequest[]): void {
  const expected = before.slice();
  for (const r of requests) expected.set(file.bytes.subarray(r.offset, r.offset + r.length), r.target.byteOffset);
  expect(Buffer.compare(mem, expected)).toBe(0);
}

for (const direct of [false, true]) {
  describe(`NodeFileSource (${direct ? "O_DIRECT" : "page cache"})`, () => {
    const openSrc = async (opts: NodeFileSourceOptions = {}, path = file.path) => NodeFileSource.open(path, { direct, ...opts });
    const skipUnlessDirect = (ctx: { skip: (note?: string) => never }) => {
      if (direct && !DIRECT_OK) ctx.skip(`O_DIRECT refused under ${tmpdir()}`);
    };

    it("reports the file size", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc();
      expect(src.byteLength).toBe(SIZE);
      await src.close();
    });

    for (const kind of ["wasm", "plain"] as const) {
      it(`fills random requests into ${kind} memory exactly, leaving guard bytes alone`, async (ctx) => {
        skipUnlessDirect(ctx);
        const src = await openSrc({ maxInFlight: 4 });
        for (let seed = 1; seed <= 5; seed++) {
          const next = rng(seed * 7919 + (direct ? 1 : 0));
          const shapes = randomShapes(next, 60);
          const size = spaceFor(shapes);
          const mem = kind === "wasm" ? wasmBytes(size) : new Uint8Array(size);
          const before = pattern(mem);
          const requests = layout(mem, shapes, next);
          await src.read(requests);
          expectFilled(mem, before, requests);
        }
        const s = src.stats;
        expect(s.requests).toBe(5 * 66);
        expect(s.retries).toBe(0);
        if (!direct) expect(s.directReads + s.bouncedReads).toBe(0);
        else if (kind === "wasm") expect(s.directReads).toBeGreaterThan(0);
        await src.close();
      });
    }

    it("fills separate plain Uint8Arrays, one per request", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc();
      const next = rng(42);
      const shapes = randomShapes(next, 40);
      const guarded = shapes.map((s) => {
        const whole = new Uint8Array(s.length + 64).fill(0x5a);
        return { whole, req: { offset: s.offset, length: s.length, target: whole.subarray(32, 32 + s.length) } };
      });
      await src.read(guarded.map((g) => g.req));
      for (const { whole, req } of guarded) {
        expect(Buffer.compare(req.target, file.bytes.subarray(req.offset, req.offset + req.length))).toBe(0);
        expect(whole.subarray(0, 32).every((b) => b === 0x5a)).toBe(true);
        expect(whole.subarray(32 + req.length).every((b) => b === 0x5a)).toBe(true);
      }
      await src.close();
    });

    it("never has more than maxInFlight reads outstanding, across concurrent read() calls", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc({ maxInFlight: 3 });
      const probe = instrument(src, { delayMs: 3 });
      const mem = wasmBytes(80 * B);
      const batch = (first: number) =>
        Array.from({ length: 40 }, (_, i) => ({ offset: (first + i) * B, length: B, target: mem.subarray((first + i) * B, (first + i + 1) * B) }));
      await Promise.all([src.read(batch(0)), src.read(batch(40))]);
      expect(probe.calls).toBe(80);
      expect(probe.maxInFlight).toBe(3);
      await src.close();
    });

    it("splits a large request so it reads in parallel", async (ctx) => {
      skipUnlessDirect(ctx);
      const big = makeFile(20 * 1024 * 1024 + 100);
      try {
        const src = await openSrc({ maxInFlight: 4 }, big.path);
        const probe = instrument(src, { delayMs: 2 });
        const mem = wasmBytes(big.bytes.length);
        await src.read([{ offset: 0, length: big.bytes.length, target: mem.subarray(0, big.bytes.length) }]);
        expect(Buffer.compare(mem.subarray(0, big.bytes.length), big.bytes)).toBe(0);
        expect(probe.maxInFlight).toBeGreaterThan(1);
        await src.close();
      } finally {
        big.cleanup();
      }
    });

    it("continues short reads from where they stopped", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc();
      // O_DIRECT can only return whole blocks short of EOF; page-cache reads can return any count.
      const step = direct ? B : 1000;
      const probe = instrument(src, { intercept: (_c, b, o, l, p) => realRead(src, b, o, Math.min(l, step), p) });
      const mem = wasmBytes(64 * B);
      const before = pattern(mem);
      const requests = [
        { offset: 0, length: 20 * B, target: mem.subarray(0, 20 * B) },
        { offset: 5, length: 10_000, target: mem.subarray(30 * B + 5, 30 * B + 5 + 10_000) },
      ];
      await src.read(requests);
      expectFilled(mem, before, requests);
      expect(src.stats.retries).toBe(0);
      expect(probe.calls).toBeGreaterThan(20);
      await src.close();
    });

    it("rejects a request outside the file with its offset, length and the file size, before reading", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc();
      const t = new Uint8Array(20);
      const ok = { offset: 0, length: 10, target: t.subarray(0, 10) };
      const err = await src.read([ok, { offset: SIZE - 5, length: 10, target: t.subarray(10) }]).catch((e) => e);
      expect(err).toBeInstanceOf(SourceError);
      expect(err).toMatchObject({ offset: SIZE - 5, length: 10, code: "READ_FAILED" });
      expect(err.message).toContain(String(SIZE));
      for (const bad of [{ offset: -1, length: 1 }, { offset: 1.5, length: 1 }, { offset: SIZE + 1, length: 0 }]) {
        await expect(src.read([{ ...bad, target: t }])).rejects.toBeInstanceOf(SourceError);
      }
      await expect(src.read([{ offset: 0, length: 10, target: t.subarray(0, 5) }])).rejects.toThrow(/target holds only 5 bytes/);
      expect(src.stats.reads).toBe(0);
      await src.close();
    });

    it("rejects reads of a file truncated after open, after retries, instead of returning zeros", async (ctx) => {
      skipUnlessDirect(ctx);
      const f = makeFile(100_000);
      try {
        const src = await openSrc({ retries: 3 }, f.path);
        truncateSync(f.path, 50_000);
        const mem = wasmBytes(100_000);
        for (const [offset, length] of [[60_000, 5000], [49_900, 200], [40_960, 100_000 - 40_960], [99_999, 1]]) {
          src.resetStats();
          const err = await src.read([{ offset, length, target: mem.subarray(offset, offset + length) }]).catch((e) => e);
          expect(err).toBeInstanceOf(SourceError);
          expect(err).toMatchObject({ offset, length });
          expect(err.message).toMatch(/end of file.*truncated/);
          // Each failing piece retries on its own; a request may span two (direct interior + tail).
          expect([3, 6]).toContain(src.stats.retries);
        }
        await src.close();
      } finally {
        f.cleanup();
      }
    });

    it("retries failed reads, then rejects with the errno as cause", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc({ retries: 2 });
      const eio = () => Promise.reject(Object.assign(new Error("EIO: i/o error, read"), { code: "EIO", errno: -5 }));
      const probe = instrument(src, { intercept: () => eio() });
      const t = wasmBytes(B).subarray(0, B);
      const err = await src.read([{ offset: B, length: B, target: t }]).catch((e) => e);
      expect(err).toBeInstanceOf(SourceError);
      expect(err).toMatchObject({ offset: B, length: B });
      expect(err.message).toContain("EIO");
      expect(err.cause).toMatchObject({ code: "EIO" });
      expect(probe.calls).toBe(3);
      expect(src.stats.retries).toBe(2);
      await src.close();
    });

    it("recovers from a transient error", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc();
      instrument(src, { intercept: (call) => (call === 0 ? Promise.reject(Object.assign(new Error("EIO"), { code: "EIO" })) : undefined) });
      const t = wasmBytes(B).subarray(0, 3 * 1000);
      await src.read([{ offset: 777, length: 3000, target: t }]);
      expect(Buffer.compare(t, file.bytes.subarray(777, 3777))).toBe(0);
      expect(src.stats.retries).toBe(1);
      await src.close();
    });

    it("on abort, stops issuing reads, lets in-flight ones land, then rejects with AbortedError", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc({ maxInFlight: 2 });
      const probe = instrument(src, { delayMs: 10 });
      const mem = wasmBytes(50 * B);
      pattern(mem);
      const requests = Array.from({ length: 50 }, (_, i) => ({ offset: i * B, length: B, target: mem.subarray(i * B, (i + 1) * B) }));
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 25);
      const err = await src.read(requests, ac.signal).catch((e) => e);
      const rejectedAt = performance.now();
      expect(err).toBeInstanceOf(AbortedError);
      expect(probe.inFlight).toBe(0);
      expect(probe.lastSettleAt).toBeLessThanOrEqual(rejectedAt);
      expect(probe.calls).toBeGreaterThan(0);
      expect(probe.calls).toBeLessThan(50);
      const snapshot = mem.slice();
      await new Promise((r) => setTimeout(r, 60));
      expect(Buffer.compare(mem, snapshot)).toBe(0);
      expect(probe.settled).toBe(probe.calls);
      // The source still works afterwards.
      await src.read(requests.slice(0, 3));
      expect(Buffer.compare(mem.subarray(0, 3 * B), file.bytes.subarray(0, 3 * B))).toBe(0);
      await src.close();
    });

    it("rejects at once with AbortedError when the signal already fired", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc();
      const probe = instrument(src);
      const t = new Uint8Array(10);
      await expect(src.read([{ offset: 0, length: 10, target: t }], AbortSignal.abort())).rejects.toBeInstanceOf(AbortedError);
      expect(probe.calls).toBe(0);
      await src.close();
    });

    it("rejects reads after close, and during close", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc({ maxInFlight: 1 });
      instrument(src, { delayMs: 5 });
      const mem = wasmBytes(20 * B);
      const requests = Array.from({ length: 20 }, (_, i) => ({ offset: i * B, length: B, target: mem.subarray(i * B, (i + 1) * B) }));
      const pending = src.read(requests).catch((e) => e);
      await new Promise((r) => setTimeout(r, 1));
      await src.close();
      expect(await pending).toBeInstanceOf(SourceError);
      const err = await src.read([{ offset: 10, length: 5, target: new Uint8Array(5) }]).catch((e) => e);
      expect(err).toBeInstanceOf(SourceError);
      expect(err).toMatchObject({ offset: 10, length: 5 });
      expect(err.message).toMatch(/closed/);
      await expect(src.read([])).rejects.toBeInstanceOf(SourceError);
      await src.close(); // idempotent
    });

    it("counts stats and resets them", async (ctx) => {
      skipUnlessDirect(ctx);
      const src = await openSrc();
      const mem = wasmBytes(8 * B);
      await src.read([
        { offset: 0, length: 0, target: mem.subarray(0, 0) },
        { offset: 0, length: 2 * B, target: mem.subarray(0, 2 * B) },
      ]);
      const s = src.stats;
      expect(s).toMatchObject({ requests: 2, reads: 1, bytes: 2 * B, retries: 0 });
      expect(s.ioWaitMs).toBeGreaterThan(0);
      expect(s.directReads).toBe(direct ? 1 : 0);
      src.resetStats();
      expect(src.stats).toEqual({ reads: 0, bytes: 0, requests: 0, directReads: 0, bouncedReads: 0, retries: 0, ioWaitMs: 0 });
      await src.read([]);
      expect(src.stats.reads).toBe(0);
      await src.close();
    });
  });
}

/** The real FileHandle.read, bypassing the instrumented one. */
function realRead(src: NodeFileSource, b: Uint8Array, o: number, l: number, p: number): Promise<{ bytesRead: number }> {
  const handle = (src as unknown as { handle: { fd: number } }).handle;
  return new Promise((resolve, reject) =>
    fsRead(handle.fd, b, o, l, p, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead }))),
  );
}

describe("NodeFileSource O_DIRECT paths", () => {
  it.skipIf(!DIRECT_OK)("reads aligned requests directly and bounces the rest", async () => {
    const src = await NodeFileSource.open(file.path, { direct: true });
    const mem = wasmBytes(4 * 1024 * 1024);
    const before = pattern(mem);

    // Fully aligned: offset, length and byteOffset multiples of 4096 → no bounce.
    const aligned = [0, 7, 100, 300].map((blk, i) => ({ offset: blk * B, length: (i + 1) * B, target: mem.subarray(i * 16 * B, i * 16 * B + (i + 1) * B) }));
    await src.read(aligned);
    expect(src.stats).toMatchObject({ directReads: 4, bouncedReads: 0 });

    // Small or incongruent requests → bounced only.
    src.resetStats();
    const base = 100 * B;
    const unaligned = [
      { offset: 5, length: 10, target: mem.subarray(base, base + 10) }, // address ≢ offset
      { offset: B - 3, length: 6, target: mem.subarray(base + B - 3, base + B + 3) }, // crosses a boundary
      { offset: 2 * B, length: 3 * B, target: mem.subarray(base + 8 * B + 1, base + 11 * B + 1) }, // misaligned address
      { offset: SIZE - 1, length: 1, target: mem.subarray(base + 20 * B, base + 20 * B + 1) }, // last byte
    ];
    await src.read(unaligned);
    expect(src.stats).toMatchObject({ directReads: 0, bouncedReads: 4 });

    // Congruent request to the partial last block: interior direct, tail bounced (short at EOF).
    src.resetStats();
    const tailStart = Math.floor(SIZE / B) * B - 2 * B;
    const at = 200 * B;
    const tail = [{ offset: tailStart, length: SIZE - tailStart, target: mem.subarray(at, at + SIZE - tailStart) }];
    await src.read(tail);
    expect(src.stats).toMatchObject({ directReads: 1, bouncedReads: 1, retries: 0 });

    expectFilled(mem, before, [...aligned, ...unaligned, ...tail]);
    await src.close();
  });

  it.skipIf(!DIRECT_OK)("detects a buffer O_DIRECT refuses (plain ArrayBuffer) once, then bounces it", async () => {
    const src = await NodeFileSource.open(file.path, { direct: true });
    const plain = new Uint8Array(64 * B);
    const reqs = [0, 1, 2].map((i) => ({ offset: i * 8 * B, length: 4 * B, target: plain.subarray(i * 8 * B, i * 8 * B + 4 * B) }));
    await src.read(reqs.slice(0, 1));
    await src.read(reqs.slice(1));
    for (const r of reqs) expect(Buffer.compare(r.target, file.bytes.subarray(r.offset, r.offset + r.length))).toBe(0);
    const s = src.stats;
    // Either the kernel took the address (dma alignment) or it refused it once and we bounced from then on.
    expect(s.reads - s.directReads - s.bouncedReads).toBeLessThanOrEqual(1);
    if (s.bouncedReads > 0) expect(s.reads).toBe(s.bouncedReads + 1);
    await src.close();
  });

  it("throws a SourceError when the filesystem refuses O_DIRECT", async (ctx) => {
    const refusing = ["/dev/shm", tmpdir()].find((d) => !supportsDirect(d));
    if (!refusing) ctx.skip("every candidate filesystem here (/dev/shm, tmpdir) supports O_DIRECT");
    const f = makeFile(8192, refusing);
    try {
      const err = await NodeFileSource.open(f.path, { direct: true }).catch((e) => e);
      expect(err).toBeInstanceOf(SourceError);
      expect(err.message).toMatch(/refuses O_DIRECT/);
    } finally {
      f.cleanup();
    }
  });

  it("rejects opening a missing file with a SourceError", async () => {
    await expect(NodeFileSource.open("/nonexistent/flashllm.bin")).rejects.toThrow(/cannot open .*ENOENT/);
  });
});
