//! `out += a·row`: the accumulation step of every "sum of scaled rows" (`matvec_t_f32`, attention's
//! weighted sum of values, `ffn_bundled`'s down projection). Each `out[c]` gets exactly one
//! multiply and one add per call, so calling it for rows in increasing order gives
//! `out[c] = (((0 + a0·r0[c]) + a1·r1[c]) + ...)` whether the lanes are SIMD or scalar.

use crate::simd::F32x4;

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

/// `add_scaled_i8` of four int8 rows in turn (`out[c] + a0·(s0·q0[c])`, then `+ a1·(s1·q1[c])`, ...),
/// bit-identical to four calls, with `out` loaded and stored once per 16 values instead of four times.
#[inline]
pub fn add_scaled_i8_4(out: &mut [f32], a: [f32; 4], scale: [f32; 4], q: [&[i8]; 4]) {
    let n = out.len();
    let q = q.map(|r| &r[..n]);
    let av = a.map(F32x4::splat);
    let sv = scale.map(F32x4::splat);
    let n16 = n / 16 * 16;
    let mut c = 0;
    while c < n16 {
        // SAFETY: c + 16 ≤ n for `out` and every row.
        unsafe {
            let op = out.as_mut_ptr().add(c);
            let mut o = [0, 1, 2, 3].map(|g| F32x4::load_ptr(op.add(4 * g)));
            for r in 0..4 {
                let w = F32x4::load_i8x16(q[r].as_ptr().add(c));
                for g in 0..4 {
                    o[g] = o[g] + av[r] * (sv[r] * w[g]);
                }
            }
            for (g, v) in o.iter().enumerate() {
                v.store_ptr(op.add(4 * g));
            }
        }
        c += 16;
    }
    for c in n16..n {
        for r in 0..4 {
            out[c] += a[r] * (scale[r] * q[r][c] as f32);
        }
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

            // four int8 rows at once = four calls in order
            let qs: Vec<Vec<i8>> = (0..4).map(|_| rng.vec_i8(n + 1)).collect();
            let (a4, s4) = ([0; 4].map(|_| rng.range(-2.0, 2.0)), [0; 4].map(|_| rng.range(0.001, 0.1)));
            let mut out = Guarded::from(&init, F32_SENTINEL);
            add_scaled_i8_4(out.inner_mut(), a4, s4, [&qs[0][..], &qs[1], &qs[2], &qs[3]]);
            out.check();
            let mut want = init.clone();
            for r in 0..4 {
                add_scaled_i8(&mut want, a4[r], s4[r], &qs[r]);
            }
            assert_bits_eq(out.inner(), &want, "add_scaled_i8_4");

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
}
