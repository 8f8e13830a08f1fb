//! ggml's block-quantized weights, byte for byte as in a GGUF file (`ggml-common.h`), times
//! activations quantized the way llama.cpp quantizes them for these dot products.
//!
//! - Q8_0 block (34 bytes, 32 values): `f16 d`, `i8 qs[32]`; value j = d·qs[j].
//! - Q4_0 block (18 bytes, 32 values): `f16 d`, `u8 qs[16]`; value j = d·((qs[j] & 15) − 8) for
//!   j < 16 and d·((qs[j−16] >> 4) − 8) for j ≥ 16.
//!
//! `x` is quantized per block of 32 like ggml's x86 `quantize_row_q8_0`: `d = max|x|/127` stored as
//! an f16, `q = round_half_even(x·(127/max|x|))`. A block's dot is then an exact integer sum, scaled by
//! `f16(d_w)·f16(d_x)` in f32, as llama.cpp's `ggml_vec_dot_q{4,8}_0_q8_0` do.
//!
//! The quantized x lives in caller scratch as one 64-byte record per block (so `2·cols` bytes):
//! bytes 0..32 the 32 i8 values in the order the weights' SIMD layout wants them, 32..48 an i32x4
//! correction (Q4_0 only, see `Q4_0`), 48..52 `f16(d_x)·DX_SCALE` as an f32, 52..64 zero (byte 52 is
//! then overwritten by the dot's ordering stores, `I32x4::fence_store`).
//!
//! Each row's result is `Σ_b f32(S_b)·(f16(d_w,b)·f16(d_x,b))` summed in f32 in block order from 0.0,
//! where `S_b` is the exact integer dot of block b: one f32 running sum per row, the same as the
//! scalar twin `matvec_block_scalar`, bit for bit. Four rows go through a block together: their
//! integer lane sums are reduced into one i32x4 (one lane per row), so the correction, the
//! int→float conversion, the scales and the running sums cost one vector operation per 4 rows.

use crate::half::{f16_to_f32, f32_to_f16};
use crate::math::abs_f32;
use crate::simd::{F32x4, I16x8, I32x4};

/// Values per block.
pub const QK: usize = 32;
/// Scratch bytes per block of x.
pub const XREC: usize = 64;

/// Scratch bytes the quantized x of `cols` values needs (`cols` a multiple of 32): `2·cols`.
pub fn scratch_bytes(cols: usize) -> usize {
    cols / QK * XREC
}

/// One block format: its size, how the quantized x is ordered for it, and its integer block sum.
pub trait Block {
    const BYTES: usize;
    /// The block sums are `Σ_j w_j·x_j / DX_SCALE` (a power of two, so that the SIMD form needs
    /// fewer operations); `d_x·DX_SCALE` is what the record holds, and the products agree exactly.
    const DX_SCALE: f32;
    /// Whether the record holds a correction to subtract from the sum of a block's lanes.
    const CORRECTED: bool;
    /// Puts block `q` (natural order) into the first 48 bytes of its scratch record.
    fn arrange_x(q: &[i8; QK], rec: &mut [u8]);
    /// Lane sums whose total, minus the record's correction (if `CORRECTED`), is exactly
    /// `Σ_j w_j·x_j / DX_SCALE` over one block (weights' quants at `qs`, x record at `xr`).
    /// # Safety
    /// `qs` must point at the block's quants, `xr` at a record written by `quantize_x::<Self>`.
    unsafe fn block_sum(qs: *const u8, xr: *const u8) -> I32x4;
    /// The integer weight `j` of a block (`value = d·weight`).
    fn weight(qs: &[u8], j: usize) -> i32;
}

/// Bytes of one row of `cols` values.
pub fn row_bytes<B: Block>(cols: usize) -> usize {
    cols / QK * B::BYTES
}

/// Q8_0. The 32 x values stay in natural order; four `i32x4.dot_i16x8_s` over groups of 8 values,
/// weights and x sign-extended to i16.
pub struct Q8_0;

