import { describe, expect, it } from "vitest";
import { FormatError } from "../../src/errors.js";
import { MemorySource } from "../../src/source.js";
import { MAX_HEADER_BYTES, openSafetensors } from "../../src/hf/index.js";
import {
  buildFile, CountingSource, errorOf, expectSameValues, f32Bytes, refBf16, refF16, rng, sparseSource, u16Bytes, writeSafetensors,
} from "./helpers.js";
import type { RawTensor } from "./helpers.js";

const open = (b: Uint8Array, chunkBytes?: number) => openSafetensors(new MemorySource(b), { name: "t.safetensors", chunkBytes });
const formatError = async (b: Uint8Array) => {
  const e = await errorOf(() => open(b));
  expect(e).toBeInstanceOf(FormatError);
  return e;
};

/** Random tensors of each dtype with their expected values (halves as random bit patterns). */
function randomTensors(seed: number) {
  const r = rng(seed);
  const shapes = [[3, 5], [7], [], [2, 3, 4], [0, 4], [33, 17]];
  const tensors: RawTensor[] = [];
  const expected = new Map<string, number[]>();
  let k = 0;
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    for (const shape of shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      const name = `t${k++}.${dtype}`;
      if (dtype === "F32") {
        const v = Array.from({ length: n }, () => Math.fround((r() - 0.5) * 2 ** Math.floor(r() * 40 - 20)));
        tensors.push({ name, dtype, shape, data: f32Bytes(v) });
        expected.set(name, v);
      } else {
        const bits = Array.from({ length: n }, () => Math.floor(r() * 65536));
        tensors.push({ name, dtype, shape, data: u16Bytes(bits) });
        expected.set(name, bits.map(dtype === "F16" ? refF16 : refBf16));
      }
    }
  }
  return { tensors, expected };
}

