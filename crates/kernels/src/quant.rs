//! Int8 weights × int16-quantized activations.
//!
//! `x` is quantized once per call to i16 with one scale `xs = max|x|/32767`; each row is then an
//! exact integer dot product (`i32x4.dot_i16x8_s` over 8 columns at a time). One i32 lane receives
//! 2 products per 8 columns, each at most 128·32767 in magnitude, so after 1024 columns a lane holds
//! at most 256·128·32767 ≈ 1.07e9 < 2^31: the i32 lanes are flushed into f32 lanes every 1024
//! columns and never overflow, whatever `cols` is.

use crate::math::{abs_f32, round_half_away};
use crate::simd::{F32x4, I16x8, I32x4};

/// Columns per i32 accumulation before flushing to f32 (a multiple of 8).
pub const FLUSH_COLS: usize = 1024;

/// `n` rounded up to a multiple of 8: the length of the quantized-activation scratch.
pub fn padded_len(n: usize) -> usize {
    (n + 7) / 8 * 8
}

/// Writes `xq[j] = round(x[j]/xs)` (halves away from zero) for `j < x.len()`, zeros up to
/// `padded_len(x.len())`, and returns `xs = max|x|/32767` (0 when x is all zeros).
pub fn quantize_i16(x: &[f32], xq: &mut [i16]) -> f32 {
    let n = x.len();
    let xq = &mut xq[..padded_len(n)];
    let mut amax = 0.0f32;
    for &v in x {
        let a = abs_f32(v);
        if a > amax {
            amax = a;
        }
    }
    let (head, pad) = xq.split_at_mut(n);
    for q in pad {
        *q = 0;
    }
    if amax == 0.0 {
        for q in head {
            *q = 0;
        }
        return 0.0;
    }
    let xs = amax / 32767.0;
    for (q, &v) in head.iter_mut().zip(x) {
        // |v/xs| can exceed 32767 by a rounding of xs; clamp keeps it in i16.
        *q = round_half_away(v / xs).clamp(-32767, 32767) as i16;
    }
    xs
}

/// `Σ w[j]·xq[j]` for `j < w.len()`, as f32. `xq` must hold `padded_len(w.len())` values.
/// Order: within each 1024-column chunk, lane `l` of an i32x4 sums columns `8k+2l` and `8k+2l+1`
/// exactly; at the end of the chunk the lanes are converted to f32 and added to an f32x4; the f32
/// lanes are finally reduced as `(l0 + l1) + (l2 + l3)`. (Integer sums are exact, so how many i32
/// accumulators the loop uses does not change the result.)
#[inline]
pub fn dot_q8(w: &[i8], xq: &[i16]) -> f32 {
    let n = w.len();
    let xq = &xq[..padded_len(n)];
    // SAFETY: one row of n values and padded_len(n) values of xq.
    unsafe { dot_q8_rows::<1>([w.as_ptr()], xq.as_ptr(), n, core::ptr::null_mut())[0] }
}

/// `(dot_q8(a, xq), dot_q8(b, xq))` for two rows of the same length (a neuron's gate and up rows),
/// bit for bit, with each load of `xq` serving both.
#[inline]
pub fn dot_q8_pair(a: &[i8], b: &[i8], xq: &[i16]) -> (f32, f32) {
    let n = a.len();
    let (b, xq) = (&b[..n], &xq[..padded_len(n)]);
    // SAFETY: two rows of n values and padded_len(n) values of xq.
    let r = unsafe { dot_q8_rows::<2>([a.as_ptr(), b.as_ptr()], xq.as_ptr(), n, core::ptr::null_mut()) };
    (r[0], r[1])
}

/// `dot_q8` of four rows of the same length (two neurons' gate and up rows), bit for bit, in one pass.
#[inline]
pub fn dot_q8_quad(rows: [&[i8]; 4], xq: &[i16]) -> [f32; 4] {
    let n = rows[0].len();
    let rows = rows.map(|r| &r[..n]);
    let xq = &xq[..padded_len(n)];
    // SAFETY: four rows of n values and padded_len(n) values of xq.
    unsafe { dot_q8_rows::<4>(rows.map(|r| r.as_ptr()), xq.as_ptr(), n, core::ptr::null_mut()) }
}

/// Columns per step of the inner loop of `dot_q8_rows` (a divisor of `FLUSH_COLS`).
const STEP: usize = 16;