impl Block for Q8_0 {
    const BYTES: usize = 34;
    const DX_SCALE: f32 = 1.0;
    const CORRECTED: bool = false;
    fn arrange_x(q: &[i8; QK], rec: &mut [u8]) {
        for (r, v) in rec.iter_mut().zip(q) {
            *r = *v as u8;
        }
        rec[32..48].fill(0);
    }
    #[inline(always)]
    unsafe fn block_sum(qs: *const u8, xr: *const u8) -> I32x4 {
        let l = |p: *const u8, g: usize| I16x8::load_i8(p.add(8 * g) as *const i8);
        I32x4::zero()
            .add_dot(l(qs, 0), l(xr, 0))
            .add_dot(l(qs, 1), l(xr, 1))
            .add_dot(l(qs, 2), l(xr, 2))
            .add_dot(l(qs, 3), l(xr, 3))
    }
    fn weight(qs: &[u8], j: usize) -> i32 {
        qs[j] as i8 as i32
    }
}

/// Q4_0. The 16 quant bytes are read as 8 u16 lanes k = `qs[2k] | qs[2k+1] << 8`, whose four
/// nibbles are values 2k (bits 0..4), 2k+16 (4..8), 2k+1 (8..12) and 2k+17 (12..16). Each nibble is
/// isolated with ONE operation and left where it sits (`& 0x000F`, `& 0x00F0`, `& 0x0F00`, `>> 12`),
/// so it carries a factor 1, 16, 256 or 1: x is multiplied by the complement (256, 16, 1, 256) when
/// the record is read (`i16x8.shl`, shared by all rows), and every product is 256·n_j·x_j, exact in
/// i16 inputs (|256·x| ≤ 32512, 256·n ≤ 3840) and i32 sums. The record holds x in the four groups
/// x[0,2,..14], x[1,3,..15], x[16,18,..30], x[17,19,..31]; DX_SCALE = 1/256. The `− 8` of every weight
/// is taken out of the loop: `Σ (n_j − 8)·x_j = Σ n_j·x_j − 8·Σ x_j`, with `256·8·Σ x_j` in every
/// lane of the record's correction.
pub struct Q4_0;

impl Block for Q4_0 {
    const BYTES: usize = 18;
    const DX_SCALE: f32 = 1.0 / 256.0;
    const CORRECTED: bool = true;
    fn arrange_x(q: &[i8; QK], rec: &mut [u8]) {
        for k in 0..8 {
            rec[k] = q[2 * k] as u8;
            rec[8 + k] = q[2 * k + 1] as u8;
            rec[16 + k] = q[16 + 2 * k] as u8;
            rec[24 + k] = q[17 + 2 * k] as u8;
        }
        let corr: i32 = q.iter().map(|v| 256 * 8 * *v as i32).sum();
        for l in 0..4 {
            rec[32 + 4 * l..36 + 4 * l].copy_from_slice(&corr.to_le_bytes());
        }
    }
    #[inline(always)]
    unsafe fn block_sum(qs: *const u8, xr: *const u8) -> I32x4 {
        let v = I16x8::load_u16(qs);
        let x = |g: usize| I16x8::load_i8(xr.add(8 * g) as *const i8);
        I32x4::zero()
            .add_dot(v.and(0x000F), x(0).shl(8))
            .add_dot(v.and(0x0F00), x(1))
            .add_dot(v.and(0x00F0), x(2).shl(4))
            .add_dot(v.shr(12), x(3).shl(8))
    }
    fn weight(qs: &[u8], j: usize) -> i32 {
        if j < 16 {
            (qs[j] & 15) as i32 - 8
        } else {
            (qs[j - 16] >> 4) as i32 - 8
        }
    }
}

/// Rounds to the nearest integer, ties to even (SSE's `_MM_ROUND_NEAREST`), for |v| < 2^22.
#[inline(always)]
fn round_half_even(v: f32) -> f32 {
    const R: f32 = 12_582_912.0; // 1.5·2^23: adding it leaves no fraction bits
    (v + R) - R
}

