//! IEEE half precision (f16) weights: exact decoding, THE f16 dot product and the f16 matvec.
//!
//! Every f16 kernel is defined as the matching f32 kernel over the exactly decoded values, so it is
//! bit-identical to it: `dot_f16(w, x) == dot(decode(w), x)`, `matvec_f16 == matvec_f32` over the
//! decoded matrix, and `add_scaled_f16 == add_scaled` over the decoded row.

use crate::simd::{F32x4, I16x8, TWO_POW_112};

/// The f32 of the IEEE half `h` (exact: every half is an f32).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let em = (h & 0x7FFF) as u32;
    if em >= 0x7C00 {
        // infinity or NaN: all-ones exponent, the mantissa (NaN payload) kept
        return f32::from_bits(sign | 0x7F80_0000 | ((em & 0x3FF) << 13));
    }
    // Exponent and mantissa moved to the f32 positions read as value·2^-112, for normals and
    // subnormals alike; the multiply by 2^112 only changes the exponent (exact).
    f32::from_bits(sign | (em << 13)) * TWO_POW_112
}

/// The IEEE half nearest to `v` (ties to even), as `_cvtss_sh` / ggml's `GGML_FP32_TO_FP16` round:
/// overflow gives ±infinity, NaN a quiet NaN.
pub fn f32_to_f16(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xFF) as i32;
    let man = b & 0x7F_FFFF;
    if exp == 0xFF {
        return sign | 0x7C00 | if man != 0 { 0x200 | (man >> 13) as u16 } else { 0 };
    }
    // unbiased exponent; the half's exponent field is e + 15
    let e = exp - 127;
    if e > 15 {
        return sign | 0x7C00;
    }
    // the significand with its implicit bit (24 bits), and how many bits to drop for the half
    let sig = if exp == 0 { man } else { man | 0x80_0000 };
    let shift = if e >= -14 { 13 } else { 13 + (-14 - e) } as u32;
    if shift > 24 {
        return sign; // below half the smallest subnormal
    }
    let kept = sig >> shift;
    let rest = sig & ((1u32 << shift) - 1);
    let half = 1u32 << (shift - 1);
    let rounded = kept + u32::from(rest > half || (rest == half && kept & 1 == 1));
    // A normal half is (e + 15) << 10 plus the mantissa; `rounded` still holds the implicit bit
    // (+1 << 10), hence e + 14. A carry out of the mantissa moves into the exponent correctly, up
    // to infinity. Subnormals (e < -14) are `rounded` itself.
    let h = if e >= -14 { (((e + 14) as u32) << 10) + rounded } else { rounded };
    sign | h as u16
}

/// `Σ f16(w[j])·x[j]` for `j < x.len()`, `w` holding at least `2·x.len()` bytes of little-endian
/// halves (any alignment). Bit-identical to `dot::dot` over the decoded values (same order: four
/// f32x4 accumulators over 16-value blocks, one over 4-value blocks, lanes, then the scalar tail).
///
/// The whole-16 part first decodes without the inf/NaN case (half the work) while tracking the
/// largest exponent field; a row that holds an inf or NaN is then done again with the exact decoder.
/// Finite halves decode to the same values either way, so the result is the same.
#[inline]
pub fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    let w = &w[..2 * n];
    let mut emax = I16x8::zero();
    let mut acc = [F32x4::zero(); 4];
    let n16 = n / 16 * 16;
    let mut j = 0;
    while j < n16 {
        // SAFETY: j + 16 ≤ n.
        unsafe {
            let (a0, a1, r0) = F32x4::load_f16x8_finite(w.as_ptr().add(2 * j));
            let (a2, a3, r1) = F32x4::load_f16x8_finite(w.as_ptr().add(2 * j + 16));
            emax = r1.max_exponent(r0.max_exponent(emax));
            let xp = x.as_ptr().add(j);
            acc[0] = acc[0] + a0 * F32x4::load_ptr(xp);
            acc[1] = acc[1] + a1 * F32x4::load_ptr(xp.add(4));
            acc[2] = acc[2] + a2 * F32x4::load_ptr(xp.add(8));
            acc[3] = acc[3] + a3 * F32x4::load_ptr(xp.add(12));
        }
        j += 16;
    }
    if emax.any_inf_or_nan() {
        return dot_f16_exact(w, x);
    }
    dot_f16_tail(w, x, acc)
}

