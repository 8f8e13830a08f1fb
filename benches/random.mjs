// Deterministic test data for the kernel benches (one definition for kernels.mjs and kernels-ab.mjs).

/** Fills `a` with uniform values in [-1, 1) from a xorshift32 stream seeded with `seed`. */
export function fillRandom(a, seed) {
  let s = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (s >>> 0) * 4.656612873077393e-10 - 1;
  }
}
