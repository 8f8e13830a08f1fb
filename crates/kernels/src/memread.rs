//! A plain memory-read floor for the benchmark: how fast one core reads bytes out of WASM memory with
//! nothing else to do, so a kernel's bytes/s can be put against it.

use crate::simd::I32x4;

/// The wrapping sum of the little-endian u32 words of `bytes` (`bytes.len()` a multiple of 4; a
/// shorter tail is ignored), read 64 bytes per step into four independent vector accumulators.
pub fn sum_words(bytes: &[u8]) -> u32 {
    let n64 = bytes.len() / 64 * 64;
    let mut acc = [I32x4::zero(); 4];
    let p = bytes.as_ptr();
    let mut i = 0;
    while i < n64 {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 64 ≤ len.
            *a = a.add(unsafe { I32x4::load(p.add(i + 16 * k)) });
        }
        i += 64;
    }
    let v = acc[0].add(acc[1]).add(acc[2].add(acc[3]));
    let mut lanes = [0u8; 16];
    // SAFETY: 16 bytes.
    unsafe { v.store(lanes.as_mut_ptr()) };
    let mut s = lanes.chunks_exact(4).fold(0u32, |s, w| s.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]])));
    while i + 4 <= bytes.len() {
        s = s.wrapping_add(u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]));
        i += 4;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    #[test]
    fn sums_every_word() {
        let mut rng = Rng::new(90);
        for len in [0usize, 4, 60, 64, 68, 1000, 4096] {
            let b: Vec<u8> = (0..len + 3).map(|_| rng.next_u64() as u8).collect();
            let want = b[..len].chunks_exact(4).fold(0u32, |s, w| s.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]])));
            assert_eq!(sum_words(&b[..len]), want, "len {len}");
        }
    }
}