describe("safetensors reader", () => {
  it("reads random F32, F16 and BF16 tensors exactly, shapes and offsets as written", async () => {
    const { tensors, expected } = randomTensors(7);
    for (const pad of [true, false]) {
      const file = await open(writeSafetensors(tensors, pad));
      expect(file.names()).toEqual(tensors.map((t) => t.name));
      for (const t of tensors) {
        const info = file.info(t.name)!;
        expect(info).toMatchObject({ name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.data.length, file: "t.safetensors" });
        expect(info.offset).toBeGreaterThanOrEqual(file.dataStart);
        expectSameValues(await file.readTensor(t.name), expected.get(t.name)!, t.name);
      }
    }
  });

  it("widens all 65,536 F16 and BF16 bit patterns like the textbook formula (subnormals, ±0, ±inf, NaN)", async () => {
    const all = Array.from({ length: 65536 }, (_, i) => i);
    // Small chunks force the conversion to cross chunk boundaries.
    const file = await open(
      writeSafetensors([
        { name: "h", dtype: "F16", shape: [256, 256], data: u16Bytes(all) },
        { name: "b", dtype: "BF16", shape: [65536], data: u16Bytes(all) },
      ]),
      1000,
    );
    const h = await file.readTensor("h");
    const b = await file.readTensor("b");
    expectSameValues(h, all.map(refF16), "f16");
    expectSameValues(b, all.map(refBf16), "bf16");
    // Spot checks that do not depend on the reference formula either.
    expect(h[0x0001]).toBe(2 ** -24); // smallest subnormal
    expect(h[0x03ff]).toBe(1023 * 2 ** -24); // largest subnormal
    expect(h[0x7bff]).toBe(65504); // largest finite
    expect(h[0x7c00]).toBe(Infinity);
    expect(h[0xfc00]).toBe(-Infinity);
    expect(Object.is(h[0x8000], -0)).toBe(true);
    expect(Number.isNaN(h[0x7e00])).toBe(true);
    expect(b[0x3f80]).toBe(1);
    expect(b[0x0001]).toBe(2 ** -133);
    expect(Number.isNaN(b[0xffc1])).toBe(true);
    // NaN payloads survive widening: f16 0x7c01 → f32 bits 0x7f802000.
    const bits = new Uint32Array(h.buffer, h.byteOffset, h.length);
    expect(bits[0x7c01]).toBe(0x7f802000);
    expect(new Uint32Array(b.buffer)[0xffc1]).toBe(0xffc10000);
  });

  it("reads only the header on open and only the asked tensor's bytes afterwards", async () => {
    const { tensors } = randomTensors(3);
    const bytes = writeSafetensors(tensors);
    const src = new CountingSource(bytes);
    const file = await openSafetensors(src);
    const headerLen = new DataView(bytes.buffer).getUint32(0, true);
    expect(src.log).toEqual([{ offset: 0, length: 8 }, { offset: 8, length: headerLen }]);
    src.log.length = 0;
    const name = tensors[5].name;
    await file.readTensor(name);
    const info = file.info(name)!;
    expect(src.log).toEqual([{ offset: info.offset, length: info.byteLength }]);
    await file.close();
    expect(src.closed).toBe(true);
  });

  it("reads into a caller's target and honours an abort signal", async () => {
    const file = await open(writeSafetensors([{ name: "x", dtype: "BF16", shape: [4], data: u16Bytes([0x3f80, 0x4000, 0xc000, 0]) }]));
    const target = new Float32Array(6).fill(9);
    const out = await file.readTensor("x", { target });
    expect(out.buffer).toBe(target.buffer);
    expect([...target]).toEqual([1, 2, -2, 0, 9, 9]);
    expect((await errorOf(() => file.readTensor("x", { target: new Float32Array(3) }))).code).toBe("BAD_ARGUMENT");
    const ac = new AbortController();
    ac.abort();
    expect((await errorOf(() => file.readTensor("x", { signal: ac.signal }))).code).toBe("ABORTED");
    const e = await errorOf(() => file.readTensor("nope"));
    expect(e.code).toBe("BAD_ARGUMENT");
    expect(e.message).toContain('"nope"');
    expect(file.has("x")).toBe(true);
    expect(file.info("nope")).toBeUndefined();
  });

  it("accepts a header with only __metadata__ and no tensors", async () => {
    const file = await open(buildFile({ __metadata__: { a: "b" } }, new Uint8Array(0)));
    expect(file.names()).toEqual([]);
  });
});

