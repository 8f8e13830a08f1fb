//! Element-wise maps and `argmax`.
//!
//! The ABI allows `out` to be the same buffer as an input, which `&mut`/`&` slices cannot express,
//! so the maps work on raw pointers: every 4-value block of the inputs is loaded before the block
//! of `out` at the same index is stored. The tail is run through the same vector closure on a
//! zero-padded copy, so each value gets the same operation whatever its position.

use crate::simd::F32x4;

/// `out[i] = f(a[i])` for `i < n`.
///
/// # Safety
/// `a[..n]` readable, `out[..n]` writable; `out` either equals `a` or does not overlap it.
#[inline(always)]
pub unsafe fn map1(out: *mut f32, a: *const f32, n: usize, f: impl Fn(F32x4) -> F32x4) {
    let whole = n / 4 * 4;
    for i in (0..whole).step_by(4) {
        f(F32x4::load_ptr(a.add(i))).store_ptr(out.add(i));
    }
    let mut ta = [0.0f32; 4];
    for j in whole..n {
        ta[j - whole] = *a.add(j);
    }
    let r = f(F32x4::from_array(ta)).to_array();
    for j in whole..n {
        *out.add(j) = r[j - whole];
    }
}

/// `out[i] = f(a[i], b[i])` for `i < n`.
///
/// # Safety
/// Inputs readable and `out` writable for `n` values; `out` equals an input or overlaps none.
#[inline(always)]
pub unsafe fn map2(out: *mut f32, a: *const f32, b: *const f32, n: usize, f: impl Fn(F32x4, F32x4) -> F32x4) {
    let whole = n / 4 * 4;
    for i in (0..whole).step_by(4) {
        f(F32x4::load_ptr(a.add(i)), F32x4::load_ptr(b.add(i))).store_ptr(out.add(i));
    }
    let (mut ta, mut tb) = ([0.0f32; 4], [0.0f32; 4]);
    for j in whole..n {
        ta[j - whole] = *a.add(j);
        tb[j - whole] = *b.add(j);
    }
    let r = f(F32x4::from_array(ta), F32x4::from_array(tb)).to_array();
    for j in whole..n {
        *out.add(j) = r[j - whole];
    }
}

/// `out[i] = f(a[i], b[i], c[i])` for `i < n`.
///
/// # Safety
/// As [`map2`].
#[inline(always)]
pub unsafe fn map3(
    out: *mut f32,
    a: *const f32,
    b: *const f32,
    c: *const f32,
    n: usize,
    f: impl Fn(F32x4, F32x4, F32x4) -> F32x4,
) {
    let whole = n / 4 * 4;
    for i in (0..whole).step_by(4) {
        let r = f(F32x4::load_ptr(a.add(i)), F32x4::load_ptr(b.add(i)), F32x4::load_ptr(c.add(i)));
        r.store_ptr(out.add(i));
    }
    let (mut ta, mut tb, mut tc) = ([0.0f32; 4], [0.0f32; 4], [0.0f32; 4]);
    for j in whole..n {
        ta[j - whole] = *a.add(j);
        tb[j - whole] = *b.add(j);
        tc[j - whole] = *c.add(j);
    }
    let r = f(F32x4::from_array(ta), F32x4::from_array(tb), F32x4::from_array(tc)).to_array();
    for j in whole..n {
        *out.add(j) = r[j - whole];
    }
}

/// `out[i] = a[i]·b[i]`.
///
/// # Safety
/// See [`map2`].
pub unsafe fn mul(out: *mut f32, a: *const f32, b: *const f32, n: usize) {
    map2(out, a, b, n, |a, b| a * b);
}

/// `out[i] = a[i] + b[i]`.
///
/// # Safety
/// See [`map2`].
pub unsafe fn add(out: *mut f32, a: *const f32, b: *const f32, n: usize) {
    map2(out, a, b, n, |a, b| a + b);
}

/// Index of the first maximum (NaNs are skipped unless all values are NaN); -1 for an empty slice.
pub fn argmax(x: &[f32]) -> i32 {
    if x.is_empty() {
        return -1;
    }
    let mut best = 0;
    for (i, &v) in x.iter().enumerate().skip(1) {
        let b = x[best];
        if v > b || (b.is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn mul_and_add_out_of_place_and_in_place() {
        let mut rng = Rng::new(50);
        for &n in SIZES {
            let a = rng.vec(n, -5.0, 5.0);
            let b = rng.vec(n, -5.0, 5.0);
            let prod: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
            let sum: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();

            let mut out = guarded_f32(n);
            unsafe { mul(out.ptr(), a.as_ptr(), b.as_ptr(), n) };
            out.check();
            assert_bits_eq(out.inner(), &prod, "mul");
            unsafe { add(out.ptr(), a.as_ptr(), b.as_ptr(), n) };
            out.check();
            assert_bits_eq(out.inner(), &sum, "add");

            // out == a, then out == b
            let mut ga = Guarded::from(&a, F32_SENTINEL);
            let p = ga.ptr();
            unsafe { mul(p, p, b.as_ptr(), n) };
            ga.check();
            assert_bits_eq(ga.inner(), &prod, "mul in place");
            let mut gb = Guarded::from(&b, F32_SENTINEL);
            let p = gb.ptr();
            unsafe { add(p, a.as_ptr(), p, n) };
            gb.check();
            assert_bits_eq(gb.inner(), &sum, "add in place");
        }
    }

    #[test]
    fn argmax_first_maximum() {
        let mut rng = Rng::new(51);
        for &n in SIZES {
            let x = rng.vec(n, -5.0, 5.0);
            let mut want = 0;
            for i in 0..n {
                if x[i] > x[want] {
                    want = i;
                }
            }
            assert_eq!(argmax(&x), want as i32);
        }
        assert_eq!(argmax(&[1.0, 3.0, 2.0, 3.0]), 1);
        assert_eq!(argmax(&[-1.0]), 0);
        assert_eq!(argmax(&[f32::NAN, 2.0, 5.0, f32::NAN]), 2);
        assert_eq!(argmax(&[]), -1);
    }
}
