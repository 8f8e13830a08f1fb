//! Scalar maths without libm. Everything here is plain f32 arithmetic (no FMA), so it is
//! bit-identical natively and in wasm.

// The polynomial constants are quoted as published (Cephes); they round to the intended f32.
#![allow(clippy::excessive_precision)]

/// e^x within ~2 ulp (Cephes `expf`): x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-7 polynomial,
/// then scaled by 2^n. Overflows to +inf, underflows through the subnormals to +0; NaN propagates.
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    if x > 89.0 {
        return f32::INFINITY;
    }
    if x < -104.0 {
        // e^-104 is below half the smallest subnormal.
        return 0.0;
    }
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    // ln2 split so that n·LN2_HI is exact for |n| < 2^15 (Cody–Waite).
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and removing 1.5·2^23 rounds to the nearest integer (|x·log2e| < 2^22 here).
    const ROUND: f32 = 12_582_912.0;

    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let z = r * r;
    let p = 1.987_569_2e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
    let y = p * z + r + 1.0;

    // n ∈ [-150, 128]: scale in two exact power-of-two steps so that neither factor leaves the
    // normal range and the only rounding is the final one (into the subnormals or to inf).
    let n = n as i32;
    let half = n / 2;
    y * pow2i(half) * pow2i(n - half)
}

/// 2^k for k ∈ [-126, 127], built from its exponent bits.
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// Correctly rounded IEEE square root.
#[inline(always)]
pub fn sqrt_f32(x: f32) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        // core has no scalar sqrt on stable Rust; the lane op is the same IEEE sqrt.
        use core::arch::wasm32::*;
        f32x4_extract_lane::<0>(f32x4_sqrt(f32x4_splat(x)))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        x.sqrt()
    }
}

/// `v / (1 + e^z)`, also where e^z overflows but the quotient is still a (tiny) f32: beyond
/// z = 80, `1 + e^z` rounds to `e^z` anyway, so the quotient is `v·e^-z`, computed as
/// `(v·e^(64-z))·e^-64` so that only the last step can round into the subnormals.
#[inline(always)]
fn div_one_plus_exp(v: f32, z: f32) -> f32 {
    const EXP_M64: f32 = 1.603_810_9e-28;
    if z > 80.0 {
        (v * exp_f32(64.0 - z)) * EXP_M64
    } else {
        v / (1.0 + exp_f32(z))
    }
}

/// THE SiLU used by `silu` and `ffn_bundled`: `v / (1 + e^-v)`.
#[inline]
pub fn silu_f32(v: f32) -> f32 {
    div_one_plus_exp(v, -v)
}

/// GELU, tanh approximation: `0.5·v·(1 + tanh(y))` with `y = √(2/π)·(v + 0.044715·v³)`.
/// Since `(1 + tanh y)/2 = 1/(1 + e^(-2y))`, this is `v / (1 + e^(-2y))`, which avoids the
/// cancellation of `1 + tanh(y)` for negative y and saturates correctly at both ends.
#[inline]
pub fn gelu_f32(v: f32) -> f32 {
    const TWO_SQRT_2_OVER_PI: f32 = 1.595_769_1;
    let y2 = TWO_SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v);
    div_one_plus_exp(v, -y2)
}

/// |v| (core has no `f32::abs` before Rust 1.85).
#[inline(always)]
pub fn abs_f32(v: f32) -> f32 {
    f32::from_bits(v.to_bits() & 0x7fff_ffff)
}

#[inline]
pub fn relu_f32(v: f32) -> f32 {
    // Same lane semantics as F32x4::relu (NaN and -0 give +0).
    if 0.0 < v {
        v
    } else {
        0.0
    }
}

/// FATReLU (ProSparse's shifted ReLU): `v` if `v > t`, else 0 (NaN gives +0, as `relu_f32`).
#[inline]
pub fn fatrelu_f32(v: f32, t: f32) -> f32 {
    if t < v {
        v
    } else {
        0.0
    }
}

