import { describe, expect, it } from "vitest";
import { BUNDLE_FIELDS, bundleLayout, packBundle, unpackBundle } from "../../src/format/index.js";
import type { NeuronWeights } from "../../src/format/index.js";
import { errorOf, randomF32, refQuantize, rng } from "./helpers.js";

describe("bundle layout (kernel ABI: 16-byte header, [gate] up down)", () => {
  it("places rows right after the header", () => {
    expect(bundleLayout(16, "f32", true)).toMatchObject({ rowBytes: 64, gateOffset: 16, upOffset: 80, downOffset: 144, bundleBytes: 208, bundleStride: 208 });
    expect(bundleLayout(16, "f32", false)).toMatchObject({ gateOffset: null, upOffset: 16, downOffset: 80, bundleBytes: 144, bundleStride: 144 });
    expect(bundleLayout(16, "q8", false)).toMatchObject({ rowBytes: 16, upOffset: 16, downOffset: 32, bundleBytes: 48, bundleStride: 48 });
    expect(bundleLayout(17, "q8", true)).toMatchObject({ gateOffset: 16, upOffset: 33, downOffset: 50, bundleBytes: 67, bundleStride: 80 });
    expect(bundleLayout(4096, "f32", true).bundleBytes).toBe(16 + 3 * 4096 * 4);
    // f16: 2 bytes a value; q8_0 / q4_0: 34 / 18 bytes per 32 values, rows unaligned (kernels load unaligned).
    expect(bundleLayout(64, "f16", true)).toMatchObject({ rowBytes: 128, upOffset: 144, downOffset: 272, bundleBytes: 400 });
    expect(bundleLayout(64, "q8_0", true)).toMatchObject({ rowBytes: 68, upOffset: 84, downOffset: 152, bundleBytes: 220, bundleStride: 224 });
    expect(bundleLayout(64, "q4_0", false)).toMatchObject({ rowBytes: 36, upOffset: 16, downOffset: 52, bundleBytes: 88, bundleStride: 96 });
    expect(() => bundleLayout(48, "q4_0", true)).toThrow(/rows of 48 values cannot be stored as q4_0/);
  });

  it("rounds the stride up to the chosen power-of-two alignment", () => {
    expect(bundleLayout(16, "q8", true, 4096).bundleStride).toBe(4096);
    expect(bundleLayout(16, "q8", true, 64).bundleStride).toBe(64);
    expect(bundleLayout(17, "q8", true, 64).bundleStride).toBe(128);
    expect(bundleLayout(4096, "q8", true, 4096).bundleStride).toBe(16384);
  });

  it("rejects alignments that are not powers of two ≥ 16", async () => {
    for (const a of [0, 8, 24, 100, 2 ** 31]) expect((await errorOf(() => bundleLayout(16, "f32", true, a))).code).toBe("BAD_ARGUMENT");
  });

  it("packs an f32 bundle byte for byte", () => {
    const rand = rng(5);
    const layout = bundleLayout(16, "f32", true, 256);
    const n: NeuronWeights = { gate: randomF32(rand, 16), up: randomF32(rand, 16), down: randomF32(rand, 16), biasUp: 0.25 };
    const buf = new Uint8Array(layout.bundleStride + 8).fill(0xaa);
    packBundle(layout, n, buf, 4);
    const view = new DataView(buf.buffer, 4);
    expect([0, 4, 8].map((o) => view.getFloat32(o, true))).toEqual([0, 0, 0]);
    expect(view.getFloat32(BUNDLE_FIELDS.biasUp, true)).toBe(0.25);
    for (let j = 0; j < 16; j++) {
      expect(view.getFloat32(16 + 4 * j, true)).toBe(n.gate![j]);
      expect(view.getFloat32(16 + 64 + 4 * j, true)).toBe(n.up[j]);
      expect(view.getFloat32(16 + 128 + 4 * j, true)).toBe(n.down[j]);
    }
    // Only bundleBytes are written: bytes before and after are untouched.
    expect(Array.from(buf.subarray(0, 4))).toEqual([0xaa, 0xaa, 0xaa, 0xaa]);
    expect(buf[4 + layout.bundleBytes]).toBe(0xaa);
  });

  it("packs a q8 bundle: scales in the header, int8 rows equal an independent quantization", () => {
    const rand = rng(6);
    const layout = bundleLayout(16, "q8", true);
    const n: NeuronWeights = { gate: randomF32(rand, 16), up: randomF32(rand, 16, 3), down: randomF32(rand, 16, 0.1), biasUp: -1.5 };
    const buf = new Uint8Array(layout.bundleStride);
    packBundle(layout, n, buf);
    const view = new DataView(buf.buffer);
    const refs = [refQuantize(n.gate!), refQuantize(n.up), refQuantize(n.down)];
    expect(view.getFloat32(BUNDLE_FIELDS.scaleGate, true)).toBe(refs[0].scale);
    expect(view.getFloat32(BUNDLE_FIELDS.scaleUp, true)).toBe(refs[1].scale);
    expect(view.getFloat32(BUNDLE_FIELDS.scaleDown, true)).toBe(refs[2].scale);
    expect(view.getFloat32(BUNDLE_FIELDS.biasUp, true)).toBe(-1.5);
    const i8 = new Int8Array(buf.buffer);
    expect(Array.from(i8.subarray(16, 32))).toEqual(refs[0].q);
    expect(Array.from(i8.subarray(32, 48))).toEqual(refs[1].q);
    expect(Array.from(i8.subarray(48, 64))).toEqual(refs[2].q);
  });

  it("unpacks what it packed (f32 exactly, q8 within scale/2)", () => {
    const rand = rng(9);
    for (const dtype of ["f32", "q8"] as const) {
      for (const gated of [true, false]) {
        const layout = bundleLayout(24, dtype, gated);
        const n: NeuronWeights = { ...(gated ? { gate: randomF32(rand, 24) } : {}), up: randomF32(rand, 24), down: randomF32(rand, 24), biasUp: 0.5 };
        const buf = new Uint8Array(layout.bundleStride);
        packBundle(layout, n, buf);
        const u = unpackBundle(layout, buf);
        expect(u.biasUp).toBe(0.5);
        expect(u.gate === null).toBe(!gated);
        const pairs: [Float32Array, Float32Array, number][] = [[u.up, n.up, u.scaleUp], [u.down, n.down, u.scaleDown]];
        if (gated) pairs.push([u.gate!, n.gate!, u.scaleGate]);
        for (const [got, want, scale] of pairs) {
          if (dtype === "f32") expect(Array.from(got)).toEqual(Array.from(want));
          else for (let j = 0; j < 24; j++) expect(Math.abs(got[j] - want[j])).toBeLessThanOrEqual(scale / 2 + 1e-7);
        }
      }
    }
  });

  it("rejects neurons that do not fit the layout", async () => {
    const layout = bundleLayout(8, "f32", true);
    const buf = new Uint8Array(layout.bundleStride);
    const row = new Float32Array(8);
    expect((await errorOf(() => packBundle(layout, { up: row, down: row }, buf))).code).toBe("BAD_ARGUMENT");
    expect((await errorOf(() => packBundle(layout, { gate: row, up: new Float32Array(7), down: row }, buf))).code).toBe("BAD_ARGUMENT");
    expect((await errorOf(() => packBundle(layout, { gate: row, up: row, down: row }, buf, 8))).code).toBe("BAD_ARGUMENT");
    expect((await errorOf(() => packBundle(bundleLayout(8, "f32", false), { gate: row, up: row, down: row }, buf))).code).toBe("BAD_ARGUMENT");
  });
});
