//! CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF), the checksum
//! of zlib, gzip, PNG and `.flm` files (`packages/sdk/src/format/crc32.ts` computes the same).
//!
//! Slicing-by-16: 16 tables (built at compile time, 16 KiB of the module's data) let one step fold
//! 16 bytes into the CRC with 16 independent lookups instead of 16 dependent ones.

const POLY: u32 = 0xEDB8_8320;

/// `T[0]` is the byte-at-a-time table; `T[k][n]` is the CRC of byte n followed by k zero bytes.
const fn build_tables() -> [[u32; 256]; 16] {
    let mut t = [[0u32; 256]; 16];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][n] = c;
        n += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut n = 0;
        while n < 256 {
            let prev = t[k - 1][n];
            t[k][n] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            n += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u32; 256]; 16] = build_tables();

#[inline(always)]
fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// CRC-32 of `bytes`, continuing from `previous`, the CRC of everything before them (0 for a fresh
/// start): `crc32(b, crc32(a, 0))` is the CRC of `a` followed by `b`.
pub fn crc32(bytes: &[u8], previous: u32) -> u32 {
    let t = &TABLES;
    let at = |k: usize, v: u32| t[k][(v & 0xFF) as u8 as usize];
    let mut c = !previous;
    let mut chunks = bytes.chunks_exact(16);
    for ch in &mut chunks {
        let (a, b, d, e) = (word(ch, 0) ^ c, word(ch, 4), word(ch, 8), word(ch, 12));
        c = at(15, a) ^ at(14, a >> 8) ^ at(13, a >> 16) ^ at(12, a >> 24)
            ^ at(11, b) ^ at(10, b >> 8) ^ at(9, b >> 16) ^ at(8, b >> 24)
            ^ at(7, d) ^ at(6, d >> 8) ^ at(5, d >> 16) ^ at(4, d >> 24)
            ^ at(3, e) ^ at(2, e >> 8) ^ at(1, e >> 16) ^ at(0, e >> 24);
    }
    for &byte in chunks.remainder() {
        c = at(0, c ^ byte as u32) ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    /// The definition: one bit at a time.
    fn crc32_bitwise(bytes: &[u8], previous: u32) -> u32 {
        let mut c = !previous;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn check_value_and_random_buffers_of_many_lengths() {
        assert_eq!(crc32(b"123456789", 0), 0xCBF4_3926);
        assert_eq!(crc32(&[], 0), 0);
        assert_eq!(crc32(&[], 0x1234_5678), 0x1234_5678);
        let mut rng = Rng::new(80);
        let data: Vec<u8> = (0..5000).map(|_| rng.next_u64() as u8).collect();
        for len in (0..70).chain([255, 256, 1000, 4095, 4096, 4097, 4999]) {
            let start = rng.below(2);
            let b = &data[start..start + len];
            let want = crc32_bitwise(b, 0);
            assert_eq!(crc32(b, 0), want, "len {len}");
            // chaining at any cut
            let cut = if len > 0 { rng.below(len + 1) } else { 0 };
            assert_eq!(crc32(&b[cut..], crc32(&b[..cut], 0)), want, "len {len} cut {cut}");
        }
    }
}
