/**
 * CRC-32 of a concatenation from the CRCs of its parts, without the bytes (zlib's `crc32_combine`):
 * `crc32Combine(crc32(a), crc32(b), b.length) === crc32(a ++ b)`. It lets the resident section be
 * verified by several readers (the shards of a sharded model), each checksumming only the bytes it
 * reads, against the one whole-section CRC the manifest stores: every byte is still checked, and none
 * is read twice for it.
 *
 * Appending `len` bytes multiplies the running CRC by x^(8·len) modulo the polynomial; the operator is
 * applied by repeated squaring of a 32×32 GF(2) matrix (O(log len) matrix products).
 */

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i];
  return sum >>> 0;
}

function gf2Square(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n]);
}

/** CRC-32 of `a` followed by `b`, given `crcA = crc32(a)`, `crcB = crc32(b)` and `lenB = b.length`. */
export function crc32Combine(crcA: number, crcB: number, lenB: number): number {
  if (!(Number.isSafeInteger(lenB) && lenB >= 0)) throw new RangeError(`crc32Combine: length must be a non-negative integer, got ${lenB}`);
  if (lenB === 0) return crcA >>> 0;
  const even = new Uint32Array(32); // operator for 2^(2k) zero bits
  const odd = new Uint32Array(32); // operator for 2^(2k+1) zero bits
  odd[0] = 0xedb88320; // one zero bit
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row >>> 0;
  gf2Square(even, odd); // two zero bits
  gf2Square(odd, even); // four zero bits
  let crc = crcA >>> 0;
  let len = lenB;
  // Apply len zero bytes to crcA (the first squaring below gives the one-byte operator).
  for (;;) {
    gf2Square(even, odd);
    if (len % 2) crc = gf2Times(even, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len % 2) crc = gf2Times(odd, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
  }
  return (crc ^ crcB) >>> 0;
}