describe("safetensors corruption → typed errors", () => {
  const good = writeSafetensors([
    { name: "a", dtype: "F32", shape: [2, 2], data: f32Bytes([1, 2, 3, 4]) },
    { name: "b", dtype: "F16", shape: [4], data: u16Bytes([1, 2, 3, 4]) },
  ]);
  const header = (a: unknown, b: unknown = { dtype: "F16", shape: [4], data_offsets: [16, 24] }) => ({ a, b });
  const data = good.subarray(good.length - 24);

  it("a file shorter than 8 bytes is TRUNCATED", async () => {
    expect((await formatError(new Uint8Array(5))).code).toBe("TRUNCATED");
  });

  it("a header length beyond the file is TRUNCATED, with expected vs actual sizes", async () => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(0, good.length, true);
    const e = await formatError(b);
    expect(e.code).toBe("TRUNCATED");
    expect(e.details).toMatchObject({ file: "t.safetensors", expected: 8 + good.length, actual: good.length });
    expect(e.message).toContain("t.safetensors");
  });

  it("a header length above 100 MiB (or with the high word set, or below 2) is BAD_HEADER, without reading it", async () => {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setUint32(0, MAX_HEADER_BYTES + 1, true);
    const e = await errorOf(() => openSafetensors(sparseSource(len, 200 * 1024 * 1024)));
    expect(e.code).toBe("BAD_HEADER");
    expect(e.details).toMatchObject({ expected: MAX_HEADER_BYTES, actual: MAX_HEADER_BYTES + 1 });
    const hi = good.slice();
    new DataView(hi.buffer).setUint32(4, 1, true);
    expect((await formatError(hi)).code).toBe("BAD_HEADER");
    expect((await formatError(buildFile("", new Uint8Array(8), false))).code).toBe("BAD_HEADER");
  });

  it("bad JSON, non-object JSON and invalid UTF-8 are BAD_HEADER", async () => {
    expect((await formatError(buildFile('{"a": {"dtype": "F32",', data))).code).toBe("BAD_HEADER");
    expect((await formatError(buildFile("[1, 2]", data))).code).toBe("BAD_HEADER");
    expect((await formatError(buildFile("null", data))).code).toBe("BAD_HEADER");
    const bytes = buildFile('{"\u00e9": 1}', data);
    bytes[10] = 0xff; // break the UTF-8 sequence of é
    expect((await formatError(bytes)).code).toBe("BAD_HEADER");
  });

  it("malformed entries are BAD_HEADER naming the tensor", async () => {
    const cases = [
      header("F32"),
      header({ shape: [4], data_offsets: [0, 16] }),
      header({ dtype: "F32", shape: [2, -2], data_offsets: [0, 16] }),
      header({ dtype: "F32", shape: [2.5], data_offsets: [0, 16] }),
      header({ dtype: "F32", shape: "4", data_offsets: [0, 16] }),
      header({ dtype: "F32", shape: [4], data_offsets: [0] }),
      header({ dtype: "F32", shape: [4], data_offsets: [-4, 12] }),
      header({ dtype: "F32", shape: [0], data_offsets: [16, 0] }),
    ];
    for (const h of cases) {
      const e = await formatError(buildFile(h, data));
      expect(e.code, JSON.stringify(h)).toBe("BAD_HEADER");
      expect(e.details.tensor).toBe("a");
    }
  });

  it("overlapping tensors are BAD_HEADER naming both", async () => {
    const e = await formatError(buildFile(header({ dtype: "F32", shape: [2, 2], data_offsets: [4, 20] }, { dtype: "F16", shape: [4], data_offsets: [16, 24] }), data));
    expect(e.code).toBe("BAD_HEADER");
    expect(e.details.tensors).toEqual(["a", "b"]);
    // Adjacent and zero-length tensors do not overlap.
    await open(buildFile(header({ dtype: "F32", shape: [2, 2], data_offsets: [0, 16] }, { dtype: "F16", shape: [0], data_offsets: [8, 8] }), data));
  });

  it("offsets past the data region are OUT_OF_BOUNDS", async () => {
    const e = await formatError(buildFile(header({ dtype: "F32", shape: [2, 2], data_offsets: [12, 28] }), data));
    expect(e.code).toBe("OUT_OF_BOUNDS");
    expect(e.details).toMatchObject({ tensor: "a", expected: 24, actual: 28 });
  });

  it("shape × dtype size ≠ offset span is SIZE_MISMATCH with both sizes", async () => {
    const e = await formatError(buildFile(header({ dtype: "F32", shape: [2, 3], data_offsets: [0, 16] }), data));
    expect(e.code).toBe("SIZE_MISMATCH");
    expect(e.details).toMatchObject({ tensor: "a", expected: 24, actual: 16 });
    expect(e.message).toMatch(/"a".*24.*16/);
    // F16 declared where the span fits F32: also a mismatch.
    expect((await formatError(buildFile(header({ dtype: "F16", shape: [2, 2], data_offsets: [0, 16] }), data))).code).toBe("SIZE_MISMATCH");
  });

  it("dtypes other than F32/F16/BF16 are UNSUPPORTED naming the tensor and dtype", async () => {
    for (const dtype of ["I64", "F64", "U8", "BOOL", "F8_E4M3", "Q4"]) {
      const e = await formatError(buildFile(header({ dtype, shape: [2], data_offsets: [0, 16] }), data));
      expect(e.code).toBe("UNSUPPORTED");
      expect(e.details).toMatchObject({ tensor: "a", dtype });
      expect(e.message).toContain(dtype);
    }
  });
});