/// `dot_q8` of `R` rows of `n` values at once: each load of `xq` serves all rows. One i32
/// accumulator per row and 16 columns per step. V8 schedules a step's loads before its arithmetic,
/// and more live vectors than the SSE registers it allocates spill to the stack (measured: two
/// accumulators per row spilled, and ran at 0.8x); with `R = 8`, each row's step therefore ends
/// with an ordering store of one byte at `fence` (`I32x4::fence_store`), so that rows are loaded
/// and summed one after the other (measured 1.1-1.4x over 4 rows without it on 4096×11008).
/// Per row, the result is exactly `dot_q8`'s (integer sums are exact; the flush points and the
/// lane of each column are unchanged).
/// # Safety
/// Each row must hold `n` values, `xq` `padded_len(n)`.
#[inline(always)]
unsafe fn dot_q8_rows<const R: usize>(rows: [*const i8; R], xq: *const i16, n: usize, fence: *mut u8) -> [f32; R] {
    let mut total = [F32x4::zero(); R];
    let mut start = 0;
    while start < n {
        let end = if n - start > FLUSH_COLS { start + FLUSH_COLS } else { n };
        let mut acc = [I32x4::zero(); R];
        let mut p = [core::ptr::null::<i8>(); R];
        for r in 0..R {
            p[r] = rows[r].add(start);
        }
        let mut xp = xq.add(start);
        let mut j = start;
        while j + STEP <= end {
            let x = [I16x8::load(xp), I16x8::load(xp.add(8))];
            for r in 0..R {
                let pr = p[r];
                acc[r] = acc[r]
                    .add(I32x4::zero().add_dot(I16x8::load_i8(pr), x[0]).add_dot(I16x8::load_i8(pr.add(8)), x[1]));
                if R > 4 {
                    acc[r].fence_store(fence);
                }
                p[r] = pr.add(STEP);
            }
            xp = xp.add(STEP);
            j += STEP;
        }
        while j + 8 <= end {
            let x0 = I16x8::load(xp);
            for r in 0..R {
                acc[r] = acc[r].add_dot(I16x8::load_i8(p[r]), x0);
                p[r] = p[r].add(8);
            }
            xp = xp.add(8);
            j += 8;
        }
        if j < end {
            // The row may end anywhere (even at the end of memory): zero-pad it locally rather than
            // read past it. The matching xq values exist since xq is padded to 8.
            let x0 = I16x8::load(xp);
            for r in 0..R {
                let mut pad = [0i8; 8];
                for (i, q) in pad.iter_mut().enumerate().take(end - j) {
                    *q = *p[r].add(i);
                }
                acc[r] = acc[r].add_dot(I16x8::load_i8(pad.as_ptr()), x0);
            }
        }
        for r in 0..R {
            total[r] = total[r] + acc[r].to_f32();
        }
        start = end;
    }
    let mut out = [0.0f32; R];
    for r in 0..R {
        out[r] = total[r].sum_lanes();
    }
    out
}

/// Row length from which `matvec_q8` takes 8 rows per pass instead of 4. Measured (interleaved A/B,
/// quiet machine): 8 rows 1.24x on 4096×11008, but 0.84-0.96x on 4096-column rows, where 4 rows
/// without ordering stores do not spill.
const WIDE_ROWS: usize = 8192;

