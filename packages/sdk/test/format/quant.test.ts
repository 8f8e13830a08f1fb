import { describe, expect, it } from "vitest";
import { dequantizeRows, quantizeRows, quantizeVector, roundHalfAway } from "../../src/format/index.js";
import { errorOf, randomF32, refQuantize, rng } from "./helpers.js";

describe("q8 quantization", () => {
  it("rounds ties away from zero (like Rust f32::round)", () => {
    expect([2.5, -2.5, 0.5, -0.5, 1.4, -1.6, 0].map(roundHalfAway)).toEqual([3, -3, 1, -1, 1, -2, 0]);
  });

  it("uses scale max|v|/127 and keeps every value within scale/2", () => {
    const rand = rng(3);
    for (let trial = 0; trial < 100; trial++) {
      const v = randomF32(rand, 1 + Math.floor(rand() * 70), 10 * rand());
      const q = new Int8Array(v.length);
      const scale = quantizeVector(v, q);
      const ref = refQuantize(v);
      expect(scale).toBe(ref.scale);
      expect(Array.from(q)).toEqual(ref.q);
      const iMax = v.reduce((best, x, i) => (Math.abs(x) > Math.abs(v[best]) ? i : best), 0);
      expect(Math.abs(q[iMax])).toBe(127);
      for (let i = 0; i < v.length; i++) expect(Math.abs(scale * q[i] - v[i])).toBeLessThanOrEqual(scale / 2 + 1e-12);
    }
  });

  it("gives an all-zero vector scale 0 and zero values", () => {
    const q = new Int8Array(4).fill(9);
    expect(quantizeVector(new Float32Array(4), q)).toBe(0);
    expect(Array.from(q)).toEqual([0, 0, 0, 0]);
  });

  it("writes at an offset from a sub-range", () => {
    const v = Float32Array.from([9, 9, 1, -2, 9]);
    const q = new Int8Array(6);
    const scale = quantizeVector(v, q, 3, 2, 2);
    expect(scale).toBe(Math.fround(2 / 127));
    expect(Array.from(q)).toEqual([0, 0, 0, 64, -127, 0]);
  });

  it("rejects non-finite values", async () => {
    expect((await errorOf(() => quantizeVector(Float32Array.from([1, NaN]), new Int8Array(2)))).code).toBe("BAD_ARGUMENT");
    expect((await errorOf(() => quantizeVector(Float32Array.from([Infinity]), new Int8Array(1)))).code).toBe("BAD_ARGUMENT");
  });

  it("quantizes a matrix per row and dequantizes it", () => {
    const data = randomF32(rng(4), 5 * 7);
    const rows = quantizeRows(data, 5, 7);
    expect(rows.q.length).toBe(35);
    expect(rows.scales.length).toBe(5);
    const back = dequantizeRows(rows, 7);
    for (let i = 0; i < data.length; i++) expect(Math.abs(back[i] - data[i])).toBeLessThanOrEqual(rows.scales[Math.floor(i / 7)] / 2 + 1e-7);
  });
});
