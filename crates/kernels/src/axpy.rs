//! `out += a·row`: the accumulation step of every "sum of scaled rows" (`matvec_t_f32`, attention's
//! weighted sum of values, `ffn_bundled`'s down projection). Each `out[c]` gets exactly one
//! multiply and one add per call, so calling it for rows in increasing order gives
//! `out[c] = (((0 + a0·r0[c]) + a1·r1[c]) + ...)` whether the lanes are SIMD or scalar.

use crate::simd::{F32x4, I16x8, I32x4};

/// `out[c] = out[c] + a·row[c]` for every `c < out.len()`.
#[inline]
pub fn add_scaled(out: &mut [f32], a: f32, row: &[f32]) {
    let row = &row[..out.len()];
    let av = F32x4::splat(a);
    let mut o4 = out.chunks_exact_mut(4);
    let mut r4 = row.chunks_exact(4);
    for (o, r) in (&mut o4).zip(&mut r4) {
        (F32x4::load(o) + av * F32x4::load(r)).store(o);
    }
    for (o, r) in o4.into_remainder().iter_mut().zip(r4.remainder()) {
        *o += a * r;
    }
}

/// `out[c] = out[c] + a·(scale·q[c])`: the int8 row is widened to f32 16 values at a time (SIMD),
/// dequantized (value = scale·q)
/// before it is scaled, so the result equals `add_scaled` over the dequantized f32 row.
#[inline]
pub fn add_scaled_i8(out: &mut [f32], a: f32, scale: f32, q: &[i8]) {
    let n = out.len();
    let q = &q[..n];
    let av = F32x4::splat(a);
    let sv = F32x4::splat(scale);
    let n16 = n / 16 * 16;
    let mut c = 0;
    while c < n16 {
        // SAFETY: c + 16 ≤ n.
        unsafe {
            let w = F32x4::load_i8x16(q.as_ptr().add(c));
            let op = out.as_mut_ptr().add(c);
            for (g, wg) in w.iter().enumerate() {
                (F32x4::load_ptr(op.add(4 * g)) + av * (sv * *wg)).store_ptr(op.add(4 * g));
            }
        }
        c += 16;
    }
    for c in n16..n {
        out[c] += a * (scale * q[c] as f32);
    }
}

/// `add_scaled` of four rows in turn (`out[c] + a0·r0[c]`, then `+ a1·r1[c]`, ...), bit-identical to
/// four calls, with `out` loaded and stored once.
#[inline]
pub fn add_scaled_4(out: &mut [f32], a: [f32; 4], rows: [&[f32]; 4]) {
    let n = out.len();
    let rows = rows.map(|r| &r[..n]);
    let av = a.map(F32x4::splat);
    let n4 = n / 4 * 4;
    let mut c = 0;
    while c < n4 {
        let mut o = F32x4::load(&out[c..]);
        for r in 0..4 {
            o = o + av[r] * F32x4::load(&rows[r][c..]);
        }
        o.store(&mut out[c..]);
        c += 4;
    }
    for c in n4..n {
        for r in 0..4 {
            out[c] += a[r] * rows[r][c];
        }
    }
}

/// Most columns one `add_i8_columns` call may sum: a lane of its i32 accumulators gains at most
/// 2·128·32767 per pair of columns, so 128 pairs stay below 2^31 (≈ 1.07e9).
pub const I8_COLUMNS_MAX: usize = 256;

/// Output values per block of i32 accumulators in `add_i8_columns` (4 KiB of stack, L1-resident).
const COLUMN_BLOCK: usize = 1024;