/// `dot_f16` with the exact decoder throughout.
#[inline(never)]
fn dot_f16_exact(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    let w = &w[..2 * n];
    let wp = w.as_ptr();
    let mut acc = [F32x4::zero(); 4];
    let n16 = n / 16 * 16;
    let mut j = 0;
    while j < n16 {
        // SAFETY: j + 16 ≤ n: 32 bytes of w and 16 values of x are in bounds.
        unsafe {
            let (a0, a1) = F32x4::load_f16x8(wp.add(2 * j));
            let (a2, a3) = F32x4::load_f16x8(wp.add(2 * j + 16));
            let xp = x.as_ptr().add(j);
            acc[0] = acc[0] + a0 * F32x4::load_ptr(xp);
            acc[1] = acc[1] + a1 * F32x4::load_ptr(xp.add(4));
            acc[2] = acc[2] + a2 * F32x4::load_ptr(xp.add(8));
            acc[3] = acc[3] + a3 * F32x4::load_ptr(xp.add(12));
        }
        j += 16;
    }
    dot_f16_tail(w, x, acc)
}

/// The part of `dot_f16` after the whole 16-value blocks (`n16` = n rounded down to 16 is done).
#[inline(always)]
fn dot_f16_tail(w: &[u8], x: &[f32], acc: [F32x4; 4]) -> f32 {
    let n = x.len();
    let mut j = n / 16 * 16;
    let mut acc4 = F32x4::zero();
    let n4 = n / 4 * 4;
    while j < n4 {
        let h = |i: usize| f16_to_f32(u16::from_le_bytes([w[2 * i], w[2 * i + 1]]));
        acc4 = acc4 + F32x4::from_array([h(j), h(j + 1), h(j + 2), h(j + 3)]) * F32x4::load(&x[j..]);
        j += 4;
    }
    let v = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + acc4;
    let mut s = v.sum_lanes();
    while j < n {
        s += f16_to_f32(u16::from_le_bytes([w[2 * j], w[2 * j + 1]])) * x[j];
        j += 1;
    }
    s
}

/// `out[i] = dot_f16(w[2·i·cols..], x)` with `rows = out.len()`, `cols = x.len()`; `w` row-major
/// halves, rows back to back.
pub fn matvec_f16(out: &mut [f32], w: &[u8], x: &[f32]) {
    let row = 2 * x.len();
    let w = &w[..out.len() * row];
    for (i, o) in out.iter_mut().enumerate() {
        *o = dot_f16(&w[i * row..(i + 1) * row], x);
    }
}

/// `out[c] = out[c] + a·f16(row[c])`: `axpy::add_scaled` over the decoded row.
#[inline]
pub fn add_scaled_f16(out: &mut [f32], a: f32, row: &[u8]) {
    let n = out.len();
    let row = &row[..2 * n];
    let av = F32x4::splat(a);
    let n8 = n / 8 * 8;
    let mut c = 0;
    while c < n8 {
        // SAFETY: c + 8 ≤ n: 16 bytes of row, 8 values of out.
        unsafe {
            let (w0, w1) = F32x4::load_f16x8(row.as_ptr().add(2 * c));
            let o = out.as_mut_ptr().add(c);
            (F32x4::load_ptr(o) + av * w0).store_ptr(o);
            (F32x4::load_ptr(o.add(4)) + av * w1).store_ptr(o.add(4));
        }
        c += 8;
    }
    while c < n {
        out[c] += a * f16_to_f32(u16::from_le_bytes([row[2 * c], row[2 * c + 1]]));
        c += 1;
    }
}

