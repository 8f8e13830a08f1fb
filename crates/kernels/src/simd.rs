//! The vector layer every kernel is written against: 4 x f32 and 4 x i32.
//!
//! On wasm32 it is simd128. Elsewhere it is an emulation in which every lane does the very same IEEE
//! operation as the wasm instruction (no FMA, no reassociation), so a kernel gives bit-identical
//! results natively (where it is tested) and in the browser. Only operations whose wasm semantics
//! are exactly reproducible lane by lane are offered here (add/sub/mul/div, pseudo-max, integer
//! dot, int→float conversion).

pub use imp::{F32x4, I32x4};

#[cfg(target_arch = "wasm32")]
mod imp {
    use core::arch::wasm32::*;
    use core::ptr;

    #[derive(Clone, Copy)]
    pub struct F32x4(v128);

    #[derive(Clone, Copy)]
    pub struct I32x4(v128);

    impl F32x4 {
        #[inline(always)]
        pub fn zero() -> Self {
            F32x4(f32x4_splat(0.0))
        }
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            F32x4(f32x4_splat(v))
        }
        #[inline(always)]
        pub fn from_array(a: [f32; 4]) -> Self {
            F32x4(f32x4(a[0], a[1], a[2], a[3]))
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; 4] {
            [
                f32x4_extract_lane::<0>(self.0),
                f32x4_extract_lane::<1>(self.0),
                f32x4_extract_lane::<2>(self.0),
                f32x4_extract_lane::<3>(self.0),
            ]
        }
        /// The first 4 values of `s`.
        #[inline(always)]
        pub fn load(s: &[f32]) -> Self {
            assert!(s.len() >= 4);
            // SAFETY: 16 bytes are in bounds; wasm loads need no alignment.
            F32x4(unsafe { ptr::read_unaligned(s.as_ptr() as *const v128) })
        }
        /// Writes the 4 lanes to the first 4 values of `s`.
        #[inline(always)]
        pub fn store(self, s: &mut [f32]) {
            assert!(s.len() >= 4);
            // SAFETY: 16 bytes are in bounds.
            unsafe { ptr::write_unaligned(s.as_mut_ptr() as *mut v128, self.0) }
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_ptr(p: *const f32) -> Self {
            F32x4(ptr::read_unaligned(p as *const v128))
        }
        /// # Safety
        /// `p..p+4` must be writable.
        #[inline(always)]
        pub unsafe fn store_ptr(self, p: *mut f32) {
            ptr::write_unaligned(p as *mut v128, self.0)
        }
        /// The first 4 values of `s`, converted exactly to f32.
        #[inline(always)]
        pub fn from_i8(s: &[i8]) -> Self {
            let b = [s[0] as u8, s[1] as u8, s[2] as u8, s[3] as u8];
            let v = i32x4_splat(u32::from_le_bytes(b) as i32);
            F32x4(f32x4_convert_i32x4(i32x4_extend_low_i16x8(i16x8_extend_low_i8x16(v))))
        }
        /// Per lane `if 0 < v { v } else { 0 }` (wasm `pmax(0, v)`; NaN and -0 give +0).
        #[inline(always)]
        pub fn relu(self) -> Self {
            F32x4(f32x4_pmax(f32x4_splat(0.0), self.0))
        }
        /// `(l0 + l1) + (l2 + l3)`: the one fixed lane-reduction order.
        #[inline(always)]
        pub fn sum_lanes(self) -> f32 {
            let l = self.to_array();
            (l[0] + l[1]) + (l[2] + l[3])
        }
    }

    macro_rules! lane_op {
        ($trait:ident, $method:ident, $intrinsic:ident) => {
            impl core::ops::$trait for F32x4 {
                type Output = F32x4;
                #[inline(always)]
                fn $method(self, o: F32x4) -> F32x4 {
                    F32x4($intrinsic(self.0, o.0))
                }
            }
        };
    }
    lane_op!(Add, add, f32x4_add);
    lane_op!(Sub, sub, f32x4_sub);
    lane_op!(Mul, mul, f32x4_mul);
    lane_op!(Div, div, f32x4_div);