/// `out[c] = out[c] + vs·(Σ_k vq[k]·cols[k][c])` for every `c < out.len()`, the sum over `k` exact in
/// i32 (so the order in which columns are added cannot change it), then converted to f32 (round to
/// nearest even), scaled and added: one multiply and one add per output value. This is the down
/// projection of q8 bundles (`ffn_bundled`): the neurons' `h·scale` quantized to i16 under one scale
/// `vs`, the int8 columns never widened to f32. Two columns share each `i32x4.dot_i16x8_s`
/// (interleaved by `I16x8::load_i8_zip`), four columns per pass over a block of accumulators.
/// # Safety
/// `cols.len() ≤ I8_COLUMNS_MAX`, `vq.len() ≥ cols.len()`, and each `cols[k]` points at `out.len()`
/// readable values.
pub unsafe fn add_i8_columns(out: &mut [f32], vs: f32, vq: &[i16], cols: &[*const i8]) {
    let (n, m) = (out.len(), cols.len());
    assert!(m <= I8_COLUMNS_MAX && vq.len() >= m);
    let n8 = n / 8 * 8;
    let mut acc = [I32x4::zero(); COLUMN_BLOCK / 4];
    let a = acc.as_mut_ptr();
    let vsv = F32x4::splat(vs);
    let mut b = 0;
    while b < n8 {
        let len = (n8 - b).min(COLUMN_BLOCK);
        for i in 0..len / 4 {
            *a.add(i) = I32x4::zero();
        }
        let mut k = 0;
        while k + 4 <= m {
            let (w0, w1) = (I16x8::pair(vq[k], vq[k + 1]), I16x8::pair(vq[k + 2], vq[k + 3]));
            let p = [cols[k].add(b), cols[k + 1].add(b), cols[k + 2].add(b), cols[k + 3].add(b)];
            let mut c = 0;
            while c < len {
                let (lo0, hi0) = I16x8::load_i8_zip(p[0].add(c), p[1].add(c));
                let (lo1, hi1) = I16x8::load_i8_zip(p[2].add(c), p[3].add(c));
                let i = c / 4;
                *a.add(i) = (*a.add(i)).add_dot(lo0, w0).add_dot(lo1, w1);
                *a.add(i + 1) = (*a.add(i + 1)).add_dot(hi0, w0).add_dot(hi1, w1);
                c += 8;
            }
            k += 4;
        }
        // 1-3 columns left: in pairs, a last lone column paired with itself at weight 0.
        while k < m {
            let (pb, w) =
                if k + 1 < m { (cols[k + 1], I16x8::pair(vq[k], vq[k + 1])) } else { (cols[k], I16x8::pair(vq[k], 0)) };
            let (pa, pb) = (cols[k].add(b), pb.add(b));
            let mut c = 0;
            while c < len {
                let (lo, hi) = I16x8::load_i8_zip(pa.add(c), pb.add(c));
                let i = c / 4;
                *a.add(i) = (*a.add(i)).add_dot(lo, w);
                *a.add(i + 1) = (*a.add(i + 1)).add_dot(hi, w);
                c += 8;
            }
            k += 2;
        }
        let o = out.as_mut_ptr().add(b);
        for i in 0..len / 4 {
            (F32x4::load_ptr(o.add(4 * i)) + vsv * (*a.add(i)).to_f32()).store_ptr(o.add(4 * i));
        }
        b += len;
    }
    for c in n8..n {
        let mut sum = 0i32;
        for k in 0..m {
            sum += vq[k] as i32 * *cols[k].add(c) as i32;
        }
        out[c] += vs * sum as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn add_scaled_is_one_multiply_one_add_per_value() {
        let mut rng = Rng::new(20);
        for &n in SIZES {
            let init = rng.vec(n, -3.0, 3.0);
            let row = rng.vec(n + 5, -3.0, 3.0);
            let a = rng.range(-2.0, 2.0);
            let mut out = Guarded::from(&init, F32_SENTINEL);
            add_scaled(out.inner_mut(), a, &row);
            out.check();
            let want: Vec<f32> = (0..n).map(|c| init[c] + a * row[c]).collect();
            assert_bits_eq(out.inner(), &want, "add_scaled");

            let q = rng.vec_i8(n + 3);
            let s = rng.range(0.001, 0.1);
            let mut out = Guarded::from(&init, F32_SENTINEL);
            add_scaled_i8(out.inner_mut(), a, s, &q);
            out.check();
            let deq: Vec<f32> = q.iter().map(|v| s * *v as f32).collect();
            let mut want = init.clone();
            add_scaled(&mut want, a, &deq);
            assert_bits_eq(out.inner(), &want, "add_scaled_i8");

            // four rows at once = four calls in order
            let rows: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(n, -3.0, 3.0)).collect();
            let a4 = [0; 4].map(|_| rng.range(-2.0, 2.0));
            let mut out = Guarded::from(&init, F32_SENTINEL);
            add_scaled_4(out.inner_mut(), a4, [&rows[0][..], &rows[1], &rows[2], &rows[3]]);
            out.check();
            let mut want = init.clone();
            for r in 0..4 {
                add_scaled(&mut want, a4[r], &rows[r]);
            }
            assert_bits_eq(out.inner(), &want, "add_scaled_4");
        }
    }

    #[test]
    fn add_i8_columns_is_the_exact_integer_sum_scaled_once() {
        let mut rng = Rng::new(21);
        let mut cases: Vec<(usize, usize)> = SIZES.iter().map(|&n| (n, 1 + rng.below(12))).collect();
        // across accumulator blocks, every column-count remainder, and the most columns allowed
        cases.extend([(1030, 5), (2053, 7), (4096, 128), (1024, 3), (8, 1), (17, 0), (33, I8_COLUMNS_MAX)]);
        for (case, &(n, m)) in cases.iter().enumerate() {
            let extreme = case % 3 == 2; // |q| = 128 and |vq| = 32767 everywhere: the largest sums
            let cols: Vec<Vec<i8>> =
                (0..m).map(|_| if extreme { vec![-128; n + 2] } else { rng.vec_i8(n + 2) }).collect();
            let vq: Vec<i16> = (0..m).map(|_| if extreme { -32767 } else { (rng.next_u64() % 65535) as i16 }).collect();
            let vs = rng.range(1e-6, 1e-3);
            let init = rng.vec(n, -3.0, 3.0);
            let ptrs: Vec<*const i8> = cols.iter().map(|c| c.as_ptr()).collect();
            let mut out = Guarded::from(&init, F32_SENTINEL);
            unsafe { add_i8_columns(out.inner_mut(), vs, &vq, &ptrs) };
            out.check();
            let want: Vec<f32> = (0..n)
                .map(|c| {
                    let exact: i64 = (0..m).map(|k| vq[k] as i64 * cols[k][c] as i64).sum();
                    assert!(exact.abs() < 1 << 31);
                    init[c] + vs * exact as f32
                })
                .collect();
            assert_bits_eq(out.inner(), &want, "add_i8_columns");
        }
    }
}