/// One block of x quantized as ggml's x86 `quantize_row_q8_0`: `(q, f16(d) as f32)`.
pub fn quantize_block(x: &[f32]) -> ([i8; QK], f32) {
    let mut amax = 0.0f32;
    for &v in &x[..QK] {
        let a = abs_f32(v);
        if a > amax {
            amax = a;
        }
    }
    let d = f16_to_f32(f32_to_f16(amax / 127.0));
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut q = [0i8; QK];
    for (q, &v) in q.iter_mut().zip(x) {
        // |v·id| ≤ 127 up to a rounding, so the cast does not clamp
        *q = round_half_even(v * id) as i8;
    }
    (q, d)
}

/// Quantizes `x` (`x.len()` a multiple of 32) into `scratch_bytes(x.len())` bytes of `xs`.
pub fn quantize_x<B: Block>(x: &[f32], xs: &mut [u8]) {
    assert!(x.len() % QK == 0, "block-quantized rows need a multiple of 32 values");
    let xs = &mut xs[..scratch_bytes(x.len())];
    for (blk, rec) in x.chunks_exact(QK).zip(xs.chunks_exact_mut(XREC)) {
        let (q, d) = quantize_block(blk);
        B::arrange_x(&q, rec);
        // exact: d_x is 0 or at least 2^-24 (an f16), so d_x/256 stays a normal f32
        rec[48..52].copy_from_slice(&(d * B::DX_SCALE).to_le_bytes());
        rec[52..].fill(0);
    }
}

/// The dots of `R` rows with the quantized x, all in one pass over the blocks (the x record of a
/// block is loaded once for all rows). Per row: `acc = acc + f32(S_b)·(f16(d_w)·d_x)` for each block b
/// in order, from 0.0, `S_b` the exact block sum (see the module comment; with `DX_SCALE` folded into
/// both factors, which changes no bit). A row's result does not depend on `R` (1, 2, 4 or 8).
/// With `R` a multiple of 4, each row's block sum is followed by an ordering store into its record
/// (byte 52), which keeps V8 from loading all rows' quants before any arithmetic (spills).
/// # Safety
/// Each row must hold `nb` blocks; `xs` must hold `nb` records from `quantize_x::<B>`, writable.
#[inline(always)]
unsafe fn dot_rows<B: Block, const R: usize>(rows: [*const u8; R], xs: *mut u8, nb: usize) -> [f32; R] {
    let mut out = [0.0f32; R];
    assert!(R <= 8);
    if R % 4 == 0 {
        // one lane per row: the block sums of four rows reduced into one vector. The scales are
        // decoded for finite halves only; rows with an inf or NaN scale are redone below.
        let mut acc = [F32x4::zero(); 2];
        let mut exps = I16x8::zero();
        for b in 0..nb {
            let xr = xs.add(b * XREC);
            let dx = F32x4::splat(f32::from_le_bytes(*(xr.add(48) as *const [u8; 4])));
            for g in 0..R / 4 {
                let blk = |r: usize| rows[4 * g + r].add(b * B::BYTES);
                let (dw, raw) = F32x4::load_f16_lanes_finite([blk(0), blk(1), blk(2), blk(3)]);
                exps = raw.max_magnitude(exps);
                let fence = xr.add(52);
                let sum = |r: usize| {
                    let v = B::block_sum(blk(r).add(2), xr);
                    v.fence_store(fence);
                    v
                };
                let (s0, s1, s2, s3) = (sum(0), sum(1), sum(2), sum(3));
                let mut s = I32x4::sum4(s0, s1, s2, s3);
                s.fence_store(fence);
                if B::CORRECTED {
                    s = s.sub(I32x4::load(xr.add(32)));
                }
                acc[g] = acc[g] + s.to_f32() * (dw * dx);
            }
        }
        if exps.any_inf_or_nan_magnitude() {
            for r in 0..R {
                out[r] = dot_rows::<B, 1>([rows[r]], xs, nb)[0];
            }
        } else {
            for r in 0..R {
                out[r] = acc[r / 4].to_array()[r % 4];
            }
        }
    } else {
        for b in 0..nb {
            let xr = xs.add(b * XREC);
            let dx = f32::from_le_bytes(*(xr.add(48) as *const [u8; 4]));
            let corr = if B::CORRECTED { i32::from_le_bytes(*(xr.add(32) as *const [u8; 4])) } else { 0 };
            for r in 0..R {
                let blk = rows[r].add(b * B::BYTES);
                let dw = f16_to_f32(u16::from_le_bytes([*blk, *blk.add(1)]));
                let s = B::block_sum(blk.add(2), xr).sum_lanes().wrapping_sub(corr);
                out[r] += s as f32 * (dw * dx);
            }
        }
    }
    out
}