    impl I32x4 {
        #[inline(always)]
        pub fn zero() -> Self {
            I32x4(i32x4_splat(0))
        }
        /// `self[l] + (w[2l]·x[2l] + w[2l+1]·x[2l+1])` for the first 8 values of `w` and `x`
        /// (wrapping i32 arithmetic, as `i32x4.dot_i16x8_s`).
        #[inline(always)]
        pub fn add_dot_i8_i16(self, w: &[i8], x: &[i16]) -> Self {
            assert!(w.len() >= 8 && x.len() >= 8);
            // SAFETY: 8 bytes of `w` and 16 bytes of `x` are in bounds.
            let (wv, xv) =
                unsafe { (i16x8_load_extend_i8x8(w.as_ptr()), ptr::read_unaligned(x.as_ptr() as *const v128)) };
            I32x4(i32x4_add(self.0, i32x4_dot_i16x8(wv, xv)))
        }
        /// Lane-wise i32 → f32 (round to nearest even).
        #[inline(always)]
        pub fn to_f32(self) -> F32x4 {
            F32x4(f32x4_convert_i32x4(self.0))
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    #[derive(Clone, Copy, Debug)]
    pub struct F32x4([f32; 4]);

    #[derive(Clone, Copy, Debug)]
    pub struct I32x4([i32; 4]);

    #[inline(always)]
    fn lanes(a: [f32; 4], b: [f32; 4], f: impl Fn(f32, f32) -> f32) -> F32x4 {
        F32x4([f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])])
    }

    impl F32x4 {
        #[inline(always)]
        pub fn zero() -> Self {
            F32x4([0.0; 4])
        }
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            F32x4([v; 4])
        }
        #[inline(always)]
        pub fn from_array(a: [f32; 4]) -> Self {
            F32x4(a)
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; 4] {
            self.0
        }
        #[inline(always)]
        pub fn load(s: &[f32]) -> Self {
            F32x4([s[0], s[1], s[2], s[3]])
        }
        #[inline(always)]
        pub fn store(self, s: &mut [f32]) {
            s[..4].copy_from_slice(&self.0);
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_ptr(p: *const f32) -> Self {
            F32x4([*p, *p.add(1), *p.add(2), *p.add(3)])
        }
        /// # Safety
        /// `p..p+4` must be writable.
        #[inline(always)]
        pub unsafe fn store_ptr(self, p: *mut f32) {
            for (i, v) in self.0.iter().enumerate() {
                *p.add(i) = *v;
            }
        }
        #[inline(always)]
        pub fn from_i8(s: &[i8]) -> Self {
            F32x4([s[0] as f32, s[1] as f32, s[2] as f32, s[3] as f32])
        }
        #[inline(always)]
        pub fn relu(self) -> Self {
            lanes(self.0, self.0, |v, _| if 0.0 < v { v } else { 0.0 })
        }
        #[inline(always)]
        pub fn sum_lanes(self) -> f32 {
            let l = self.0;
            (l[0] + l[1]) + (l[2] + l[3])
        }
    }

    macro_rules! lane_op {
        ($trait:ident, $method:ident, $op:tt) => {
            impl core::ops::$trait for F32x4 {
                type Output = F32x4;
                #[inline(always)]
                fn $method(self, o: F32x4) -> F32x4 {
                    lanes(self.0, o.0, |a, b| a $op b)
                }
            }
        };
    }
    lane_op!(Add, add, +);
    lane_op!(Sub, sub, -);
    lane_op!(Mul, mul, *);
    lane_op!(Div, div, /);

    impl I32x4 {
        #[inline(always)]
        pub fn zero() -> Self {
            I32x4([0; 4])
        }
        #[inline(always)]
        pub fn add_dot_i8_i16(self, w: &[i8], x: &[i16]) -> Self {
            let mut r = self.0;
            for (l, acc) in r.iter_mut().enumerate() {
                let p0 = w[2 * l] as i32 * x[2 * l] as i32;
                let p1 = w[2 * l + 1] as i32 * x[2 * l + 1] as i32;
                *acc = acc.wrapping_add(p0.wrapping_add(p1));
            }
            I32x4(r)
        }
        #[inline(always)]
        pub fn to_f32(self) -> F32x4 {
            let l = self.0;
            F32x4([l[0] as f32, l[1] as f32, l[2] as f32, l[3] as f32])
        }
    }
}