/// The scalar twin of `matvec_f16`: decode, then one running sum per row (no SIMD).
#[inline(never)]
pub fn matvec_f16_scalar(out: &mut [f32], w: &[u8], x: &[f32]) {
    let cols = x.len();
    for (i, o) in out.iter_mut().enumerate() {
        let mut s = 0.0f32;
        for j in 0..cols {
            let at = 2 * (i * cols + j);
            s += f16_to_f32(u16::from_le_bytes([w[at], w[at + 1]])) * x[j];
        }
        *o = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::axpy::add_scaled;
    use crate::dot::dot;
    use crate::matvec::matvec_f32;
    use crate::testutil::*;

    /// The half's value from its definition: (-1)^s · 2^(e-15) · (1 + m/1024), subnormals 2^-14·m/1024.
    fn f16_f64(h: u16) -> f64 {
        let s = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
        let e = ((h >> 10) & 0x1F) as i32;
        let m = (h & 0x3FF) as f64;
        match e {
            0 => s * m / 1024.0 * 2f64.powi(-14),
            31 if m == 0.0 => s * f64::INFINITY,
            31 => f64::NAN,
            _ => s * (1.0 + m / 1024.0) * 2f64.powi(e - 15),
        }
    }

    /// Random halves: mostly normal weights of either sign, some subnormals and zeros.
    fn random_halves(rng: &mut Rng, n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                let h = match rng.below(10) {
                    0 => (rng.next_u64() as u16) & 0x83FF, // subnormal or zero
                    _ => f32_to_f16(rng.range(-2.0, 2.0)),
                };
                h.to_le_bytes()
            })
            .collect()
    }

    fn decode(w: &[u8]) -> Vec<f32> {
        w.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect()
    }

    #[test]
    fn every_half_decodes_exactly_and_round_trips() {
        for h in 0..=u16::MAX {
            let v = f16_to_f32(h);
            let want = f16_f64(h);
            if want.is_nan() {
                assert!(v.is_nan(), "{h:#06x}");
                assert_eq!(v.to_bits() & 0x7F_FFFF, ((h & 0x3FF) as u32) << 13, "NaN payload {h:#06x}");
            } else {
                assert_eq!(v as f64, want, "{h:#06x}");
                assert_eq!(v.is_sign_negative(), h & 0x8000 != 0, "sign {h:#06x}");
            }
            let back = f32_to_f16(v);
            if want.is_nan() {
                assert_eq!(back & 0x7C00, 0x7C00);
                assert_ne!(back & 0x3FF, 0);
            } else {
                assert_eq!(back, h, "round trip {h:#06x}");
            }
        }
        // the SIMD decoder, all halves 8 at a time
        for base in (0..=u16::MAX as u32).step_by(8) {
            let bytes: Vec<u8> = (base..base + 8).flat_map(|h| (h as u16).to_le_bytes()).collect();
            let (a, b) = unsafe { F32x4::load_f16x8(bytes.as_ptr()) };
            let got: Vec<f32> = a.to_array().iter().chain(b.to_array().iter()).copied().collect();
            for (i, g) in got.iter().enumerate() {
                assert_eq!(g.to_bits(), f16_to_f32((base as usize + i) as u16).to_bits());
            }
        }
    }

    #[test]
    fn f32_to_f16_rounds_to_nearest_even() {
        let mut rng = Rng::new(60);
        // exact midpoints between neighbouring halves go to the even one; anything else to the nearest
        for h in 0..0x7BFFu16 {
            let (lo, hi) = (f16_f64(h), f16_f64(h + 1));
            let mid = (lo + hi) / 2.0; // exact in f32 (12 significant bits)
            let even = if h & 1 == 0 { h } else { h + 1 };
            assert_eq!(f32_to_f16(mid as f32), even, "midpoint above {h:#06x}");
            assert_eq!(f32_to_f16(-(mid as f32)), even | 0x8000);
            let t = rng.unit();
            let v = (lo + (hi - lo) * (0.01 + 0.98 * t)) as f32;
            let d = v as f64;
            if d != mid {
                let want = if d - lo < hi - d { h } else { h + 1 };
                assert_eq!(f32_to_f16(v), want, "{v} between {h:#06x} and the next");
            }
        }
        assert_eq!(f32_to_f16(65520.0), 0x7C00, "rounds up to infinity");
        assert_eq!(f32_to_f16(65519.99), 0x7BFF);
        assert_eq!(f32_to_f16(1e-10), 0);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xFC00);
        assert_eq!(f32_to_f16(2.9802322e-8), 0, "half the smallest subnormal ties to even 0");
        assert_eq!(f32_to_f16(2.9802326e-8), 1);
    }

    #[test]
    fn dot_f16_is_dot_over_the_decoded_values() {
        let mut rng = Rng::new(61);
        for &n in SIZES.iter().chain(&[0, 1000, 4096, 11008]) {
            let w = random_halves(&mut rng, n);
            let x = rng.vec(n, -2.0, 2.0);
            let wd = decode(&w);
            let got = dot_f16(&w, &x);
            assert_eq!(got.to_bits(), dot(&wd, &x).to_bits(), "n={n}");
            let want = dot_f64(&wd, &x);
            assert!((got as f64 - want).abs() <= dot_tolerance(n, abs_dot_f64(&wd, &x)), "n={n}");
        }
        // an infinite weight gives an infinite (or NaN) dot, as over f32
        let mut w = random_halves(&mut rng, 40);
        w[2 * 17..2 * 18].copy_from_slice(&0x7C00u16.to_le_bytes());
        let x = vec![1.0f32; 40];
        assert!(dot_f16(&w, &x).is_infinite());
        // inf or NaN anywhere (the fast path's rows are redone exactly): the f32 dot's result
        for &special in &[0x7C00u16, 0xFC00, 0x7E00, 0xFD01] {
            for _ in 0..20 {
                let n = 16 + rng.below(100);
                let mut w = random_halves(&mut rng, n);
                let at = rng.below(n);
                w[2 * at..2 * at + 2].copy_from_slice(&special.to_le_bytes());
                let x = rng.vec(n, -1.0, 1.0);
                let (got, want) = (dot_f16(&w, &x), dot(&decode(&w), &x));
                assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{special:#x} at {at} of {n}");
            }
        }
    }

    #[test]
    fn matvec_f16_matches_matvec_f32_f64_and_its_scalar_twin() {
        let mut rng = Rng::new(62);
        for &(rows, cols) in &[(1, 1), (3, 7), (7, 17), (5, 32), (17, 33), (33, 100), (4, 288), (6, 1030), (3, 4096)] {
            // rows start at odd byte offsets too: the weights sit one byte into the buffer
            let mut buf = vec![0xEEu8];
            buf.extend(random_halves(&mut rng, rows * cols));
            let w = &buf[1..];
            let x = rng.vec(cols, -1.0, 1.0);
            let mut out = guarded_f32(rows);
            matvec_f16(out.inner_mut(), w, &x);
            out.check();
            let wd = decode(w);
            let mut want = vec![0.0; rows];
            matvec_f32(&mut want, &wd, &x);
            assert_bits_eq(out.inner(), &want, "matvec_f16 vs matvec_f32");
            let mut twin = vec![0.0; rows];
            matvec_f16_scalar(&mut twin, w, &x);
            for i in 0..rows {
                let row = &wd[i * cols..(i + 1) * cols];
                let tol = dot_tolerance(cols, abs_dot_f64(row, &x));
                let f64_ = dot_f64(row, &x);
                assert!((out.inner()[i] as f64 - f64_).abs() <= tol, "{rows}x{cols} row {i}");
                assert!((twin[i] as f64 - f64_).abs() <= tol, "scalar twin {rows}x{cols} row {i}");
            }
        }
    }

    #[test]
    fn add_scaled_f16_is_add_scaled_over_the_decoded_row() {
        let mut rng = Rng::new(63);
        for &n in SIZES {
            let init = rng.vec(n, -3.0, 3.0);
            let row = random_halves(&mut rng, n + 3);
            let a = rng.range(-2.0, 2.0);
            let mut out = Guarded::from(&init, F32_SENTINEL);
            add_scaled_f16(out.inner_mut(), a, &row);
            out.check();
            let mut want = init.clone();
            add_scaled(&mut want, a, &decode(&row));
            assert_bits_eq(out.inner(), &want, "add_scaled_f16");
        }
    }
}
