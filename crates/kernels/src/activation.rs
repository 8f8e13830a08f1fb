//! In-place activations and softmax.

use crate::math::{exp_f32, fatrelu_f32, gelu_f32, relu_f32, silu_f32};
use crate::simd::F32x4;

/// `x = exp(x - max x) / Σ exp(x - max x)`; subtracting the max keeps every exp ≤ 1.
pub fn softmax(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let mut max = x[0];
    for &v in x.iter() {
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = exp_f32(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

pub fn silu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = silu_f32(*v);
    }
}

pub fn gelu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_f32(*v);
    }
}

pub fn relu(x: &mut [f32]) {
    let mut x4 = x.chunks_exact_mut(4);
    for v in &mut x4 {
        F32x4::load(v).relu().store(v);
    }
    for v in x4.into_remainder() {
        *v = relu_f32(*v);
    }
}

/// FATReLU in place: `x` if `x > t`, else 0 (the dense twin of `ffn_bundled`'s fatrelu).
pub fn fatrelu(x: &mut [f32], t: f32) {
    for v in x.iter_mut() {
        *v = fatrelu_f32(*v, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn softmax_matches_f64() {
        let mut rng = Rng::new(60);
        for &n in SIZES.iter().chain(&[1000]) {
            for &spread in &[1.0f32, 30.0, 200.0] {
                let x = rng.vec(n, -spread, spread);
                let mut g = Guarded::from(&x, F32_SENTINEL);
                softmax(g.inner_mut());
                g.check();
                let m = x.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v as f64));
                let e: Vec<f64> = x.iter().map(|v| (*v as f64 - m).exp()).collect();
                let s: f64 = e.iter().sum();
                let want: Vec<f64> = e.iter().map(|v| v / s).collect();
                // exp is within 2 ulp and the f32 sum adds at most n·ε relatively, but x - max is
                // rounded in f32 too: an absolute error |x - max|·ε/2 in the exponent, in every
                // numerator and (weighted by p) in the sum
                let spread_err: f64 = x.iter().zip(&want).map(|(v, p)| p * (*v as f64 - m).abs()).sum();
                let eps = f32::EPSILON as f64;
                let tol = |i: usize| want[i] * eps * (4.0 + n as f64 + (x[i] as f64 - m).abs() + spread_err) + 1e-44;
                assert_close(g.inner(), &want, tol, "softmax");
                let total: f32 = g.inner().iter().sum();
                assert!((total - 1.0).abs() < 1e-5 * (1.0 + n as f32 / 100.0));
            }
        }
        let mut big = [1e30f32, 1e30, -1e30];
        softmax(&mut big);
        assert_eq!(big, [0.5, 0.5, 0.0]);
        softmax(&mut []);
    }

    #[test]
    fn activations_in_place() {
        let mut rng = Rng::new(61);
        for &n in SIZES {
            let x = rng.vec(n, -8.0, 8.0);
            let mut g = Guarded::from(&x, F32_SENTINEL);
            silu(g.inner_mut());
            g.check();
            let want: Vec<f32> = x.iter().map(|v| silu_f32(*v)).collect();
            assert_bits_eq(g.inner(), &want, "silu");
            let wide: Vec<f64> = x.iter().map(|v| *v as f64 / (1.0 + (-*v as f64).exp())).collect();
            assert_close(g.inner(), &wide, |i| 4e-7 * wide[i].abs() + 1e-37, "silu vs f64");

            let mut g = Guarded::from(&x, F32_SENTINEL);
            gelu(g.inner_mut());
            g.check();
            let want: Vec<f32> = x.iter().map(|v| gelu_f32(*v)).collect();
            assert_bits_eq(g.inner(), &want, "gelu");

            let mut g = Guarded::from(&x, F32_SENTINEL);
            relu(g.inner_mut());
            g.check();
            let want: Vec<f32> = x.iter().map(|v| if *v > 0.0 { *v } else { 0.0 }).collect();
            assert_bits_eq(g.inner(), &want, "relu");
        }
        let mut r = [-0.0f32, 0.0, -1.0, 2.0, f32::NAN];
        relu(&mut r);
        assert_eq!(r.map(f32::to_bits), [0.0f32, 0.0, 0.0, 2.0, 0.0].map(f32::to_bits));
        // fatrelu: strictly above the threshold passes unchanged, at or below it gives +0
        let mut r = [0.01f32, 0.010000001, 0.5, -3.0, 0.0, f32::NAN];
        fatrelu(&mut r, 0.01);
        assert_eq!(r.map(f32::to_bits), [0.0f32, 0.010000001, 0.5, 0.0, 0.0, 0.0].map(f32::to_bits));
        let mut r = [-0.5f32, -0.2, 0.1];
        fatrelu(&mut r, -0.3);
        assert_eq!(r, [0.0, -0.2, 0.1]);
        let mut rng = Rng::new(62);
        for &n in SIZES {
            let x = rng.vec(n, -1.0, 1.0);
            let t = rng.range(-0.5, 0.5);
            let mut g = Guarded::from(&x, F32_SENTINEL);
            fatrelu(g.inner_mut(), t);
            g.check();
            let wide: Vec<f64> = x.iter().map(|v| if *v as f64 > t as f64 { *v as f64 } else { 0.0 }).collect();
            assert_close(g.inner(), &wide, |_| 0.0, "fatrelu vs f64");
        }
    }
}