/// THE dot of one block-quantized row with a quantized x (`xs` from `quantize_x::<B>`); the
/// matvec and `ffn_bundled` both use it, so their results are bit-identical.
#[inline]
pub fn dot_block<B: Block>(row: &[u8], xs: &[u8], cols: usize) -> f32 {
    let nb = cols / QK;
    assert!(row.len() >= nb * B::BYTES && xs.len() >= nb * XREC);
    // SAFETY: lengths checked above.
    // (one row at a time writes nothing to xs)
    unsafe { dot_rows::<B, 1>([row.as_ptr()], xs.as_ptr() as *mut u8, nb)[0] }
}

/// `out[i] = dot_block(rows[i])` bit for bit, for up to 8 rows (a group of neurons' gate and up
/// rows): 8 rows in one pass over the x records, then 4, then one at a time.
pub fn dot_block_rows<B: Block>(out: &mut [f32], rows: &[&[u8]], xs: &mut [u8], cols: usize) {
    let (nb, n) = (cols / QK, rows.len());
    assert!(n <= 8 && out.len() >= n && xs.len() >= nb * XREC);
    assert!(rows.iter().all(|r| r.len() >= nb * B::BYTES));
    let p = |i: usize| rows[i].as_ptr();
    let xs = xs.as_mut_ptr();
    let mut i = 0;
    // SAFETY: every row holds nb blocks and xs nb records (checked above).
    unsafe {
        if n == 8 {
            out[..8].copy_from_slice(&dot_rows::<B, 8>([0, 1, 2, 3, 4, 5, 6, 7].map(p), xs, nb));
            i = 8;
        }
        if n - i >= 4 {
            out[i..i + 4].copy_from_slice(&dot_rows::<B, 4>([p(i), p(i + 1), p(i + 2), p(i + 3)], xs, nb));
            i += 4;
        }
        while i < n {
            out[i] = dot_rows::<B, 1>([p(i)], xs, nb)[0];
            i += 1;
        }
    }
}

/// `out[i] = dot_block(row i, quantize_x(x))` with `rows = out.len()`, `cols = x.len()` (a multiple
/// of 32); `w` holds the rows back to back; `xs` is scratch of `scratch_bytes(cols)` bytes.
/// Rows go eight, then four at a time through `dot_rows` (same per-row result as one at a time).
pub fn matvec_block<B: Block>(out: &mut [f32], w: &[u8], x: &[f32], xs: &mut [u8]) {
    let cols = x.len();
    quantize_x::<B>(x, xs);
    let (nb, rb) = (cols / QK, row_bytes::<B>(cols));
    let w = &w[..out.len() * rb];
    let (xs, wp) = (xs.as_mut_ptr(), w.as_ptr());
    let mut i = 0;
    // SAFETY: `w` holds out.len() rows of `rb` bytes (sliced above), xs has nb records.
    unsafe {
        while i + 8 <= out.len() {
            let r = dot_rows::<B, 8>([0, 1, 2, 3, 4, 5, 6, 7].map(|k| wp.add((i + k) * rb)), xs, nb);
            out[i..i + 8].copy_from_slice(&r);
            i += 8;
        }
        while i + 4 <= out.len() {
            let r = dot_rows::<B, 4>([wp.add(i * rb), wp.add((i + 1) * rb), wp.add((i + 2) * rb), wp.add((i + 3) * rb)], xs, nb);
            out[i..i + 4].copy_from_slice(&r);
            i += 4;
        }
        while i < out.len() {
            out[i] = dot_rows::<B, 1>([wp.add(i * rb)], xs, nb)[0];
            i += 1;
        }
    }
}

