//! Dense f32 matrix–vector products. `w` is row-major `[rows][cols]`.

use crate::axpy::add_scaled;
use crate::dot::dot;

/// `out[i] = dot(w[i*cols..][..cols], x)` with `rows = out.len()`, `cols = x.len()`.
pub fn matvec_f32(out: &mut [f32], w: &[f32], x: &[f32]) {
    let cols = x.len();
    let w = &w[..out.len() * cols];
    for (i, o) in out.iter_mut().enumerate() {
        *o = dot(&w[i * cols..(i + 1) * cols], x);
    }
}

/// `out[c] = Σ_r x[r]·w[r*cols + c]` with `cols = out.len()`, `rows = x.len()`; each `out[c]` starts
/// at 0.0 and takes its terms in increasing `r`, one multiply then one add each.
pub fn matvec_t_f32(out: &mut [f32], w: &[f32], x: &[f32]) {
    let cols = out.len();
    let w = &w[..x.len() * cols];
    for o in out.iter_mut() {
        *o = 0.0;
    }
    for (r, &xr) in x.iter().enumerate() {
        add_scaled(out, xr, &w[r * cols..(r + 1) * cols]);
    }
}

/// The textbook loop with one scalar accumulator: the benchmark's baseline for the SIMD speed-up.
/// (A sequential f32 sum cannot be auto-vectorized without reassociating, so it stays scalar.)
#[inline(never)]
pub fn matvec_f32_scalar(out: &mut [f32], w: &[f32], x: &[f32]) {
    let cols = x.len();
    let w = &w[..out.len() * cols];
    for (i, o) in out.iter_mut().enumerate() {
        let row = &w[i * cols..(i + 1) * cols];
        let mut s = 0.0f32;
        for j in 0..cols {
            s += row[j] * x[j];
        }
        *o = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const SHAPES: &[(usize, usize)] =
        &[(1, 1), (1, 3), (3, 1), (7, 17), (17, 7), (33, 100), (100, 33), (172, 64), (5, 288), (64, 172), (2, 1000)];

    #[test]
    fn matvec_f32_matches_reference() {
        let mut rng = Rng::new(30);
        for &(rows, cols) in SHAPES {
            let w = rng.vec(rows * cols, -1.0, 1.0);
            let x = rng.vec(cols, -1.0, 1.0);
            let mut out = guarded_f32(rows);
            matvec_f32(out.inner_mut(), &w, &x);
            out.check();
            let mut scalar = guarded_f32(rows);
            matvec_f32_scalar(scalar.inner_mut(), &w, &x);
            scalar.check();
            for i in 0..rows {
                let row = &w[i * cols..(i + 1) * cols];
                let want = dot_f64(row, &x);
                let tol = dot_tolerance(cols, abs_dot_f64(row, &x));
                let got = out.inner()[i];
                assert!((got as f64 - want).abs() <= tol, "{rows}x{cols} row {i}: {got} vs {want}");
                assert_eq!(got.to_bits(), dot(row, &x).to_bits());
                let seq = row.iter().zip(&x).fold(0.0f32, |s, (a, b)| s + a * b);
                assert_eq!(scalar.inner()[i].to_bits(), seq.to_bits());
            }
        }
    }

    #[test]
    fn matvec_t_f32_is_the_in_order_sum() {
        let mut rng = Rng::new(31);
        for &(rows, cols) in SHAPES {
            let w = rng.vec(rows * cols, -1.0, 1.0);
            let x = rng.vec(rows, -1.0, 1.0);
            let mut out = guarded_f32(cols);
            matvec_t_f32(out.inner_mut(), &w, &x);
            out.check();
            let mut exact = vec![0.0f32; cols];
            let mut wide = vec![0.0f64; cols];
            for c in 0..cols {
                for r in 0..rows {
                    exact[c] += x[r] * w[r * cols + c];
                    wide[c] += x[r] as f64 * w[r * cols + c] as f64;
                }
            }
            assert_bits_eq(out.inner(), &exact, "matvec_t_f32");
            assert_close(out.inner(), &wide, |_| dot_tolerance(rows, rows as f64), "matvec_t_f32");
        }
    }
}
