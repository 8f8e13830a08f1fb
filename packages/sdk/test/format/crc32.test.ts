import { describe, expect, it } from "vitest";
import { Crc32, crc32, crcToHex, hexToCrc } from "../../src/format/index.js";
import { rng } from "./helpers.js";

const ascii = (s: string) => new TextEncoder().encode(s);

/** Bit-at-a-time CRC-32, straight from the definition. */
function bitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe("crc32", () => {
  it("matches the standard check values", () => {
    expect(crc32(ascii("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(ascii("a"))).toBe(0xe8b7be43);
    expect(crc32(ascii("The quick brown fox jumps over the lazy dog"))).toBe(0x414fa339);
    expect(crc32(new Uint8Array(32))).toBe(0x190a55ad);
    expect(crc32(new Uint8Array(32).fill(0xff))).toBe(0xff6cab0b);
  });

  it("matches a bitwise reference for every length up to 300", () => {
    const rand = rng(7);
    for (let n = 0; n <= 300; n++) {
      const bytes = Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
      expect(crc32(bytes)).toBe(bitwise(bytes));
    }
  });

  it("continues across chunks: crc32(b, crc32(a)) = crc32(a ++ b)", () => {
    const rand = rng(8);
    const bytes = Uint8Array.from({ length: 1000 }, () => Math.floor(rand() * 256));
    const whole = crc32(bytes);
    for (let trial = 0; trial < 50; trial++) {
      const inc = new Crc32();
      let at = 0;
      while (at < bytes.length) {
        const n = Math.floor(rand() * 40);
        inc.update(bytes.subarray(at, at + n));
        at += n;
      }
      expect(inc.value).toBe(whole);
    }
    expect(crc32(bytes.subarray(500), crc32(bytes.subarray(0, 500)))).toBe(whole);
  });

  it("reads subarray views at their own offset", () => {
    const buf = new Uint8Array(20);
    buf.set(ascii("123456789"), 7);
    expect(crc32(buf.subarray(7, 16))).toBe(0xcbf43926);
  });

  it("prints CRCs as fixed-width hex and parses them back", () => {
    expect(crcToHex(0xcbf43926)).toBe("cbf43926");
    expect(crcToHex(0x1)).toBe("00000001");
    expect(hexToCrc("cbf43926")).toBe(0xcbf43926);
    expect(hexToCrc("00000000")).toBe(0);
  });
});
