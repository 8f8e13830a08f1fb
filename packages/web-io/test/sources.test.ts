// BlobSource and OpfsSource in Node: Blob exists here; OPFS's sync access handle is faked (the real one
// is exercised by the browser tests).
import { describe, expect, it } from "vitest";
import { AbortedError, SourceError, mulberry32 } from "@flashllm/sdk/internal";
import { BlobSource } from "../src/blob-source.js";
import { OpfsSource } from "../src/opfs-source.js";
import type { SyncAccessHandle } from "../src/opfs-source.js";

const bytes = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 31 + 7) & 255);

describe("BlobSource", () => {
  it("reads slices into the targets, splitting long requests", async () => {
    const src = new BlobSource(new Blob([bytes]), { maxSliceBytes: 30_000 });
    expect(src.byteLength).toBe(bytes.byteLength);
    const a = new Uint8Array(70_000);
    const b = new Uint8Array(5);
    await src.read([
      { offset: 20_000, length: 70_000, target: a },
      { offset: 3, length: 5, target: b },
    ]);
    expect(Buffer.from(a).equals(bytes.subarray(20_000, 90_000))).toBe(true);
    expect([...b]).toEqual([...bytes.subarray(3, 8)]);
  });

  it("rejects reads outside the file, after close, and when aborted", async () => {
    const src = new BlobSource(new File([bytes], "m.flm"));
    await expect(src.read([{ offset: 99_999, length: 2, target: new Uint8Array(2) }])).rejects.toThrow(/outside m\.flm/);
    const c = new AbortController();
    c.abort();
    await expect(src.read([{ offset: 0, length: 2, target: new Uint8Array(2) }], c.signal)).rejects.toBeInstanceOf(AbortedError);
    await src.close();
    await expect(src.read([{ offset: 0, length: 2, target: new Uint8Array(2) }])).rejects.toThrow(/closed/);
  });

  it("an aborted read writes nothing into the target after it rejects", async () => {
    const src = new BlobSource(new Blob([bytes]));
    const target = new Uint8Array(50_000);
    const c = new AbortController();
    const p = src.read([{ offset: 0, length: 50_000, target }], c.signal);
    c.abort();
    await expect(p).rejects.toBeInstanceOf(AbortedError);
    await new Promise((r) => setTimeout(r, 20));
    expect(target.every((v) => v === 0)).toBe(true);
  });
});

/** A sync access handle over bytes, that returns at most `maxPerRead` bytes per call. */
function fakeHandle(data: Uint8Array, maxPerRead = Infinity): SyncAccessHandle & { closed: boolean } {
  return {
    closed: false,
    read(buf, opts) {
      const at = opts?.at ?? 0;
      const n = Math.max(0, Math.min(buf.byteLength, data.byteLength - at, maxPerRead));
      new Uint8Array(buf.buffer, buf.byteOffset, n).set(data.subarray(at, at + n));
      return n;
    },
    write: () => 0,
    getSize: () => data.byteLength,
    truncate() {},
    flush() {},
    close() {
      this.closed = true;
    },
  };
}

describe("OpfsSource", () => {
  it("reads in place, continuing after short reads", async () => {
    const h = fakeHandle(bytes, 1000);
    const src = new OpfsSource(h, "m.flm");
    const t = new Uint8Array(10_000);
    await src.read([{ offset: 123, length: 10_000, target: t }]);
    expect(Buffer.from(t).equals(bytes.subarray(123, 10_123))).toBe(true);
    await src.close();
    expect(h.closed).toBe(true);
    await expect(src.read([{ offset: 0, length: 1, target: new Uint8Array(1) }])).rejects.toThrow(/closed/);
  });

  it("reads in steps of at most maxReadBytes (large sync reads are slow in Chromium)", async () => {
    const h = fakeHandle(bytes);
    const sizes: number[] = [];
    const read = h.read;
    h.read = (buf, opts) => (sizes.push(buf.byteLength), read(buf, opts));
    const t = new Uint8Array(70_000);
    await new OpfsSource(h, "m.flm").read([{ offset: 1000, length: 70_000, target: t }]);
    expect(sizes).toEqual([65_536, 70_000 - 65_536]);
    expect(Buffer.from(t).equals(bytes.subarray(1000, 71_000))).toBe(true);
  });

  it("merges neighbours of one read into one handle read of at most maxReadBytes; every target gets its bytes", async () => {
    const rng = mulberry32(7);
    const data = Uint8Array.from({ length: 300_000 }, () => Math.floor(rng() * 256)); // no period to hide a wrong offset
    for (let trial = 0; trial < 20; trial++) {
      const h = fakeHandle(data, trial % 2 ? 1 + Math.floor(rng() * 70_000) : Infinity); // short reads in odd trials
      let calls = 0;
      const read = h.read;
      h.read = (buf, opts) => (calls++, read(buf, opts));
      // Scattered bundles, as the sparse model's neurons, in random order; targets a little longer than asked.
      const requests = Array.from({ length: 40 }, () => {
        const length = 1 + Math.floor(rng() * 2000);
        const offset = Math.floor(rng() * (data.length - length));
        return { offset, length, target: new Uint8Array(length + 3) };
      });
      await new OpfsSource(h, "m.flm", { maxReadBytes: 65_536, mergeGapBytes: 65_536 }).read(requests);
      for (const r of requests) {
        expect(Buffer.from(r.target.subarray(0, r.length)).equals(data.subarray(r.offset, r.offset + r.length))).toBe(true);
        expect(r.target.subarray(r.length).every((v) => v === 0)).toBe(true); // nothing written past the request
      }
      if (trial % 2 === 0) expect(calls).toBeLessThanOrEqual(Math.ceil(data.length / 65_536) + 1); // ~5 reads, not 40
    }
  });

  it("mergeGapBytes 0 reads every request on its own, straight into its target", async () => {
    const h = fakeHandle(bytes);
    const targets: ArrayBufferLike[] = [];
    const read = h.read;
    h.read = (buf, opts) => (targets.push(buf.buffer), read(buf, opts));
    const a = new Uint8Array(100);
    const b = new Uint8Array(100);
    await new OpfsSource(h, "m.flm", { mergeGapBytes: 0 }).read([{ offset: 0, length: 100, target: a }, { offset: 200, length: 100, target: b }]);
    expect(targets).toEqual([a.buffer, b.buffer]);
    expect(Buffer.from(b).equals(bytes.subarray(200, 300))).toBe(true);
  });

  it("a file that shrank under us is a SourceError, never zeros", async () => {
    const h = fakeHandle(bytes);
    const src = new OpfsSource(h, "m.flm");
    h.getSize = () => 10; // shrank after open
    h.read = fakeHandle(bytes.subarray(0, 50_000)).read; // the file now ends at 50 000
    const err = await src.read([{ offset: 49_000, length: 2000, target: new Uint8Array(2000) }]).catch((e) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect(err.message).toMatch(/ended after 50000 bytes/);
  });

  it("open() outside a browser says what is missing", async () => {
    await expect(OpfsSource.open("m.flm")).rejects.toThrow(/no origin private file system/);
  });
});