/// The scalar twin of `matvec_block`: the same quantized x, then per row one running f32 sum of
/// `f32(Σ_j w_j·x_j)·(f16(d_w)·d_x)` over the blocks, in natural order, no SIMD.
#[inline(never)]
pub fn matvec_block_scalar<B: Block>(out: &mut [f32], w: &[u8], x: &[f32]) {
    let cols = x.len();
    assert!(cols % QK == 0);
    let rb = row_bytes::<B>(cols);
    for (i, o) in out.iter_mut().enumerate() {
        let row = &w[i * rb..(i + 1) * rb];
        let mut s = 0.0f32;
        for (blk, xb) in row.chunks_exact(B::BYTES).zip(x.chunks_exact(QK)) {
            let (q, dx) = quantize_block(xb);
            let dw = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
            let sum: i32 = (0..QK).map(|j| B::weight(&blk[2..], j) * q[j] as i32).sum();
            s += sum as f32 * (dw * dx);
        }
        *o = s;
    }
}

/// `out[c] = out[c] + a·w[c]` with `w[c]` the exactly dequantized value of a Q8_0 row
/// (`d·q` in f32 is exact), so it equals `axpy::add_scaled` over the dequantized row bit for bit.
#[inline]
pub fn add_scaled_q8_0(out: &mut [f32], a: f32, row: &[u8]) {
    let nb = out.len() / QK;
    assert!(out.len() % QK == 0 && row.len() >= nb * Q8_0::BYTES);
    let av = F32x4::splat(a);
    for b in 0..nb {
        let blk = &row[b * Q8_0::BYTES..];
        let d = F32x4::splat(f16_to_f32(u16::from_le_bytes([blk[0], blk[1]])));
        for half in 0..2 {
            // SAFETY: 16 of the block's 32 quants; 16 values of out (b·32 + half·16 + 16 ≤ len).
            unsafe {
                let q = F32x4::load_i8x16(blk.as_ptr().add(2 + 16 * half) as *const i8);
                let o = out.as_mut_ptr().add(b * QK + 16 * half);
                for (g, qv) in q.iter().enumerate() {
                    (F32x4::load_ptr(o.add(4 * g)) + av * (d * *qv)).store_ptr(o.add(4 * g));
                }
            }
        }
    }
}