/// `v` rounded to the nearest integer, halves away from zero (C `roundf`), for |v| < 2^23.
#[inline]
pub fn round_half_away(v: f32) -> i32 {
    let t = v as i32;
    // Exact: |v| < 2^23, so v and its integer part share an exponent range.
    let frac = v - t as f32;
    if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn ulps(a: f32, b: f64) -> f64 {
        // distance in units of the f32 ulp at the reference value
        let bf = b as f32;
        let ulp = if bf == 0.0 || !bf.is_normal() {
            f32::from_bits(1) as f64
        } else {
            (f32::from_bits(bf.abs().to_bits() + 1) - bf.abs()) as f64
        };
        (a as f64 - b).abs() / ulp
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut rng = Rng::new(1);
        let mut worst = 0.0f64;
        let mut check = |x: f32| {
            let got = exp_f32(x);
            let want = (x as f64).exp();
            let e = ulps(got, want);
            assert!(e <= 2.0, "exp({x}) = {got}, want {want}, {e} ulp");
            worst = worst.max(e);
        };
        for _ in 0..200_000 {
            check(rng.range(-104.0, 88.72));
        }
        for _ in 0..50_000 {
            check(rng.range(-1.0, 1.0));
        }
        // every f32 in a few slices of the range, including around 0 and the extremes
        for start in [-104.0f32, -87.5, -20.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 40.0, 88.0] {
            let mut x = start;
            for _ in 0..20_000 {
                check(x);
                x = f32::from_bits(if x >= 0.0 { x.to_bits() + 1 } else { x.to_bits() - 1 });
                if x == 0.0 {
                    break;
                }
            }
        }
        assert!(worst <= 2.0);
        eprintln!("exp_f32: worst error {worst:.3} ulp");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert!(exp_f32(88.72283).is_finite());
        assert_eq!(exp_f32(88.72284), f32::INFINITY);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::MAX), f32::INFINITY);
        assert_eq!(exp_f32(-104.5), 0.0);
        assert_eq!(exp_f32(-1e30), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        // the subnormal range is reached and monotone
        assert!(exp_f32(-100.0) > 0.0 && exp_f32(-100.0) < f32::MIN_POSITIVE);
        assert!((exp_f32(-103.0) as f64 - (-103.0f64).exp()).abs() <= f32::from_bits(1) as f64);
        let mut prev = 0.0f32;
        let mut x = -104.0f32;
        while x < 89.0 {
            let e = exp_f32(x);
            assert!(e >= prev, "exp not monotone at {x}");
            prev = e;
            x += 0.0137;
        }
    }

    #[test]
    fn silu_and_gelu_match_f64() {
        let mut rng = Rng::new(2);
        for i in 0..100_000 {
            let v = if i % 2 == 0 { rng.range(-12.0, 12.0) } else { rng.range(-200.0, 200.0) };
            let d = v as f64;
            let s = silu_f32(v) as f64;
            let s_ref = d / (1.0 + (-d).exp());
            // (the absolute term is one subnormal step: tiny results lose relative precision)
            assert!((s - s_ref).abs() <= 4e-7 * s_ref.abs() + 1.5e-45, "silu({v}) = {s}, want {s_ref}");
            let g = gelu_f32(v) as f64;
            let y = (2.0 / std::f64::consts::PI).sqrt() * (d + 0.044715 * d * d * d);
            let g_tanh = 0.5 * d * (1.0 + y.tanh());
            // 1 + tanh(y) cancels in f64 too for y ≪ 0; there use the identical 2/(1 + e^(-2y))
            let g_ref = if y > -3.0 { g_tanh } else { d / (1.0 + (-2.0 * y).exp()) };
            // A relative error ε in the f32 argument y2 = 2y moves v·σ(y2) by about
            // |y2|·(1-σ)·ε relatively; ε is a few ulp of the cubic.
            let y2 = 1.5957691216057308 * (d + 0.044715 * d * d * d);
            let tol = (6e-7 + 4e-7 * y2.abs()) * g_ref.abs() + 1.5e-45;
            assert!((g - g_ref).abs() <= tol, "gelu({v}) = {g}, want {g_ref}");
        }
        assert_eq!(silu_f32(-1000.0), 0.0);
        assert_eq!(silu_f32(1000.0), 1000.0);
        assert_eq!(gelu_f32(-1000.0), 0.0);
        assert_eq!(gelu_f32(1000.0), 1000.0);
        assert_eq!(gelu_f32(1e20), 1e20);
        assert_eq!(gelu_f32(-1e20), 0.0);
        assert_eq!(silu_f32(0.0), 0.0);
        assert_eq!(gelu_f32(0.0), 0.0);
    }

    #[test]
    fn sqrt_is_ieee() {
        let mut rng = Rng::new(3);
        for _ in 0..10_000 {
            let v = rng.range(0.0, 1e6);
            assert_eq!(sqrt_f32(v).to_bits(), v.sqrt().to_bits());
        }
    }

    #[test]
    fn round_matches_roundf() {
        let mut rng = Rng::new(4);
        for _ in 0..100_000 {
            let v = rng.range(-40000.0, 40000.0);
            assert_eq!(round_half_away(v), v.round() as i32, "{v}");
        }
        for v in [0.5f32, -0.5, 1.5, -1.5, 2.5, 0.49999997, -0.49999997, 32766.5, -32766.5, 0.0, -0.0] {
            assert_eq!(round_half_away(v), v.round() as i32, "{v}");
        }
    }
}