/// `out[i] = scales[i]·xs·Σ_j w[i*cols + j]·xq[j]` with `rows = out.len()`, `cols = x.len()`;
/// `xq_scratch` must hold `padded_len(cols)` values. Rows go four at a time, eight from `WIDE_ROWS` columns (same per-row result).
pub fn matvec_q8(out: &mut [f32], w: &[i8], scales: &[f32], x: &[f32], xq_scratch: &mut [i16]) {
    let cols = x.len();
    let xs = quantize_i16(x, xq_scratch);
    let xq = &xq_scratch[..padded_len(cols)];
    let (w, scales) = (&w[..out.len() * cols], &scales[..out.len()]);
    let (wp, xp) = (w.as_ptr(), xq.as_ptr());
    let mut i = 0;
    // SAFETY: w holds out.len() rows of cols values (sliced above), xq padded_len(cols).
    unsafe {
        while cols >= WIDE_ROWS && i + 8 <= out.len() {
            let fence = out[i..].as_mut_ptr() as *mut u8; // overwritten below
            let r = dot_q8_rows::<8>([0, 1, 2, 3, 4, 5, 6, 7].map(|k| wp.add((i + k) * cols)), xp, cols, fence);
            for k in 0..8 {
                out[i + k] = scales[i + k] * xs * r[k];
            }
            i += 8;
        }
        while i + 4 <= out.len() {
            let r = dot_q8_rows::<4>(
                [wp.add(i * cols), wp.add((i + 1) * cols), wp.add((i + 2) * cols), wp.add((i + 3) * cols)],
                xp,
                cols,
                core::ptr::null_mut(),
            );
            for k in 0..4 {
                out[i + k] = scales[i + k] * xs * r[k];
            }
            i += 4;
        }
        while i < out.len() {
            out[i] = scales[i] * xs * dot_q8_rows::<1>([wp.add(i * cols)], xp, cols, core::ptr::null_mut())[0];
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// `dot_q8`'s documented order, with plain integers and scalars.
    fn dot_q8_spec_order(w: &[i8], xq: &[i16]) -> f32 {
        let mut total = [0.0f32; 4];
        for start in (0..w.len()).step_by(FLUSH_COLS) {
            let end = (start + FLUSH_COLS).min(w.len());
            let mut lane = [0i64; 4];
            for j in start..end {
                lane[(j % 8) / 2] += w[j] as i64 * xq[j] as i64;
            }
            for l in 0..4 {
                total[l] += lane[l] as i32 as f32;
            }
        }
        (total[0] + total[1]) + (total[2] + total[3])
    }

    fn random_q8(rng: &mut Rng, rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
        (rng.vec_i8(rows * cols), (0..rows).map(|_| rng.range(0.001, 0.02)).collect())
    }

    #[test]
    fn quantize_rounds_and_pads() {
        let mut rng = Rng::new(40);
        for &n in SIZES {
            let x = rng.vec(n, -3.0, 3.0);
            let mut xq = Guarded::new(padded_len(n), 99i16, -999i16);
            let xs = quantize_i16(&x, xq.inner_mut());
            xq.check();
            let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert_eq!(xs, amax / 32767.0);
            for j in 0..n {
                assert_eq!(xq.inner()[j] as i32, (x[j] / xs).round() as i32);
                // half a step, plus the f32 roundings of xs and x/xs (2^-24 relative of ≤ 32767 steps)
                let bound = xs as f64 * (0.5 + 2.0 * 32767.0 / (1u64 << 24) as f64);
                assert!((x[j] as f64 - xs as f64 * xq.inner()[j] as f64).abs() <= bound);
            }
            assert!(xq.inner()[n..].iter().all(|q| *q == 0), "padding not zeroed");
            assert!(xq.inner().iter().any(|q| q.abs() == 32767));
        }
        let mut xq = [5i16; 8];
        assert_eq!(quantize_i16(&[0.0, -0.0, 0.0], &mut xq), 0.0);
        assert_eq!(xq, [0; 8]);
    }

    #[test]
    fn matvec_q8_matches_float_reference_within_quantization_error() {
        let mut rng = Rng::new(41);
        let shapes: &[(usize, usize)] = &[
            (1, 1),
            (3, 7),
            (7, 17),
            (17, 33),
            (33, 100),
            (5, 172),
            (4, 1023),
            (3, 1024),
            (3, 1025),
            (2, 2051),
            (2, 4096),
            // 8 rows per pass (from WIDE_ROWS columns), then 4, then single rows
            (19, 8192),
            (9, 11008),
            (8, 8200),
        ];
        for &(rows, cols) in shapes {
            let (w, scales) = random_q8(&mut rng, rows, cols);
            let x = rng.vec(cols, -2.0, 2.0);
            let mut out = guarded_f32(rows);
            let mut xq = Guarded::new(padded_len(cols), 0i16, 12345i16);
            matvec_q8(out.inner_mut(), &w, &scales, &x, xq.inner_mut());
            out.check();
            xq.check();
            let xs = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 32767.0;
            for i in 0..rows {
                let row = &w[i * cols..(i + 1) * cols];
                let got = out.inner()[i] as f64;
                let s = scales[i] as f64;
                // float reference over the dequantized weights and the unquantized x
                let want: f64 = row.iter().zip(&x).map(|(q, v)| s * *q as f64 * *v as f64).sum();
                let abs_w: f64 = row.iter().map(|q| s * (*q as f64).abs()).sum();
                // each x[j] is off by at most ~xs/2 (see above); the f32 flushes and scalings add
                // a few ulp
                let tol = abs_w * xs as f64 * (0.5 + 2.0 * 32767.0 / (1u64 << 24) as f64) + 1e-6 * abs_w + 1e-30;
                assert!((got - want).abs() <= tol, "{rows}x{cols} row {i}: {got} vs {want} (tol {tol})");
                // and exactly the documented integer/f32 order
                let sum = dot_q8_spec_order(row, xq.inner());
                assert_eq!(out.inner()[i].to_bits(), (scales[i] * xs * sum).to_bits());
            }
        }
    }

    #[test]
    fn q8_does_not_overflow_at_large_cols() {
        for &cols in &[11008usize, 100_000] {
            let x: Vec<f32> = (0..cols).map(|j| if j % 3 == 0 { -4.0 } else { 4.0 }).collect();
            let mut xq = vec![0i16; padded_len(cols)];
            // every product at (or next to) the maximum +128·32767, all of one sign
            let w: Vec<i8> = x.iter().map(|v| if *v < 0.0 { -128 } else { 127 }).collect();
            let mut out = [0.0f32; 1];
            matvec_q8(&mut out, &w, &[1.0], &x, &mut xq);
            let xs = 4.0f32 / 32767.0;
            let exact: i64 = w.iter().zip(&xq).map(|(a, b)| *a as i64 * *b as i64).sum();
            let want = exact as f64 * xs as f64;
            assert!(exact > (cols as i64) * 127 * 32767, "test data is not worst case");
            assert!(((out[0] as f64) - want).abs() <= 1e-6 * want.abs(), "cols={cols}: {} vs {want}", out[0]);

            // all -128 against all -32767: every product +4194176
            let w = vec![-128i8; cols];
            let x = vec![-1.0f32; cols];
            matvec_q8(&mut out, &w, &[0.5], &x, &mut xq);
            let want = 0.5 * (1.0f32 / 32767.0) as f64 * (cols as f64 * 128.0 * 32767.0);
            assert!(((out[0] as f64) - want).abs() <= 1e-6 * want, "cols={cols}: {} vs {want}", out[0]);
        }
    }
}