/// `add_scaled` over a dequantized Q4_0 row: `w[c] = d·(n_c − 8)`, exact in f32.
#[inline]
pub fn add_scaled_q4_0(out: &mut [f32], a: f32, row: &[u8]) {
    let nb = out.len() / QK;
    assert!(out.len() % QK == 0 && row.len() >= nb * Q4_0::BYTES);
    let av = F32x4::splat(a);
    for b in 0..nb {
        let blk = &row[b * Q4_0::BYTES..];
        let d = F32x4::splat(f16_to_f32(u16::from_le_bytes([blk[0], blk[1]])));
        // SAFETY: the block's 16 quant bytes; 32 values of out.
        unsafe {
            let v = I16x8::load_u16(blk.as_ptr().add(2));
            // per byte: low nibbles are values 0..16, high nibbles values 16..32
            // (n − 8 is exact in the conversion)
            let halves = [v.and(0x0F0F).u8_minus_to_f32(8.0), v.shr(4).and(0x0F0F).u8_minus_to_f32(8.0)];
            for (h, n) in halves.iter().enumerate() {
                let o = out.as_mut_ptr().add(b * QK + 16 * h);
                for (g, nv) in n.iter().enumerate() {
                    (F32x4::load_ptr(o.add(4 * g)) + av * (d * *nv)).store_ptr(o.add(4 * g));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::axpy::add_scaled;
    use crate::testutil::*;

    /// Random rows of `B` blocks: scales like real weights (~1e-3..1e-2, some subnormal or zero),
    /// quants uniform.
    fn random_rows<B: Block>(rng: &mut Rng, rows: usize, cols: usize) -> Vec<u8> {
        let mut w = Vec::new();
        for _ in 0..rows * cols / QK {
            let d = match rng.below(20) {
                0 => 0u16,
                1 => (rng.next_u64() as u16) & 0x83FF,
                _ => f32_to_f16(rng.range(-0.02, 0.02)),
            };
            w.extend(d.to_le_bytes());
            for _ in 0..B::BYTES - 2 {
                w.push(rng.next_u64() as u8);
            }
        }
        w
    }

    /// Row i dequantized (f64 from the definition in ggml-common.h).
    fn dequant<B: Block>(w: &[u8], cols: usize, i: usize) -> Vec<f64> {
        let row = &w[i * row_bytes::<B>(cols)..];
        (0..cols)
            .map(|c| {
                let blk = &row[c / QK * B::BYTES..];
                f16_to_f32(u16::from_le_bytes([blk[0], blk[1]])) as f64 * B::weight(&blk[2..], c % QK) as f64
            })
            .collect()
    }

    /// The documented order of `dot_rows`, from ggml's definition with i64 block sums: one f32
    /// running sum per row over the blocks in order.
    fn spec_order<B: Block>(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = 0.0f32;
        for (blk, xb) in row.chunks_exact(B::BYTES).zip(x.chunks_exact(QK)) {
            let (q, dx) = quantize_block(xb);
            let s: i64 = (0..QK).map(|j| B::weight(&blk[2..], j) as i64 * q[j] as i64).sum();
            acc += s as f32 * (f16_to_f32(u16::from_le_bytes([blk[0], blk[1]])) * dx);
        }
        acc
    }

    #[test]
    fn x_is_quantized_as_llama_cpp_does() {
        let mut rng = Rng::new(70);
        for _ in 0..200 {
            let scale = [1e-3f32, 1.0, 50.0][rng.below(3)];
            let mut x = rng.vec(QK, -scale, scale);
            if rng.below(4) == 0 {
                x[rng.below(QK)] = 0.5 * scale; // ties in x·127/amax are rare; exact halves below
            }
            let (q, d) = quantize_block(&x);
            let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert_eq!(d, f16_to_f32(f32_to_f16(amax / 127.0)));
            let id = 127.0f32 / amax;
            for j in 0..QK {
                let v = (x[j] * id) as f64;
                assert!((q[j] as f64 - v).abs() <= 0.5, "q {} for {v}", q[j]);
                assert!((q[j] as i32).abs() <= 127);
                // x is recovered within half a step plus what the f16 rounding of d moved
                // (2^-11 relative for normal halves; tiny x blocks get subnormal, coarser d's)
                let exact_d = amax as f64 / 127.0;
                let err = (x[j] as f64 - d as f64 * q[j] as f64).abs();
                let bound = exact_d * 0.5 * 1.0001 + (q[j] as f64).abs() * (d as f64 - exact_d).abs();
                assert!(err <= bound, "x {} err {err} > {bound}", x[j]);
            }
        }
        // ties go to even: with amax 127, x·id = x exactly
        let mut x = [0.0f32; QK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x[3] = 0.5;
        let (q, d) = quantize_block(&x);
        assert_eq!((q[0], q[1], q[2], q[3], d), (127, 2, -4, 0, 1.0));
        assert_eq!(quantize_block(&[0.0; QK]), ([0; QK], 0.0));
    }

    fn check_matvec<B: Block>(seed: u64) {
        let mut rng = Rng::new(seed);
        let shapes: &[(usize, usize)] =
            &[(1, 32), (3, 32), (4, 64), (5, 96), (7, 160), (9, 1024), (6, 1056), (3, 4096), (2, 11008)];
        for &(rows, cols) in shapes {
            // one byte into the buffer: rows start at odd addresses
            let mut buf = vec![0xA5u8];
            buf.extend(random_rows::<B>(&mut rng, rows, cols));
            let w = &buf[1..];
            let x = rng.vec(cols, -2.0, 2.0);
            let mut out = guarded_f32(rows);
            let mut xs = Guarded::new(scratch_bytes(cols), 0u8, 0x5Au8);
            matvec_block::<B>(out.inner_mut(), w, &x, xs.inner_mut());
            out.check();
            xs.check();
            let mut twin = vec![0.0f32; rows];
            matvec_block_scalar::<B>(&mut twin, w, &x);
            for i in 0..rows {
                let got = out.inner()[i];
                let rb = row_bytes::<B>(cols);
                assert_eq!(got.to_bits(), spec_order::<B>(&w[i * rb..(i + 1) * rb], &x).to_bits(), "{rows}x{cols} row {i} order");
                assert_eq!(got.to_bits(), dot_block::<B>(&w[i * rb..], xs.inner(), cols).to_bits(), "dot_block");
                assert_eq!(got.to_bits(), twin[i].to_bits(), "{rows}x{cols} row {i}: SIMD vs scalar twin");
                // any group of rows, in any order, through dot_block_rows (8, 4 or 1 at a time)
                for n in [1usize, 2, 5, 8] {
                    let idx: Vec<usize> = (0..n).map(|k| (i + 3 * k) % rows).collect();
                    let group: Vec<&[u8]> = idx.iter().map(|&r| &w[r * rb..(r + 1) * rb]).collect();
                    let mut got_n = vec![0.0f32; n];
                    dot_block_rows::<B>(&mut got_n, &group, xs.inner_mut(), cols);
                    for (k, &r) in idx.iter().enumerate() {
                        assert_eq!(got_n[k].to_bits(), out.inner()[r].to_bits(), "dot_block_rows n={n}");
                    }
                }
                // float64 over the dequantized weights and the unquantized x: each x_j is off by at
                // most d_x,b·(1/2 + 127/2048); f32 roundings add a few ulp of Σ|w·x|
                let wd = dequant::<B>(w, cols, i);
                let want: f64 = wd.iter().zip(&x).map(|(a, b)| a * *b as f64).sum();
                let abs: f64 = wd.iter().zip(&x).map(|(a, b)| (a * *b as f64).abs()).sum();
                let qerr: f64 = wd
                    .chunks(QK)
                    .zip(x.chunks(QK))
                    .map(|(wb, xb)| {
                        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
                        wb.iter().map(|v| v.abs()).sum::<f64>() * amax / 127.0 * (0.5 + 127.0 / 2048.0) * 1.001
                    })
                    .sum();
                let tol = qerr + 1e-5 * abs + 1e-30;
                assert!((got as f64 - want).abs() <= tol, "{rows}x{cols} row {i}: {got} vs {want} (tol {tol})");
                assert!((twin[i] as f64 - want).abs() <= tol, "twin {rows}x{cols} row {i}");
            }
        }
    }

    #[test]
    fn matvec_q8_0_matches_f64_its_order_and_its_scalar_twin() {
        check_matvec::<Q8_0>(71);
    }

    #[test]
    fn matvec_q4_0_matches_f64_its_order_and_its_scalar_twin() {
        check_matvec::<Q4_0>(72);
    }

    /// Rows with an inf or NaN block scale (a damaged or adversarial file) give what the scalar twin
    /// gives (the four-row pass decodes finite scales only and redoes such a group exactly), and
    /// their neighbours are not disturbed.
    fn check_special_scales<B: Block>(seed: u64) {
        let mut rng = Rng::new(seed);
        let (rows, cols) = (9, 256);
        for special in [0x7C00u16, 0xFC00, 0x7E00, 0x7C01] {
            let mut w = random_rows::<B>(&mut rng, rows, cols);
            let (r, b) = (rng.below(rows), rng.below(cols / QK));
            let at = r * row_bytes::<B>(cols) + b * B::BYTES;
            w[at..at + 2].copy_from_slice(&special.to_le_bytes());
            let x = rng.vec(cols, -2.0, 2.0);
            let mut out = vec![0.0f32; rows];
            let mut xs = vec![0u8; scratch_bytes(cols)];
            matvec_block::<B>(&mut out, &w, &x, &mut xs);
            let mut twin = vec![0.0f32; rows];
            matvec_block_scalar::<B>(&mut twin, &w, &x);
            for i in 0..rows {
                if twin[i].is_nan() {
                    assert!(out[i].is_nan(), "row {i}: {} vs NaN", out[i]);
                } else {
                    assert_eq!(out[i].to_bits(), twin[i].to_bits(), "row {i} (scale {special:#x} in row {r})");
                }
            }
            assert!(!twin[r].is_finite() || special != 0x7C00 && special != 0xFC00, "the special scale had no effect");
        }
    }

    #[test]
    fn inf_and_nan_scales_match_the_scalar_twin() {
        check_special_scales::<Q8_0>(75);
        check_special_scales::<Q4_0>(76);
    }

    #[test]
    fn extreme_quants_do_not_overflow() {
        // every product at its maximum magnitude, all of one sign: Q8_0 −128·−127, Q4_0 −8·−127 and
        // 7·127; five rows, so both the four-row and the one-row paths see them
        let (rows, cols) = (5, 11008);
        let one = f32_to_f16(1.0).to_le_bytes();
        let row = |fill: u8, n: usize| -> Vec<u8> {
            (0..rows * cols / QK).flat_map(|_| one.iter().copied().chain(core::iter::repeat(fill).take(n))).collect()
        };
        let mut xs = vec![0u8; scratch_bytes(cols)];
        let mut out = [0.0f32; 5];
        let dx = f16_to_f32(f32_to_f16(1.0 / 127.0)) as f64;
        for (fill, xv, m) in [(0x80u8, -1.0f32, 128.0), (0x00, -1.0, 8.0), (0xFF, 1.0, 7.0)] {
            let x = vec![xv; cols];
            if m == 128.0 {
                matvec_block::<Q8_0>(&mut out, &row(fill, 32), &x, &mut xs);
            } else {
                matvec_block::<Q4_0>(&mut out, &row(fill, 16), &x, &mut xs);
            }
            let want = cols as f64 * m * 127.0 * dx;
            for o in out {
                assert!((o as f64 - want).abs() <= 1e-5 * want, "{o} vs {want}");
            }
        }
    }

    fn check_add_scaled<B: Block>(seed: u64, f: fn(&mut [f32], f32, &[u8])) {
        let mut rng = Rng::new(seed);
        for &n in &[32usize, 64, 96, 288, 4096] {
            let init = rng.vec(n, -3.0, 3.0);
            let mut buf = vec![0u8];
            buf.extend(random_rows::<B>(&mut rng, 1, n));
            let a = rng.range(-2.0, 2.0);
            let mut out = Guarded::from(&init, F32_SENTINEL);
            f(out.inner_mut(), a, &buf[1..]);
            out.check();
            let deq: Vec<f32> = dequant::<B>(&buf[1..], n, 0).iter().map(|v| *v as f32).collect();
            let mut want = init.clone();
            add_scaled(&mut want, a, &deq);
            assert_bits_eq(out.inner(), &want, "add_scaled over dequantized blocks");
        }
    }

    #[test]
    fn add_scaled_of_blocks_is_add_scaled_over_the_dequantized_row() {
        check_add_scaled::<Q8_0>(73, add_scaled_q8_0);
        check_add_scaled::<Q4_0>(74, add_scaled_q4_0);
    }
}
