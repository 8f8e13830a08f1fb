//! THE f32 dot product. Every kernel that needs `Σ a[i]·b[i]` calls this one function, so equal
//! inputs give bit-identical results whichever kernel computes them.

use crate::simd::F32x4;

/// `Σ a[i]·b[i]` over the first `min(a.len(), b.len())` values, in this exact order:
///
/// 1. four f32x4 accumulators `acc[j]` take `a[16k+4j..][..4]·b[..]` for every whole 16-block k
///    (one multiply, then one add per lane);
/// 2. one f32x4 accumulator `acc4` does the same over the remaining whole 4-blocks;
/// 3. `v = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + acc4`, then `s = (v0 + v1) + (v2 + v3)`;
/// 4. the last `n % 4` products are added to `s` one by one.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);

    let mut acc = [F32x4::zero(); 4];
    let mut a16 = a.chunks_exact(16);
    let mut b16 = b.chunks_exact(16);
    for (x, y) in (&mut a16).zip(&mut b16) {
        for j in 0..4 {
            acc[j] = acc[j] + F32x4::load(&x[4 * j..]) * F32x4::load(&y[4 * j..]);
        }
    }

    let mut acc4 = F32x4::zero();
    let mut a4 = a16.remainder().chunks_exact(4);
    let mut b4 = b16.remainder().chunks_exact(4);
    for (x, y) in (&mut a4).zip(&mut b4) {
        acc4 = acc4 + F32x4::load(x) * F32x4::load(y);
    }

    let v = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + acc4;
    let mut s = v.sum_lanes();
    for (x, y) in a4.remainder().iter().zip(b4.remainder()) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// The order documented on `dot`, written out with scalars only.
    fn dot_spec_order(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let mut acc = [[0.0f32; 4]; 4];
        let n16 = n / 16 * 16;
        for k in (0..n16).step_by(16) {
            for j in 0..4 {
                for l in 0..4 {
                    acc[j][l] += a[k + 4 * j + l] * b[k + 4 * j + l];
                }
            }
        }
        let n4 = n / 4 * 4;
        let mut acc4 = [0.0f32; 4];
        for k in (n16..n4).step_by(4) {
            for l in 0..4 {
                acc4[l] += a[k + l] * b[k + l];
            }
        }
        let v: Vec<f32> = (0..4).map(|l| ((acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l])) + acc4[l]).collect();
        let mut s = (v[0] + v[1]) + (v[2] + v[3]);
        for i in n4..n {
            s += a[i] * b[i];
        }
        s
    }

    #[test]
    fn dot_matches_f64_and_the_documented_order() {
        let mut rng = Rng::new(10);
        for &n in SIZES.iter().chain(&[0, 1000, 4096, 11008]) {
            for _ in 0..5 {
                let a = rng.vec(n, -2.0, 2.0);
                let b = rng.vec(n, -2.0, 2.0);
                let got = dot(&a, &b);
                let want = dot_f64(&a, &b);
                let tol = dot_tolerance(n, abs_dot_f64(&a, &b));
                assert!((got as f64 - want).abs() <= tol, "n={n}: {got} vs {want}");
                assert_eq!(got.to_bits(), dot_spec_order(&a, &b).to_bits(), "n={n}");
            }
        }
    }

    #[test]
    fn dot_uses_the_shorter_length() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        let b = [1.0f32, 1.0, 1.0];
        assert_eq!(dot(&a, &b), 6.0);
        assert_eq!(dot(&[], &b), 0.0);
    }
}
