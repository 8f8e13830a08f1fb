//! RMSNorm and LayerNorm. Both may write over their input (`out == x`): all reads of `x` that the
//! statistics need happen before the first write.

use crate::dot::dot;
use crate::elementwise::{map2, map3};
use crate::math::sqrt_f32;
use crate::simd::F32x4;
use core::slice;

/// `out[i] = w[i]·(x[i]·r)`, `r = 1/sqrt(Σx²/n + eps)` (llama2.c's `rmsnorm`, with Σx² by `dot`).
///
/// # Safety
/// `x`, `w` readable and `out` writable for `n` values; `out` equals `x` or overlaps nothing.
pub unsafe fn rmsnorm(out: *mut f32, x: *const f32, w: *const f32, n: usize, eps: f32) {
    if n == 0 {
        return;
    }
    let ss = {
        let xs = slice::from_raw_parts(x, n);
        dot(xs, xs)
    };
    let r = 1.0 / sqrt_f32(ss / n as f32 + eps);
    let rv = F32x4::splat(r);
    map2(out, x, w, n, |x, w| w * (rv * x));
}

/// `out[i] = ((x[i] - mean)·r)·w[i] + b[i]`, `r = 1/sqrt(var + eps)`, var the biased variance
/// (two passes, so no cancellation from Σx² - n·mean²).
///
/// # Safety
/// As [`rmsnorm`], plus `b` readable for `n` values.
pub unsafe fn layernorm(out: *mut f32, x: *const f32, w: *const f32, b: *const f32, n: usize, eps: f32) {
    if n == 0 {
        return;
    }
    let (mean, var) = {
        let xs = slice::from_raw_parts(x, n);
        let mut sum = 0.0f32;
        for &v in xs {
            sum += v;
        }
        let mean = sum / n as f32;
        let mut sq = 0.0f32;
        for &v in xs {
            let d = v - mean;
            sq += d * d;
        }
        (mean, sq / n as f32)
    };
    let r = F32x4::splat(1.0 / sqrt_f32(var + eps));
    let m = F32x4::splat(mean);
    map3(out, x, w, b, n, |x, w, b| ((x - m) * r) * w + b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn rmsnorm_matches_f64_and_run_c() {
        let mut rng = Rng::new(70);
        for &n in SIZES.iter().chain(&[4096]) {
            let x = rng.vec(n, -3.0, 3.0);
            let w = rng.vec(n, 0.5, 1.5);
            let mut out = guarded_f32(n);
            unsafe { rmsnorm(out.ptr(), x.as_ptr(), w.as_ptr(), n, 1e-5) };
            out.check();
            let ms = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n as f64;
            let r = 1.0 / (ms + 1e-5).sqrt();
            let want: Vec<f64> = (0..n).map(|i| w[i] as f64 * x[i] as f64 * r).collect();
            assert_close(out.inner(), &want, |i| want[i].abs() * (n as f64 + 8.0) * f32::EPSILON as f64, "rmsnorm");

            // the exact f32 formula, and in place gives the same bits
            let ss = 1.0 / (dot(&x, &x) / n as f32 + 1e-5).sqrt();
            let exact: Vec<f32> = (0..n).map(|i| w[i] * (ss * x[i])).collect();
            assert_bits_eq(out.inner(), &exact, "rmsnorm formula");
            let mut g = Guarded::from(&x, F32_SENTINEL);
            let p = g.ptr();
            unsafe { rmsnorm(p, p, w.as_ptr(), n, 1e-5) };
            g.check();
            assert_bits_eq(g.inner(), &exact, "rmsnorm in place");
        }
    }

    #[test]
    fn layernorm_matches_f64() {
        let mut rng = Rng::new(71);
        for &n in SIZES.iter().chain(&[768]) {
            let x = rng.vec(n, -3.0, 5.0);
            let w = rng.vec(n, 0.5, 1.5);
            let b = rng.vec(n, -1.0, 1.0);
            let mut out = guarded_f32(n);
            unsafe { layernorm(out.ptr(), x.as_ptr(), w.as_ptr(), b.as_ptr(), n, 1e-5) };
            out.check();
            let mean = x.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
            let var = x.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let r = 1.0 / (var + 1e-5).sqrt();
            let want: Vec<f64> = (0..n).map(|i| (x[i] as f64 - mean) * r * w[i] as f64 + b[i] as f64).collect();
            // errors of mean and var (sequential f32 sums) scale with n; |x-mean|·r ≤ sqrt(n)
            let tol = (n as f64 + 8.0) * f32::EPSILON as f64 * 4.0;
            assert_close(out.inner(), &want, |i| tol * (1.0 + want[i].abs()), "layernorm");

            let mut g = Guarded::from(&x, F32_SENTINEL);
            let p = g.ptr();
            unsafe { layernorm(p, p, w.as_ptr(), b.as_ptr(), n, 1e-5) };
            g.check();
            assert_bits_eq(g.inner(), out.inner(), "layernorm in place");
        }
    }
}
