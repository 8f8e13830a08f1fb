import { FlashError } from "./errors.js";

/** How the next token is chosen from the logits. */
export interface SamplingOptions {
  /** 0 (default) picks the most likely token; higher values flatten the distribution. */
  temperature?: number;
  /** Nucleus sampling: sample among the most likely tokens whose probabilities sum to `topP`. Values outside (0,1) disable it. Default 0.9. */
  topP?: number;
  /** RNG seed (an integer ≥ 0; 0 is a seed like any other). The same seed and prompt give the same text. Default: time-based. */
  seed?: number;
}

/**
 * xorshift64* stays at 0 forever from state 0, so seed 0 starts from this constant instead (the 64-bit
 * golden ratio, a common non-zero stand-in). run.c itself never uses seed 0 (it replaces it with the time).
 */
const ZERO_SEED_STATE = 0x9e3779b97f4a7c15n;

/** run.c's xorshift64* generator, so that a seed reproduces the reference implementation's samples. */
export class XorShiftRng {
  private state: bigint;
  constructor(seed: number | bigint) {
    this.state = BigInt.asUintN(64, BigInt(seed));
    if (this.state === 0n) this.state = ZERO_SEED_STATE;
  }
  nextU32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s = BigInt.asUintN(64, s ^ (s << 25n));
    s ^= s >> 27n;
    this.state = s;
    return Number(BigInt.asUintN(64, s * 0x2545f4914f6cdd1dn) >> 32n);
  }
  /** A float32 in [0, 1). */
  nextF32(): number {
    return Math.fround((this.nextU32() >>> 8) / 16777216);
  }
}

const f = Math.fround;

/**
 * Picks tokens as run.c's sampler does: argmax at temperature 0; otherwise temperature-scaled softmax in
 * float32, then top-p (nucleus) or plain multinomial sampling with one RNG draw per token.
 */
export class Sampler {
  readonly temperature: number;
  readonly topP: number;
  private readonly rng: XorShiftRng;
  private probs = new Float32Array(0);
  private order: number[] = [];

  constructor(opts: SamplingOptions = {}) {
    this.temperature = opts.temperature ?? 0;
    this.topP = opts.topP ?? 0.9;
    if (!(this.temperature >= 0) || !Number.isFinite(this.temperature)) {
      throw new FlashError("BAD_ARGUMENT", `temperature must be a finite number ≥ 0, got ${opts.temperature}`);
    }
    if (!Number.isFinite(this.topP)) throw new FlashError("BAD_ARGUMENT", `topP must be a finite number, got ${opts.topP}`);
    const seed = opts.seed ?? Date.now();
    if (!Number.isSafeInteger(seed) || seed < 0) throw new FlashError("BAD_ARGUMENT", `seed must be an integer ≥ 0, got ${opts.seed}`);
    this.rng = new XorShiftRng(seed);
  }

  /** Chooses the next token. `logits` is not modified. */
  sample(logits: Float32Array): number {
    const n = logits.length;
    if (this.temperature === 0) return argmax(logits);
    if (this.probs.length !== n) this.probs = new Float32Array(n);
    const p = this.probs;
    const t = f(this.temperature);
    for (let i = 0; i < n; i++) p[i] = f(logits[i] / t);
    softmaxF32(p);
    const coin = this.rng.nextF32();
    if (this.topP <= 0 || this.topP >= 1) return sampleMultinomial(p, coin);
    return this.sampleTopP(p, f(this.topP), coin);
  }

  private sampleTopP(p: Float32Array, topP: number, coin: number): number {
    const n = p.length;
    // Tokens below this probability cannot be in the nucleus; dropping them first keeps the sort short.
    const cutoff = f(f(1 - topP) / (n - 1));
    const order = this.order;
    order.length = 0;
    for (let i = 0; i < n; i++) if (p[i] >= cutoff) order.push(i);
    order.sort((a, b) => p[b] - p[a]); // stable: equal probabilities keep index order
    let cum = 0;
    let last = order.length - 1;
    for (let i = 0; i < order.length; i++) {
      cum = f(cum + p[order[i]]);
      if (cum > topP) {
        last = i;
        break;
      }
    }
    const r = f(coin * cum);
    let cdf = 0;
    for (let i = 0; i <= last; i++) {
      cdf = f(cdf + p[order[i]]);
      if (r < cdf) return order[i];
    }
    return order[last];
  }
}

/** Index of the first maximum. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** In-place float32 softmax, in run.c's order of operations. */
export function softmaxF32(x: Float32Array): void {
  let max = x[0];
  for (let i = 1; i < x.length; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.exp(f(x[i] - max));
    sum = f(sum + x[i]);
  }
  for (let i = 0; i < x.length; i++) x[i] = x[i] / sum;
}

function sampleMultinomial(p: Float32Array, coin: number): number {
  let cdf = 0;
  for (let i = 0; i < p.length; i++) {
    cdf = f(cdf + p[i]);
    if (coin < cdf) return i;
  }
  return p.length - 1;
}
