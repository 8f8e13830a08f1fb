//! The vector layer every kernel is written against: 4 x f32 and 4 x i32.
//!
//! On wasm32 it is simd128. Elsewhere it is an emulation in which every lane does the very same IEEE
//! operation as the wasm instruction (no FMA, no reassociation), so a kernel gives bit-identical
//! results natively (where it is tested) and in the browser. Only operations whose wasm semantics
//! are exactly reproducible lane by lane are offered here (add/sub/mul/div, pseudo-max, integer
//! dot, int→float conversion, bit operations, exact f16 → f32 decoding).

pub use imp::{F32x4, I16x8, I32x4};

/// 2^112: rebiases an f16 exponent into an f32 one (see `crate::half::f16_to_f32`).
#[allow(clippy::excessive_precision)] // exactly 2^112, written out in full
pub const TWO_POW_112: f32 = 5.192_296_858_534_828e33;

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
        /// 8 IEEE halves at `p` (16 bytes, any alignment), decoded exactly: values 0-3 and 4-7.
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16x8(p: *const u8) -> (F32x4, F32x4) {
            let v = ptr::read_unaligned(p as *const v128);
            (decode_f16(i32x4_extend_low_i16x8(v)), decode_f16(i32x4_extend_high_i16x8(v)))
        }
        /// `load_f16x8` for halves that are not ±inf or NaN (4 operations per 4 values instead of 8),
        /// and the raw halves, for `I16x8::max_exponent` (a row holding an inf or NaN must be redone
        /// with `load_f16x8`).
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16x8_finite(p: *const u8) -> (F32x4, F32x4, I16x8) {
            let v = ptr::read_unaligned(p as *const v128);
            let d = |h: v128| F32x4(f32x4_mul(v128_and(i32x4_shl(h, 13), u32x4_splat(0x8FFF_E000)), f32x4_splat(super::TWO_POW_112)));
            (d(i32x4_extend_low_i16x8(v)), d(i32x4_extend_high_i16x8(v)), I16x8(v))
        }
        /// The halves held sign-extended in the 4 i32 lanes of `h`, decoded exactly (as `load_f16x8`).
        #[inline(always)]
        pub fn from_f16_lanes(h: I32x4) -> Self {
            decode_f16(h.0)
        }
        /// The four halves at `p[0..4]` (2 bytes each, any alignment), decoded exactly: one lane
        /// load per half straight into the vector (no scalar loads and inserts).
        /// # Safety
        /// `p[i]..p[i]+2` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16_lanes(p: [*const u8; 4]) -> Self {
            let mut v = i32x4_splat(0);
            v = v128_load16_lane::<0>(v, p[0] as *const u16);
            v = v128_load16_lane::<1>(v, p[1] as *const u16);
            v = v128_load16_lane::<2>(v, p[2] as *const u16);
            v = v128_load16_lane::<3>(v, p[3] as *const u16);
            decode_f16(i32x4_extend_low_i16x8(v))
        }
        /// `load_f16_lanes` for halves that are not ±inf or NaN (3 operations instead of 8), and the
        /// raw halves for `I16x8::max_exponent` (a block whose scale is inf or NaN must be redone
        /// with `load_f16_lanes`).
        /// # Safety
        /// `p[i]..p[i]+2` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16_lanes_finite(p: [*const u8; 4]) -> (Self, I16x8) {
            let mut v = i32x4_splat(0);
            v = v128_load16_lane::<0>(v, p[0] as *const u16);
            v = v128_load16_lane::<1>(v, p[1] as *const u16);
            v = v128_load16_lane::<2>(v, p[2] as *const u16);
            v = v128_load16_lane::<3>(v, p[3] as *const u16);
            let h = i32x4_extend_low_i16x8(v);
            let d = f32x4_mul(v128_and(i32x4_shl(h, 13), u32x4_splat(0x8FFF_E000)), f32x4_splat(super::TWO_POW_112));
            (F32x4(d), I16x8(v))
        }
        /// All four lanes set to lane `l` (`l < 4`).
        #[inline(always)]
        pub fn lane_splat(self, l: usize) -> Self {
            let v = self.0;
            F32x4(match l {
                0 => i32x4_shuffle::<0, 0, 0, 0>(v, v),
                1 => i32x4_shuffle::<1, 1, 1, 1>(v, v),
                2 => i32x4_shuffle::<2, 2, 2, 2>(v, v),
                _ => i32x4_shuffle::<3, 3, 3, 3>(v, v),
            })
        }
        /// 16 i8 at `p`, converted exactly: values 0-3, 4-7, 8-11, 12-15.
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8x16(p: *const i8) -> [F32x4; 4] {
            // i8 + 128 as u8, then minus 128 in the conversion
            let v = v128_xor(ptr::read_unaligned(p as *const v128), u8x16_splat(0x80));
            u8_minus(v, 128.0)
        }
    }

    /// `f32(b − bias)` of the 16 u8 lanes `b`, exactly. Integer-only widening, then the 2^23 trick:
    /// `0x4B000000 | b` read as f32 is 2^23 + b, and subtracting 2^23 + bias is exact. (LLVM 14
    /// turns the obvious `sext` + `f32x4.convert_i32x4_s` into four scalar conversions per vector,
    /// ~4x slower; nothing here can be folded into a conversion.)
    #[inline(always)]
    fn u8_minus(v: v128, bias: f32) -> [F32x4; 4] {
        let (lo, hi) = (u16x8_extend_low_u8x16(v), u16x8_extend_high_u8x16(v));
        let (m, off) = (u32x4_splat(0x4B00_0000), f32x4_splat(8_388_608.0 + bias));
        let f = |u: v128| F32x4(f32x4_sub(v128_or(u, m), off));
        [f(u32x4_extend_low_u16x8(lo)), f(u32x4_extend_high_u16x8(lo)), f(u32x4_extend_low_u16x8(hi)), f(u32x4_extend_high_u16x8(hi))]
    }

    /// Exact f16 → f32 of 4 sign-extended halves (the lane-wise form of `half::f16_to_f32`): the
    /// sign stays in bit 31, exponent and mantissa move to bits 27..13, so the bits read as an f32
    /// are the value·2^-112 (also for subnormals), and one exact multiply by 2^112 rebiases them.
    /// Infinities and NaNs (exponent 31) take exponent 255 with their mantissa instead.
    #[inline(always)]
    fn decode_f16(h: v128) -> F32x4 {
        let bits = v128_and(i32x4_shl(h, 13), u32x4_splat(0x8FFF_E000));
        let finite = f32x4_mul(bits, f32x4_splat(super::TWO_POW_112));
        let special = i32x4_eq(v128_and(h, u32x4_splat(0x7C00)), u32x4_splat(0x7C00));
        F32x4(v128_bitselect(v128_or(bits, u32x4_splat(0x7F80_0000)), finite, special))
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

    /// 8 x i16 (also used for 8 raw little-endian u16 lanes).
    #[derive(Clone, Copy)]
    pub struct I16x8(v128);

    impl I16x8 {
        /// 8 i8 at `p`, sign-extended to i16.
        /// # Safety
        /// `p..p+8` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8(p: *const i8) -> Self {
            I16x8(i16x8_load_extend_i8x8(p))
        }
        /// 16 bytes at `p` as 8 little-endian u16 lanes.
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load_u16(p: *const u8) -> Self {
            I16x8(ptr::read_unaligned(p as *const v128))
        }
        /// 8 i8 of column `a` and 8 of column `b`, sign-extended and interleaved:
        /// `[a0, b0, a1, b1, a2, b2, a3, b3]` and `[a4, b4, …, a7, b7]` (two `punpck{l,h}wd`), so
        /// that `I32x4::add_dot` with `I16x8::pair(va, vb)` gives `a[c]·va + b[c]·vb` in lane `c`.
        /// # Safety
        /// `a..a+8` and `b..b+8` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8_zip(a: *const i8, b: *const i8) -> (Self, Self) {
            let (a, b) = (i16x8_load_extend_i8x8(a), i16x8_load_extend_i8x8(b));
            (
                I16x8(i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(a, b)),
                I16x8(i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(a, b)),
            )
        }
        /// `[a, b, a, b, a, b, a, b]`.
        #[inline(always)]
        pub fn pair(a: i16, b: i16) -> Self {
            I16x8(i32x4_splat((a as u16 as i32) | ((b as u16 as i32) << 16)))
        }
        /// 8 i16 at `p` (any alignment).
        /// # Safety
        /// `p..p+8` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const i16) -> Self {
            I16x8(ptr::read_unaligned(p as *const v128))
        }
        /// Lane-wise `self & m`.
        #[inline(always)]
        pub fn and(self, m: u16) -> Self {
            I16x8(v128_and(self.0, u16x8_splat(m)))
        }
        /// Lane-wise logical shift right of the u16 lanes.
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // mirrors the wasm32 intrinsic names, as the SIMD module does
        pub fn shr(self, n: u32) -> Self {
            I16x8(u16x8_shr(self.0, n))
        }
        /// Lane-wise shift left (wrapping).
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // mirrors the wasm32 intrinsic names, as the SIMD module does
        pub fn shl(self, n: u32) -> Self {
            I16x8(i16x8_shl(self.0, n))
        }
        #[inline(always)]
        pub fn zero() -> Self {
            I16x8(u16x8_splat(0))
        }
        /// Lane-wise `max(acc, h & 0x7C00)` of raw halves: the largest exponent field seen.
        #[inline(always)]
        pub fn max_exponent(self, acc: I16x8) -> Self {
            I16x8(u16x8_max(acc.0, v128_and(self.0, u16x8_splat(0x7C00))))
        }
        /// Whether any u16 lane is ≥ 0x7C00 (an exponent field of all ones: ±inf or NaN).
        #[inline(always)]
        pub fn any_inf_or_nan(self) -> bool {
            v128_any_true(u16x8_ge(self.0, u16x8_splat(0x7C00)))
        }
        /// Lane-wise `max(acc, h << 1)` of raw halves (u16): the sign shifted out, so a lane ends
        /// at or above 0xF800 exactly when some half had an all-ones exponent. No constant needed.
        #[inline(always)]
        pub fn max_magnitude(self, acc: I16x8) -> Self {
            I16x8(u16x8_max(acc.0, i16x8_shl(self.0, 1)))
        }
        /// Whether any lane of a `max_magnitude` accumulator saw ±inf or NaN.
        #[inline(always)]
        pub fn any_inf_or_nan_magnitude(self) -> bool {
            v128_any_true(u16x8_ge(self.0, u16x8_splat(0xF800)))
        }
        /// The 16 bytes of the vector read as u8, minus `bias` (an integer in 0..=255), converted
        /// exactly: bytes 0-3, 4-7, 8-11, 12-15.
        #[inline(always)]
        pub fn u8_minus_to_f32(self, bias: f32) -> [F32x4; 4] {
            u8_minus(self.0, bias)
        }
    }

    impl I32x4 {
        #[inline(always)]
        pub fn zero() -> Self {
            I32x4(i32x4_splat(0))
        }
        /// `self[l] + (a[2l]·b[2l] + a[2l+1]·b[2l+1])` (wrapping, as `i32x4.dot_i16x8_s`).
        #[inline(always)]
        pub fn add_dot(self, a: I16x8, b: I16x8) -> Self {
            I32x4(i32x4_add(self.0, i32x4_dot_i16x8(a.0, b.0)))
        }
        /// 4 i32 at `p` (any alignment).
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u8) -> Self {
            I32x4(ptr::read_unaligned(p as *const v128))
        }
        /// # Safety
        /// `p..p+16` must be writable.
        #[inline(always)]
        pub unsafe fn store(self, p: *mut u8) {
            ptr::write_unaligned(p as *mut v128, self.0)
        }
        #[inline(always)]
        pub fn from_array(a: [i32; 4]) -> Self {
            I32x4(i32x4(a[0], a[1], a[2], a[3]))
        }
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // mirrors the wasm32 intrinsic names, as the SIMD module does
        pub fn sub(self, o: I32x4) -> Self {
            I32x4(i32x4_sub(self.0, o.0))
        }
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // mirrors the wasm32 intrinsic names, as the SIMD module does
        pub fn add(self, o: I32x4) -> Self {
            I32x4(i32x4_add(self.0, o.0))
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
        #[inline(always)]
        pub fn splat(v: i32) -> Self {
            I32x4(i32x4_splat(v))
        }
        /// Stores the low byte of lane 0 at `p` as a volatile write: a side effect V8 keeps in
        /// program order, so the loads that follow it cannot be hoisted above the computation of
        /// `self`. (TurboFan issues a loop body's loads first and places the arithmetic late; with
        /// 8 rows in flight that is more live vectors than registers, and the spills cost more than
        /// this one store per row.) The byte itself is never read.
        /// # Safety
        /// `p` must be writable scratch.
        #[inline(always)]
        pub unsafe fn fence_store(self, p: *mut u8) {
            ptr::write_volatile(p, i32x4_extract_lane::<0>(self.0) as u8)
        }
        /// The wrapping sum of the four lanes.
        #[inline(always)]
        pub fn sum_lanes(self) -> i32 {
            let v = self.0;
            let s = i32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
            i32x4_extract_lane::<0>(i32x4_add(s, i32x4_shuffle::<1, 0, 3, 2>(s, s)))
        }
        /// `[Σa, Σb, Σa, Σb]` (wrapping lane sums): two interleaves, a swap and two adds.
        #[inline(always)]
        pub fn sum2(a: I32x4, b: I32x4) -> Self {
            let (a, b) = (a.0, b.0);
            let t = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
            I32x4(i32x4_add(t, i32x4_shuffle::<2, 3, 0, 1>(t, t)))
        }
        /// `[Σa, Σb, Σc, Σd]` (wrapping lane sums) with four interleaves and three adds, each an
        /// unpack instruction on x86 (`punpck{l,h}dq`, `punpck{l,h}qdq`).
        #[inline(always)]
        pub fn sum4(a: I32x4, b: I32x4, c: I32x4, d: I32x4) -> Self {
            let (a, b, c, d) = (a.0, b.0, c.0, d.0);
            // [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d
            let ab = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
            let cd = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(c, d), i32x4_shuffle::<2, 6, 3, 7>(c, d));
            I32x4(i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(ab, cd), i32x4_shuffle::<2, 3, 6, 7>(ab, cd)))
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
        pub fn relu(self) -> Self {
            lanes(self.0, self.0, |v, _| if 0.0 < v { v } else { 0.0 })
        }
        #[inline(always)]
        pub fn sum_lanes(self) -> f32 {
            let l = self.0;
            (l[0] + l[1]) + (l[2] + l[3])
        }
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16x8_finite(p: *const u8) -> (F32x4, F32x4, I16x8) {
            let (a, b) = Self::load_f16x8(p);
            (a, b, I16x8::load_u16(p))
        }
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16x8(p: *const u8) -> (F32x4, F32x4) {
            let h = |i: usize| crate::half::f16_to_f32(u16::from_le_bytes([*p.add(2 * i), *p.add(2 * i + 1)]));
            (F32x4([h(0), h(1), h(2), h(3)]), F32x4([h(4), h(5), h(6), h(7)]))
        }
        #[inline(always)]
        pub fn from_f16_lanes(h: I32x4) -> Self {
            F32x4(h.0.map(|v| crate::half::f16_to_f32(v as u16)))
        }
        /// # Safety
        /// `p[i]..p[i]+2` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16_lanes(p: [*const u8; 4]) -> Self {
            F32x4(p.map(|p| crate::half::f16_to_f32(u16::from_le_bytes([*p, *p.add(1)]))))
        }
        /// # Safety
        /// `p[i]..p[i]+2` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16_lanes_finite(p: [*const u8; 4]) -> (Self, I16x8) {
            let raw = p.map(|p| u16::from_le_bytes([*p, *p.add(1)]) as i16);
            (Self::load_f16_lanes(p), I16x8([raw[0], raw[1], raw[2], raw[3], 0, 0, 0, 0]))
        }
        #[inline(always)]
        pub fn lane_splat(self, l: usize) -> Self {
            F32x4([self.0[l]; 4])
        }
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8x16(p: *const i8) -> [F32x4; 4] {
            let v = |i: usize| *p.add(i) as f32;
            [0, 4, 8, 12].map(|b| F32x4([v(b), v(b + 1), v(b + 2), v(b + 3)]))
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

    #[derive(Clone, Copy, Debug)]
    pub struct I16x8([i16; 8]);

    impl I16x8 {
        /// # Safety
        /// `p..p+8` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8(p: *const i8) -> Self {
            let mut r = [0i16; 8];
            for (i, v) in r.iter_mut().enumerate() {
                *v = *p.add(i) as i16;
            }
            I16x8(r)
        }
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load_u16(p: *const u8) -> Self {
            let mut r = [0i16; 8];
            for (i, v) in r.iter_mut().enumerate() {
                *v = u16::from_le_bytes([*p.add(2 * i), *p.add(2 * i + 1)]) as i16;
            }
            I16x8(r)
        }
        /// # Safety
        /// `p..p+8` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const i16) -> Self {
            let mut r = [0i16; 8];
            for (i, v) in r.iter_mut().enumerate() {
                *v = *p.add(i);
            }
            I16x8(r)
        }
        /// # Safety
        /// `a..a+8` and `b..b+8` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8_zip(a: *const i8, b: *const i8) -> (Self, Self) {
            let zip = |from: usize| {
                let mut r = [0i16; 8];
                for l in 0..4 {
                    r[2 * l] = *a.add(from + l) as i16;
                    r[2 * l + 1] = *b.add(from + l) as i16;
                }
                I16x8(r)
            };
            (zip(0), zip(4))
        }
        #[inline(always)]
        pub fn pair(a: i16, b: i16) -> Self {
            I16x8([a, b, a, b, a, b, a, b])
        }
        #[inline(always)]
        pub fn and(self, m: u16) -> Self {
            I16x8(self.0.map(|v| ((v as u16) & m) as i16))
        }
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // mirrors the wasm32 intrinsic names, as the SIMD module does
        pub fn shr(self, n: u32) -> Self {
            I16x8(self.0.map(|v| ((v as u16) >> n) as i16))
        }
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // mirrors the wasm32 intrinsic names, as the SIMD module does
        pub fn shl(self, n: u32) -> Self {
            I16x8(self.0.map(|v| v.wrapping_shl(n)))
        }
        #[inline(always)]
        pub fn zero() -> Self {
            I16x8([0; 8])
        }
        #[inline(always)]
        pub fn max_exponent(self, acc: I16x8) -> Self {
            I16x8([0, 1, 2, 3, 4, 5, 6, 7].map(|l| (acc.0[l] as u16).max(self.0[l] as u16 & 0x7C00) as i16))
        }
        #[inline(always)]
        pub fn any_inf_or_nan(self) -> bool {
            self.0.iter().any(|v| *v as u16 >= 0x7C00)
        }
        #[inline(always)]
        pub fn max_magnitude(self, acc: I16x8) -> Self {
            I16x8([0, 1, 2, 3, 4, 5, 6, 7].map(|l| (acc.0[l] as u16).max((self.0[l] as u16) << 1) as i16))
        }
        #[inline(always)]
        pub fn any_inf_or_nan_magnitude(self) -> bool {
            self.0.iter().any(|v| *v as u16 >= 0xF800)
        }
        #[inline(always)]
        pub fn u8_minus_to_f32(self, bias: f32) -> [F32x4; 4] {
            let byte = |i: usize| (self.0[i / 2] as u16).to_le_bytes()[i % 2] as f32 - bias;
            [0, 4, 8, 12].map(|b| F32x4::from_array([byte(b), byte(b + 1), byte(b + 2), byte(b + 3)]))
        }
    }

    impl I32x4 {
        #[inline(always)]
        pub fn zero() -> Self {
            I32x4([0; 4])
        }
        #[inline(always)]
        pub fn add_dot(self, a: I16x8, b: I16x8) -> Self {
            let mut r = self.0;
            for (l, acc) in r.iter_mut().enumerate() {
                let p0 = a.0[2 * l] as i32 * b.0[2 * l] as i32;
                let p1 = a.0[2 * l + 1] as i32 * b.0[2 * l + 1] as i32;
                *acc = acc.wrapping_add(p0.wrapping_add(p1));
            }
            I32x4(r)
        }
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u8) -> Self {
            let mut r = [0i32; 4];
            for (i, v) in r.iter_mut().enumerate() {
                *v = i32::from_le_bytes([*p.add(4 * i), *p.add(4 * i + 1), *p.add(4 * i + 2), *p.add(4 * i + 3)]);
            }
            I32x4(r)
        }
        /// # Safety
        /// `p..p+16` must be writable.
        #[inline(always)]
        pub unsafe fn store(self, p: *mut u8) {
            for (i, v) in self.0.iter().enumerate() {
                for (b, byte) in v.to_le_bytes().iter().enumerate() {
                    *p.add(4 * i + b) = *byte;
                }
            }
        }
        #[inline(always)]
        pub fn from_array(a: [i32; 4]) -> Self {
            I32x4(a)
        }
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // mirrors the wasm32 intrinsic names, as the SIMD module does
        pub fn sub(self, o: I32x4) -> Self {
            I32x4([0, 1, 2, 3].map(|l| self.0[l].wrapping_sub(o.0[l])))
        }
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // mirrors the wasm32 intrinsic names, as the SIMD module does
        pub fn add(self, o: I32x4) -> Self {
            I32x4([0, 1, 2, 3].map(|l| self.0[l].wrapping_add(o.0[l])))
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
        #[inline(always)]
        pub fn splat(v: i32) -> Self {
            I32x4([v; 4])
        }
        /// # Safety
        /// `p` must be writable scratch.
        #[inline(always)]
        pub unsafe fn fence_store(self, p: *mut u8) {
            core::ptr::write_volatile(p, self.0[0] as u8)
        }
        #[inline(always)]
        pub fn sum_lanes(self) -> i32 {
            self.0.iter().fold(0i32, |s, v| s.wrapping_add(*v))
        }
        #[inline(always)]
        pub fn sum4(a: I32x4, b: I32x4, c: I32x4, d: I32x4) -> Self {
            I32x4([a.sum_lanes(), b.sum_lanes(), c.sum_lanes(), d.sum_lanes()])
        }
        #[inline(always)]
        pub fn sum2(a: I32x4, b: I32x4) -> Self {
            I32x4([a.sum_lanes(), b.sum_lanes(), a.sum_lanes(), b.sum_lanes()])
        }
    }
}
