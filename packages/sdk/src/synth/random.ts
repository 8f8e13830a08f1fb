/**
 * A small, fast, seeded PRNG (xorshift32) for synthetic weights and activation traces: deterministic
 * across runs and platforms, and fast enough to fill gigabytes of int8 weights (four per call).
 */
export class XorShift32 {
  private s: number;
  constructor(seed: number) {
    this.s = (seed ^ 0x9e3779b9) >>> 0 || 0x2545f491;
    for (let i = 0; i < 4; i++) this.nextU32();
  }

  nextU32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Fills `bytes` with uniform random bytes (int8 weights in [-128, 127]). */
  fill(bytes: Uint8Array): void {
    const words = Math.floor(bytes.byteLength / 4);
    const aligned = bytes.byteOffset % 4 === 0;
    if (aligned) {
      const w = new Int32Array(bytes.buffer, bytes.byteOffset, words);
      let x = this.s;
      for (let i = 0; i < words; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        w[i] = x;
      }
      this.s = x >>> 0 || 0x2545f491;
    } else {
      for (let i = 0; i < words * 4; i += 4) {
        const v = this.nextU32();
        bytes[i] = v;
        bytes[i + 1] = v >>> 8;
        bytes[i + 2] = v >>> 16;
        bytes[i + 3] = v >>> 24;
      }
    }
    for (let i = words * 4; i < bytes.byteLength; i++) bytes[i] = this.nextU32();
  }
}
