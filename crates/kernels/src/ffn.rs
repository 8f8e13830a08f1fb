//! Sparse FFN over neuron bundles (ABI.md, "Sparse FFN over neuron bundles").
//!
//! Bundle of neuron i: `[scale_gate f32][scale_up f32][scale_down f32][bias_up f32]`, then the gate
//! row (if gated), the up row and the down column, `dim` values each, in the bundle's dtype: f32, i8
//! (value = scale·q), f16, or ggml's Q8_0 / Q4_0 blocks (the scale fields unused).

use crate::axpy::{add_i8_columns, add_scaled, add_scaled_4, add_scaled_i8};
use crate::dot::dot;
use crate::half::{add_scaled_f16, dot_f16};
use crate::math::{fatrelu_f32, gelu_f32, relu_f32, silu_f32};
use crate::qblock::{self, add_scaled_q4_0, add_scaled_q8_0, dot_block_rows, quantize_x, Q4_0, Q8_0};
use crate::quant::{dot_q8, dot_q8_pair, dot_q8_quad, padded_len, quantize_i16};
use core::slice;

pub const HEADER_BYTES: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dtype {
    F32,
    I8,
    F16,
    Q8_0,
    Q4_0,
}

impl Dtype {
    /// ABI codes: 0 f32, 1 q8 (i8 + per-vector scale), 2 f16, 3 q8_0, 4 q4_0.
    pub fn from_code(code: u32) -> Option<Dtype> {
        match code {
            0 => Some(Dtype::F32),
            1 => Some(Dtype::I8),
            2 => Some(Dtype::F16),
            3 => Some(Dtype::Q8_0),
            4 => Some(Dtype::Q4_0),
            _ => None,
        }
    }
    /// Bytes of one row of `dim` values.
    pub fn row_bytes(self, dim: usize) -> usize {
        match self {
            Dtype::F32 => 4 * dim,
            Dtype::I8 => dim,
            Dtype::F16 => 2 * dim,
            Dtype::Q8_0 => qblock::row_bytes::<Q8_0>(dim),
            Dtype::Q4_0 => qblock::row_bytes::<Q4_0>(dim),
        }
    }
    /// Whether rows of `dim` values can be stored: the block types need a multiple of 32.
    pub fn fits(self, dim: usize) -> bool {
        !matches!(self, Dtype::Q8_0 | Dtype::Q4_0) || dim % qblock::QK == 0
    }
}

/// The FFN activation. `FatRelu(t)`: `v` if `v > t`, else 0 (ProSparse). `DRelu`: gate and up both
/// through ReLU, `h = relu(g)·relu(u)` (Bamboo, TurboSparse); not gated it is plain ReLU.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Act {
    Relu,
    Silu,
    Gelu,
    FatRelu(f32),
    DRelu,
}

impl Act {
    /// ABI codes: 0 relu, 1 silu, 2 gelu, 3 fatrelu (threshold `param`), 4 drelu.
    pub fn from_code(code: u32, param: f32) -> Option<Act> {
        match code {
            0 => Some(Act::Relu),
            1 => Some(Act::Silu),
            2 => Some(Act::Gelu),
            3 => Some(Act::FatRelu(param)),
            4 => Some(Act::DRelu),
            _ => None,
        }
    }
    /// `act(v)`: what the gate (or, not gated, the up value) goes through.
    #[inline]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Act::Relu | Act::DRelu => relu_f32(v),
            Act::Silu => silu_f32(v),
            Act::Gelu => gelu_f32(v),
            Act::FatRelu(t) => fatrelu_f32(v, t),
        }
    }
    /// A gated neuron's `h` from its gate value `g` and up value `u` (bias included):
    /// `act(g)·u`, or `relu(g)·relu(u)` for dReLU.
    #[inline]
    pub fn gated(self, g: f32, u: f32) -> f32 {
        match self {
            Act::DRelu => relu_f32(g) * relu_f32(u),
            _ => self.apply(g) * u,
        }
    }
}

/// How the bundles in a slot matrix are laid out.
#[derive(Clone, Copy, Debug)]
pub struct BundleFormat {
    pub dim: usize,
    pub dtype: Dtype,
    pub gated: bool,
    pub act: Act,
}

impl BundleFormat {
    /// Bytes of one bundle (header and rows); a slot stride must be at least this.
    pub fn bundle_bytes(&self) -> usize {
        let rows = if self.gated { 3 } else { 2 };
        HEADER_BYTES + rows * self.dtype.row_bytes(self.dim)
    }
}

/// `out = Σ_k h_k·down_{s_k}` over `s_k = slot_ids[k]` in order (each `out[c]` from 0.0, one multiply
/// and one add per neuron, as `matvec_t_f32`), with `u = dot(up, x) + bias_up`,
/// `h = act(dot(gate, x))·u` (gated; dReLU: `relu(g)·relu(u)`, `Act::gated`) or `act(u)`. For i8 bundles `x` is quantized once into
/// `xq_scratch` (`padded_len(dim)` values) and the dots are `scale·xs·dot_q8` as in `matvec_q8`;
/// for Q8_0/Q4_0 bundles (`dim` a multiple of 32) it is quantized once by `qblock::quantize_x` into
/// the same scratch (`2·dim` bytes) and the dots are `dot_block`, as in `matvec_q8_0`/`matvec_q4_0`;
/// f16 dots are `dot_f16` (= `dot` over the decoded row). The down column is accumulated as
/// `add_scaled` over its exactly dequantized values, except int8 columns: those are summed in integers
/// per batch of up to `BATCH` neurons (`add_i8_down`: `h·scale` quantized to i16, as x is).
/// `slots` starts at slot 0; slot `s` is `slots[s*slot_stride..][..bundle_bytes]` and must be
/// 4-byte aligned for f32 bundles. `h_out[k] = h_k` when given. With `accumulate`, `out` is not
/// cleared first: the sums continue from its contents.
#[allow(clippy::too_many_arguments)]
pub fn ffn_bundled(
    out: &mut [f32],
    x: &[f32],
    slots: &[u8],
    slot_stride: usize,
    slot_ids: &[u32],
    fmt: BundleFormat,
    xq_scratch: &mut [i16],
    mut h_out: Option<&mut [f32]>,
    accumulate: bool,
) {
    let dim = fmt.dim;
    let (out, x) = (&mut out[..dim], &x[..dim]);
    // Accumulating continues the running sum of an earlier call over other slots: a layer whose active
    // neurons do not fit the cache at once is computed in chunks (with one pass's result when the
    // chunks are whole batches, or not int8).
    if !accumulate {
        for o in out.iter_mut() {
            *o = 0.0;
        }
    }
    assert!(fmt.dtype.fits(dim), "Q8_0/Q4_0 bundles need dim to be a multiple of 32");
    let xs = match fmt.dtype {
        Dtype::I8 => quantize_i16(x, xq_scratch),
        _ => 0.0,
    };
    // Block types quantize x into the scratch as bytes (2·dim of them; the scratch holds at least dim i16).
    // SAFETY: the same memory, u8 has no alignment or validity requirements.
    let xb = unsafe { slice::from_raw_parts_mut(xq_scratch.as_mut_ptr() as *mut u8, 2 * xq_scratch.len()) };
    match fmt.dtype {
        Dtype::Q8_0 => quantize_x::<Q8_0>(x, xb),
        Dtype::Q4_0 => quantize_x::<Q4_0>(x, xb),
        _ => {}
    }
    let xq = &xq_scratch[..if fmt.dtype == Dtype::I8 { padded_len(dim) } else { 0 }];
    let len = fmt.bundle_bytes();
    let rb = fmt.dtype.row_bytes(dim);

    // Neurons go in batches of up to BATCH: their h first (gate and up dots of up to 4 neurons per
    // pass over x), then their down columns. f32 columns are added in neuron order, four per pass
    // over `out` (`out[c] + h0·d0[c]`, then `+ h1·d1[c]`, ...: the same operations in the same order
    // as one neuron at a time); int8 columns are summed in integers (`add_i8_columns`).
    let mut k0 = 0;
    while k0 < slot_ids.len() {
        let batch = (slot_ids.len() - k0).min(BATCH);
        let mut hs = [0.0f32; BATCH];
        let mut scales = [0.0f32; BATCH];
        let mut downs: [&[u8]; BATCH] = [&[]; BATCH];
        let mut g0 = 0;
        while g0 < batch {
            let group = (batch - g0).min(4);
            // Block types: the group's gate and up rows in one pass over the x records (8 rows for 4
            // gated neurons); each dot is exactly `dot_block`'s.
            let mut bdots = [0.0f32; 8];
            if matches!(fmt.dtype, Dtype::Q8_0 | Dtype::Q4_0) {
                let mut rows: [&[u8]; 8] = [&[]; 8];
                let per = if fmt.gated { 2 } else { 1 };
                for g in 0..group {
                    let b = &slots[slot_ids[k0 + g0 + g] as usize * slot_stride..][HEADER_BYTES..len];
                    let (gate, up, _) = split_rows(b, rb, fmt.gated);
                    if fmt.gated {
                        rows[2 * g] = gate;
                    }
                    rows[per * g + per - 1] = up;
                }
                match fmt.dtype {
                    Dtype::Q8_0 => dot_block_rows::<Q8_0>(&mut bdots, &rows[..per * group], xb, dim),
                    _ => dot_block_rows::<Q4_0>(&mut bdots, &rows[..per * group], xb, dim),
                }
            }
            let mut i8_next: Option<(f32, f32)> = None; // the next neuron's int8 dots, computed with this one's
            for g in 0..group {
                let bundle = &slots[slot_ids[k0 + g0 + g] as usize * slot_stride..][..len];
                let (header, rows) = bundle.split_at(HEADER_BYTES);
                let field = |i: usize| {
                    f32::from_le_bytes([header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]])
                };
                let (scale_gate, scale_up, scale_down, bias_up) = (field(0), field(1), field(2), field(3));
                let (gate, up, down) = split_rows(rows, rb, fmt.gated);
                hs[g0 + g] = match fmt.dtype {
                    Dtype::F32 => {
                        let (gate, up) = (as_f32s(gate), as_f32s(up));
                        let u = dot(up, x) + bias_up;
                        if fmt.gated {
                            fmt.act.gated(dot(gate, x), u)
                        } else {
                            fmt.act.apply(u)
                        }
                    }
                    Dtype::I8 => {
                        let (gate, up) = (as_i8s(gate), as_i8s(up));
                        if fmt.gated {
                            // Two neurons' gate and up rows in one pass over xq (four memory streams in
                            // flight); each dot is exactly dot_q8's.
                            let (dg, du) = match i8_next.take() {
                                Some(d) => d,
                                None if g + 1 < group => {
                                    let next =
                                        &slots[slot_ids[k0 + g0 + g + 1] as usize * slot_stride..][HEADER_BYTES..len];
                                    let (gate1, up1, _) = split_rows(next, rb, true);
                                    let d = dot_q8_quad([gate, up, as_i8s(gate1), as_i8s(up1)], xq);
                                    i8_next = Some((d[2], d[3]));
                                    (d[0], d[1])
                                }
                                None => dot_q8_pair(gate, up, xq),
                            };
                            fmt.act.gated(scale_gate * xs * dg, scale_up * xs * du + bias_up)
                        } else {
                            fmt.act.apply(scale_up * xs * dot_q8(up, xq) + bias_up)
                        }
                    }
                    Dtype::F16 => {
                        let u = dot_f16(up, x) + bias_up;
                        if fmt.gated {
                            fmt.act.gated(dot_f16(gate, x), u)
                        } else {
                            fmt.act.apply(u)
                        }
                    }
                    Dtype::Q8_0 | Dtype::Q4_0 => {
                        if fmt.gated {
                            fmt.act.gated(bdots[2 * g], bdots[2 * g + 1] + bias_up)
                        } else {
                            fmt.act.apply(bdots[g] + bias_up)
                        }
                    }
                };
                scales[g0 + g] = scale_down;
                downs[g0 + g] = down;
            }
            g0 += group;
        }
        let (hs, scales, downs) = (&hs[..batch], &scales[..batch], &downs[..batch]);
        match fmt.dtype {
            Dtype::F32 => {
                for (h4, d4) in hs.chunks(4).zip(downs.chunks(4)) {
                    if h4.len() == 4 {
                        add_scaled_4(out, [h4[0], h4[1], h4[2], h4[3]], [0, 1, 2, 3].map(|g| as_f32s(d4[g])));
                    } else {
                        for (h, d) in h4.iter().zip(d4) {
                            add_scaled(out, *h, as_f32s(d));
                        }
                    }
                }
            }
            Dtype::I8 => add_i8_down(out, hs, scales, downs),
            _ => {
                for (h, down) in hs.iter().zip(downs) {
                    match fmt.dtype {
                        Dtype::F16 => add_scaled_f16(out, *h, down),
                        Dtype::Q8_0 => add_scaled_q8_0(out, *h, down),
                        _ => add_scaled_q4_0(out, *h, down),
                    }
                }
            }
        }
        if let Some(h_out) = h_out.as_deref_mut() {
            h_out[k0..k0 + batch].copy_from_slice(hs);
        }
        k0 += batch;
    }
}

/// Neurons per batch of `ffn_bundled`: the int8 down columns of a batch are summed under one scale
/// (at most `I8_COLUMNS_MAX`; a multiple of 8, so the batch's `h·scale` quantize without padding).
const BATCH: usize = 128;

/// The down projection of a batch of int8 neurons: `v_k = h_k·scale_k` quantized to i16 as
/// `quantize_i16` quantizes x (`vs = max|v|/32767`, `vq_k = round(v_k/vs)`), then
/// `out[c] += vs·(Σ_k vq_k·q_k[c])` with the sum exact in i32 (`add_i8_columns`). Neurons whose `vq`
/// is 0 add nothing and are skipped. If some `v_k` is not finite the batch is added neuron by neuron
/// in f32 (`add_scaled_i8`, `out[c] + h·(scale·q[c])`), so that inf and NaN reach `out` as they would
/// in the float definition instead of being quantized away.
fn add_i8_down(out: &mut [f32], hs: &[f32], scales: &[f32], downs: &[&[u8]]) {
    let n = hs.len();
    let mut v = [0.0f32; BATCH];
    for k in 0..n {
        v[k] = hs[k] * scales[k];
    }
    if v[..n].iter().any(|v| !v.is_finite()) {
        for k in 0..n {
            add_scaled_i8(out, hs[k], scales[k], as_i8s(downs[k]));
        }
        return;
    }
    let mut vq = [0i16; BATCH];
    let vs = quantize_i16(&v[..n], &mut vq[..padded_len(n)]);
    let mut cols = [core::ptr::null::<i8>(); BATCH];
    let mut vnz = [0i16; BATCH];
    let mut m = 0;
    for k in 0..n {
        if vq[k] != 0 {
            let col = &downs[k][..out.len()];
            cols[m] = col.as_ptr() as *const i8;
            vnz[m] = vq[k];
            m += 1;
        }
    }
    if m > 0 {
        // SAFETY: m ≤ BATCH ≤ I8_COLUMNS_MAX columns of out.len() values each (sliced above).
        unsafe { add_i8_columns(out, vs, &vnz[..m], &cols[..m]) };
    }
}

/// `(gate, up, down)`; `gate` is empty when the bundle is not gated.
fn split_rows<T>(v: &[T], dim: usize, gated: bool) -> (&[T], &[T], &[T]) {
    let (gate, rest) = v.split_at(if gated { dim } else { 0 });
    let (up, rest) = rest.split_at(dim);
    (gate, up, &rest[..dim])
}

fn as_f32s(b: &[u8]) -> &[f32] {
    assert!(b.as_ptr() as usize % 4 == 0, "f32 bundle rows must be 4-byte aligned");
    // SAFETY: aligned, in bounds, and every bit pattern is an f32.
    unsafe { slice::from_raw_parts(b.as_ptr() as *const f32, b.len() / 4) }
}

fn as_i8s(b: &[u8]) -> &[i8] {
    // SAFETY: same size and alignment.
    unsafe { slice::from_raw_parts(b.as_ptr() as *const i8, b.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{fatrelu, relu, silu};
    use crate::elementwise::mul;
    use crate::matvec::{matvec_f32, matvec_t_f32};
    use crate::qblock::Block;
    use crate::quant::matvec_q8;
    use crate::testutil::*;

    /// A dense FFN layer: gate/up `[hidden][dim]`, down `[dim][hidden]` (as in a checkpoint).
    struct Layer {
        dim: usize,
        hidden: usize,
        gate: Vec<f32>,
        up: Vec<f32>,
        down: Vec<f32>,
        bias: Vec<f32>,
    }

    impl Layer {
        fn random(rng: &mut Rng, dim: usize, hidden: usize, with_bias: bool) -> Layer {
            Layer {
                dim,
                hidden,
                gate: rng.vec(hidden * dim, -0.5, 0.5),
                up: rng.vec(hidden * dim, -0.5, 0.5),
                down: rng.vec(dim * hidden, -0.5, 0.5),
                bias: if with_bias { rng.vec(hidden, -0.5, 0.5) } else { vec![0.0; hidden] },
            }
        }
        fn down_col(&self, i: usize) -> Vec<f32> {
            (0..self.dim).map(|c| self.down[c * self.hidden + i]).collect()
        }
    }

    /// Slot matrix bytes (kept 16-byte aligned by the u128 backing store).
    struct Slots {
        store: Vec<u128>,
        stride: usize,
    }

    impl Slots {
        fn bytes(&self) -> &[u8] {
            unsafe { slice::from_raw_parts(self.store.as_ptr() as *const u8, self.store.len() * 16) }
        }
        fn bytes_mut(&mut self) -> &mut [u8] {
            unsafe { slice::from_raw_parts_mut(self.store.as_mut_ptr() as *mut u8, self.store.len() * 16) }
        }
    }

    /// Puts neuron `placement[s]` of `layer` into slot `s`, in f32.
    fn pack_f32(layer: &Layer, placement: &[usize], gated: bool, stride_pad: usize) -> Slots {
        let fmt = BundleFormat { dim: layer.dim, dtype: Dtype::F32, gated, act: Act::Silu };
        let stride = (fmt.bundle_bytes() + stride_pad + 15) / 16 * 16;
        let mut slots = Slots { store: vec![0; stride * placement.len() / 16], stride };
        let dim = layer.dim;
        for (s, &i) in placement.iter().enumerate() {
            let mut vals = vec![1.0, 1.0, 1.0, layer.bias[i]];
            if gated {
                vals.extend_from_slice(&layer.gate[i * dim..(i + 1) * dim]);
            }
            vals.extend_from_slice(&layer.up[i * dim..(i + 1) * dim]);
            vals.extend(layer.down_col(i));
            let b = &mut slots.bytes_mut()[s * stride..];
            for (j, v) in vals.iter().enumerate() {
                b[4 * j..4 * j + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        slots
    }

    /// An int8 neuron: its three quantized rows and scales.
    struct Q8Neuron {
        gate: Vec<i8>,
        up: Vec<i8>,
        down: Vec<i8>,
        scales: [f32; 3],
        bias: f32,
    }

    fn pack_q8(neurons: &[Q8Neuron], dim: usize, gated: bool) -> Slots {
        let fmt = BundleFormat { dim, dtype: Dtype::I8, gated, act: Act::Silu };
        let stride = (fmt.bundle_bytes() + 15) / 16 * 16;
        let mut slots = Slots { store: vec![0; stride * neurons.len() / 16], stride };
        for (s, n) in neurons.iter().enumerate() {
            let b = &mut slots.bytes_mut()[s * stride..];
            for (j, v) in [n.scales[0], n.scales[1], n.scales[2], n.bias].iter().enumerate() {
                b[4 * j..4 * j + 4].copy_from_slice(&v.to_le_bytes());
            }
            let mut at = HEADER_BYTES;
            let rows: Vec<&Vec<i8>> = if gated { vec![&n.gate, &n.up, &n.down] } else { vec![&n.up, &n.down] };
            for row in rows {
                for q in row {
                    b[at] = *q as u8;
                    at += 1;
                }
            }
        }
        slots
    }

    fn act_f64(act: Act, v: f64) -> f64 {
        match act {
            Act::Relu => v.max(0.0),
            Act::Silu => v / (1.0 + (-v).exp()),
            Act::Gelu => 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh()),
            // (|v| stays small in these tests, so 1 + tanh does not cancel)
            Act::FatRelu(t) => {
                if v > t as f64 {
                    v
                } else {
                    0.0
                }
            }
            Act::DRelu => v.max(0.0),
        }
    }

    /// A gated neuron's h in float64: `act(g)·u`, or `relu(g)·relu(u)` for dReLU.
    fn gated_f64(act: Act, g: f64, u: f64) -> f64 {
        match act {
            Act::DRelu => g.max(0.0) * u.max(0.0),
            _ => act_f64(act, g) * u,
        }
    }

    // A fatrelu threshold inside the range of the gate values, so both sides of it are exercised.
    const ALL_ACTS: [Act; 5] = [Act::Relu, Act::Silu, Act::Gelu, Act::FatRelu(0.05), Act::DRelu];
    const DIMS: &[(usize, usize)] = &[(1, 1), (3, 5), (7, 3), (8, 16), (17, 33), (33, 100), (64, 172), (100, 7)];

    #[test]
    fn f32_bundles_of_all_neurons_are_bit_identical_to_the_dense_path() {
        let mut rng = Rng::new(100);
        for (&(dim, hidden), act) in DIMS.iter().flat_map(|d| [Act::Silu, Act::FatRelu(0.05), Act::DRelu].map(|a| (d, a))) {
            let layer = Layer::random(&mut rng, dim, hidden, false);
            let x = rng.vec(dim, -1.0, 1.0);
            let order: Vec<usize> = (0..hidden).collect();
            let slots = pack_f32(&layer, &order, true, 0);
            let ids: Vec<u32> = (0..hidden as u32).collect();

            let mut out = guarded_f32(dim);
            let mut h_out = guarded_f32(hidden);
            let fmt = BundleFormat { dim, dtype: Dtype::F32, gated: true, act };
            ffn_bundled(out.inner_mut(), &x, slots.bytes(), slots.stride, &ids, fmt, &mut [], Some(h_out.inner_mut()), false);
            out.check();
            h_out.check();

            // matvec (gate), matvec (up), the activation in place, mul, matvec_t (down, stored
            // [dim][hidden] = the transposed form of matvec_t's [rows = hidden][cols = dim])
            let mut g = vec![0.0; hidden];
            let mut u = vec![0.0; hidden];
            matvec_f32(&mut g, &layer.gate, &x);
            matvec_f32(&mut u, &layer.up, &x);
            match act {
                Act::Silu => silu(&mut g),
                Act::FatRelu(t) => fatrelu(&mut g, t),
                _ => {
                    relu(&mut g);
                    relu(&mut u);
                }
            }
            let mut h = vec![0.0; hidden];
            unsafe { mul(h.as_mut_ptr(), g.as_ptr(), u.as_ptr(), hidden) };
            let down_t: Vec<f32> = (0..hidden).flat_map(|i| layer.down_col(i)).collect();
            let mut want = vec![0.0; dim];
            matvec_t_f32(&mut want, &down_t, &h);
            assert_bits_eq(out.inner(), &want, "ffn_bundled vs dense");
            assert_bits_eq(h_out.inner(), &h, "h_out");
        }
    }

    #[test]
    fn accumulating_in_chunks_equals_one_pass_bit_for_bit() {
        let mut rng = Rng::new(107);
        for &(dim, hidden) in DIMS {
            let layer = Layer::random(&mut rng, dim, hidden, false);
            let x = rng.vec(dim, -1.0, 1.0);
            let order: Vec<usize> = (0..hidden).collect();
            let slots = pack_f32(&layer, &order, true, 0);
            let ids: Vec<u32> = (0..hidden as u32).collect();
            let fmt = BundleFormat { dim, dtype: Dtype::F32, gated: true, act: Act::Silu };
            let mut whole = vec![0.0; dim];
            ffn_bundled(&mut whole, &x, slots.bytes(), slots.stride, &ids, fmt, &mut [], None, false);
            let mut chunked = vec![f32::NAN; dim];
            let cut = hidden / 3;
            ffn_bundled(&mut chunked, &x, slots.bytes(), slots.stride, &ids[..cut], fmt, &mut [], None, false);
            ffn_bundled(&mut chunked, &x, slots.bytes(), slots.stride, &ids[cut..], fmt, &mut [], None, true);
            assert_bits_eq(&chunked, &whole, "chunked vs one pass");
        }
    }

    #[test]
    fn f32_bundles_subset_any_order_any_act() {
        let mut rng = Rng::new(101);
        for &(dim, hidden) in DIMS {
            for gated in [true, false] {
                for act in ALL_ACTS {
                    let layer = Layer::random(&mut rng, dim, hidden, true);
                    let x = rng.vec(dim, -1.0, 1.0);
                    // slot s holds neuron placement[s]; a scrambled placement, a padded stride
                    let mut placement: Vec<usize> = (0..hidden).collect();
                    for i in (1..hidden).rev() {
                        placement.swap(i, rng.below(i + 1));
                    }
                    let slots = pack_f32(&layer, &placement, gated, 20);
                    let n = rng.below(hidden + 1);
                    let ids: Vec<u32> = (0..n).map(|_| rng.below(hidden) as u32).collect();

                    let mut out = guarded_f32(dim);
                    let mut h_out = guarded_f32(n);
                    let fmt = BundleFormat { dim, dtype: Dtype::F32, gated, act };
                    ffn_bundled(
                        out.inner_mut(),
                        &x,
                        slots.bytes(),
                        slots.stride,
                        &ids,
                        fmt,
                        &mut [],
                        Some(h_out.inner_mut()),
                        false,
                    );
                    out.check();
                    h_out.check();

                    let mut want = vec![0.0f64; dim];
                    let mut abs = vec![0.0f64; dim];
                    for (k, &s) in ids.iter().enumerate() {
                        let i = placement[s as usize];
                        let u = dot_f64(&layer.up[i * dim..(i + 1) * dim], &x) + layer.bias[i] as f64;
                        let h = if gated {
                            gated_f64(act, dot_f64(&layer.gate[i * dim..(i + 1) * dim], &x), u)
                        } else {
                            act_f64(act, u)
                        };
                        let got_h = h_out.inner()[k] as f64;
                        assert!((got_h - h).abs() <= 1e-5 * (1.0 + h.abs()), "h[{k}]: {got_h} vs {h}");
                        for c in 0..dim {
                            want[c] += h * layer.down[c * hidden + i] as f64;
                            abs[c] += (h * layer.down[c * hidden + i] as f64).abs();
                        }
                    }
                    assert_close(out.inner(), &want, |c| 1e-5 * (1.0 + abs[c]), "ffn_bundled f32");

                    // without h_out, the same bits
                    let mut again = vec![0.0; dim];
                    ffn_bundled(&mut again, &x, slots.bytes(), slots.stride, &ids, fmt, &mut [], None, false);
                    assert_bits_eq(&again, out.inner(), "no h_out");
                }
            }
        }
    }

    #[test]
    fn q8_bundles_match_matvec_q8_and_the_float_reference() {
        let mut rng = Rng::new(102);
        for &(dim, hidden) in DIMS.iter().chain(&[(1030, 5), (40, 300), (1030, 260)]) {
            for gated in [true, false] {
                for act in ALL_ACTS {
                    let neurons: Vec<Q8Neuron> = (0..hidden)
                        .map(|_| Q8Neuron {
                            gate: rng.vec_i8(dim),
                            up: rng.vec_i8(dim),
                            down: rng.vec_i8(dim),
                            scales: [rng.range(0.001, 0.01), rng.range(0.001, 0.01), rng.range(0.001, 0.01)],
                            bias: rng.range(-0.5, 0.5),
                        })
                        .collect();
                    let slots = pack_q8(&neurons, dim, gated);
                    let n = 1 + rng.below(hidden);
                    let ids: Vec<u32> = (0..n).map(|_| rng.below(hidden) as u32).collect();
                    let x = rng.vec(dim, -1.0, 1.0);

                    let mut out = guarded_f32(dim);
                    let mut h_out = guarded_f32(n);
                    let mut xq = Guarded::new(padded_len(dim), 0i16, 31111i16);
                    let fmt = BundleFormat { dim, dtype: Dtype::I8, gated, act };
                    ffn_bundled(
                        out.inner_mut(),
                        &x,
                        slots.bytes(),
                        slots.stride,
                        &ids,
                        fmt,
                        xq.inner_mut(),
                        Some(h_out.inner_mut()),
                        false,
                    );
                    out.check();
                    h_out.check();
                    xq.check();

                    // bit-exact against matvec_q8 (same quantization, same dot) for h, and for the
                    // down columns: per batch of 128 neurons, h·scale quantized to i16 by
                    // quantize_i16, the exact integer sum Σ vq·q (i64 here), scaled once.
                    let mut want = vec![0.0f32; dim];
                    let mut batch_v: Vec<(f32, &[i8])> = Vec::new();
                    let flush = |batch: &mut Vec<(f32, &[i8])>, want: &mut [f32], abs: &mut [f64]| {
                        let v: Vec<f32> = batch.iter().map(|b| b.0).collect();
                        let mut vq = vec![0i16; padded_len(v.len())];
                        let vs = quantize_i16(&v, &mut vq);
                        for c in 0..dim {
                            let exact: i64 = batch.iter().zip(&vq).map(|(b, q)| *q as i64 * b.1[c] as i64).sum();
                            want[c] += vs * exact as f32;
                            // rounding v to vs moves each term by at most vs/2·|q|
                            abs[c] += batch.iter().map(|b| b.1[c].unsigned_abs() as f64).sum::<f64>() * vs as f64 * 0.5;
                        }
                        batch.clear();
                    };
                    let mut scratch = vec![0i16; padded_len(dim)];
                    let xs = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 32767.0;
                    let mut wide = vec![0.0f64; dim];
                    let mut abs = vec![0.0f64; dim];
                    for (k, &s) in ids.iter().enumerate() {
                        let nr = &neurons[s as usize];
                        let mut u = [0.0f32];
                        matvec_q8(&mut u, &nr.up, &[nr.scales[1]], &x, &mut scratch);
                        let u = u[0] + nr.bias;
                        let h = if gated {
                            let mut g = [0.0f32];
                            matvec_q8(&mut g, &nr.gate, &[nr.scales[0]], &x, &mut scratch);
                            act.gated(g[0], u)
                        } else {
                            act.apply(u)
                        };
                        assert_eq!(h_out.inner()[k].to_bits(), h.to_bits(), "h[{k}]");
                        batch_v.push((h * nr.scales[2], &nr.down));
                        if batch_v.len() == BATCH {
                            flush(&mut batch_v, &mut want, &mut abs);
                        }

                        // float reference: dequantized weights, unquantized x
                        let deq = |q: &[i8], sc: f32| -> Vec<f32> { q.iter().map(|v| sc * *v as f32).collect() };
                        let (up, gate, down) =
                            (deq(&nr.up, nr.scales[1]), deq(&nr.gate, nr.scales[0]), deq(&nr.down, nr.scales[2]));
                        let u64_ = dot_f64(&up, &x) + nr.bias as f64;
                        let h64 = if gated { gated_f64(act, dot_f64(&gate, &x), u64_) } else { act_f64(act, u64_) };
                        // quantizing x moves each dot by at most Σ|w|·xs/2
                        let qerr = |w: &[f32]| w.iter().map(|v| v.abs() as f64).sum::<f64>() * xs as f64 * 0.5;
                        let herr = (qerr(&up) + qerr(&gate)) * 2.0 + 1e-5 * (1.0 + h64.abs());
                        assert!((h as f64 - h64).abs() <= herr, "q8 h[{k}]: {h} vs {h64}");
                        for c in 0..dim {
                            wide[c] += h64 * down[c] as f64;
                            abs[c] += down[c].abs() as f64 * (herr + h64.abs());
                        }
                    }
                    if !batch_v.is_empty() {
                        flush(&mut batch_v, &mut want, &mut abs);
                    }
                    assert_bits_eq(out.inner(), &want, "ffn_bundled q8");
                    assert_close(out.inner(), &wide, |c| abs[c] * 1.01 + 1e-6, "ffn_bundled q8 vs float");
                }
            }
        }
    }

    #[test]
    fn q8_batches_with_an_infinite_or_nan_term_keep_it_in_the_output() {
        // A down scale of inf (or NaN) must not be quantized away: its batch is added in f32 as
        // `out[c] + h·(scale·q[c])`, neuron by neuron; the other batches stay integer.
        let mut rng = Rng::new(103);
        let (dim, hidden) = (24, 300);
        for bad in [f32::INFINITY, f32::NAN] {
            let mut neurons: Vec<Q8Neuron> = (0..hidden)
                .map(|_| Q8Neuron {
                    gate: rng.vec_i8(dim),
                    up: rng.vec_i8(dim),
                    down: rng.vec_i8(dim),
                    scales: [0.01, 0.01, rng.range(0.001, 0.01)],
                    bias: 0.5,
                })
                .collect();
            neurons[140].scales[2] = bad;
            neurons[140].down = vec![3; dim];
            neurons[140].up = vec![0; dim]; // h = relu(0 + 0.5)
            let slots = pack_q8(&neurons, dim, false);
            let ids: Vec<u32> = (0..hidden as u32).collect();
            let x = rng.vec(dim, -1.0, 1.0);
            let fmt = BundleFormat { dim, dtype: Dtype::I8, gated: false, act: Act::Relu };
            let (mut out, mut h) = (vec![0.0f32; dim], vec![0.0f32; hidden]);
            let mut xq = vec![0i16; padded_len(dim)];
            ffn_bundled(&mut out, &x, slots.bytes(), slots.stride, &ids, fmt, &mut xq, Some(&mut h), false);
            assert!(h[140] > 0.0, "the test needs neuron 140 active");
            // batch 2 (neurons 128..256) in f32, one neuron at a time, after batch 1 in integers
            let mut want = vec![0.0f32; dim];
            let mut first = vec![0.0f32; dim];
            ffn_bundled(&mut first, &x, slots.bytes(), slots.stride, &ids[..128], fmt, &mut xq, None, false);
            want.copy_from_slice(&first);
            for k in 128..256 {
                add_scaled_i8(&mut want, h[k], neurons[k].scales[2], &neurons[k].down);
            }
            let mut rest = want.clone();
            ffn_bundled(&mut rest, &x, slots.bytes(), slots.stride, &ids[256..], fmt, &mut xq, None, true);
            assert_bits_eq(&out, &rest, "non-finite batch");
            assert!(out.iter().all(|v| !v.is_finite()), "inf/NaN reaches every output: {out:?}");
        }
    }

    /// Random raw rows of `dtype` (f16 / Q8_0 / Q4_0) and their exactly dequantized values.
    fn random_raw_row(rng: &mut Rng, dtype: Dtype, dim: usize) -> (Vec<u8>, Vec<f32>) {
        use crate::half::{f16_to_f32, f32_to_f16};
        let mut raw = Vec::new();
        let mut val = Vec::new();
        match dtype {
            Dtype::F16 => {
                for _ in 0..dim {
                    let h = f32_to_f16(rng.range(-0.5, 0.5));
                    raw.extend(h.to_le_bytes());
                    val.push(f16_to_f32(h));
                }
            }
            Dtype::Q8_0 | Dtype::Q4_0 => {
                for _ in 0..dim / 32 {
                    let d = f32_to_f16(rng.range(0.001, 0.03));
                    raw.extend(d.to_le_bytes());
                    let df = f16_to_f32(d);
                    let qs: Vec<u8> = (0..if dtype == Dtype::Q8_0 { 32 } else { 16 }).map(|_| rng.next_u64() as u8).collect();
                    for j in 0..32 {
                        let q = if dtype == Dtype::Q8_0 { Q8_0::weight(&qs, j) } else { Q4_0::weight(&qs, j) };
                        val.push(df * q as f32);
                    }
                    raw.extend(qs);
                }
            }
            _ => unreachable!(),
        }
        (raw, val)
    }

    #[test]
    fn f16_and_block_bundles_match_their_matvecs_and_the_float_reference() {
        use crate::half::matvec_f16;
        use crate::qblock::{matvec_block, scratch_bytes};
        let mut rng = Rng::new(108);
        for dtype in [Dtype::F16, Dtype::Q8_0, Dtype::Q4_0] {
            for &(dim, hidden) in &[(32, 1), (32, 9), (64, 17), (96, 5), (288, 40), (1024, 6)] {
                for gated in [true, false] {
                    let act = ALL_ACTS[rng.below(ALL_ACTS.len())];
                    // per neuron: raw rows (gate, up, down) and their values
                    let neurons: Vec<Vec<(Vec<u8>, Vec<f32>)>> =
                        (0..hidden).map(|_| (0..3).map(|_| random_raw_row(&mut rng, dtype, dim)).collect()).collect();
                    let bias: Vec<f32> = (0..hidden).map(|_| rng.range(-0.5, 0.5)).collect();
                    let fmt = BundleFormat { dim, dtype, gated, act };
                    // an odd stride pad keeps rows off any alignment
                    let stride = fmt.bundle_bytes() + 16 * rng.below(3);
                    let mut slots = Slots { store: vec![0; (stride * hidden + 15) / 16], stride };
                    let f32_fmt = BundleFormat { dim, dtype: Dtype::F32, gated, act };
                    let f32_stride = (f32_fmt.bundle_bytes() + 15) / 16 * 16;
                    let mut f32_slots = Slots { store: vec![0; f32_stride * hidden / 16], stride: f32_stride };
                    for (i, nr) in neurons.iter().enumerate() {
                        let b = &mut slots.bytes_mut()[i * stride..];
                        b[12..16].copy_from_slice(&bias[i].to_le_bytes());
                        let mut at = HEADER_BYTES;
                        let fb = &mut f32_slots.bytes_mut()[i * f32_stride..];
                        fb[..16].copy_from_slice(&[1f32.to_le_bytes(), 1f32.to_le_bytes(), 1f32.to_le_bytes(), bias[i].to_le_bytes()].concat());
                        let mut fat = HEADER_BYTES;
                        for (raw, val) in nr.iter().skip(if gated { 0 } else { 1 }) {
                            b[at..at + raw.len()].copy_from_slice(raw);
                            at += raw.len();
                            for v in val {
                                fb[fat..fat + 4].copy_from_slice(&v.to_le_bytes());
                                fat += 4;
                            }
                        }
                    }
                    let n = 1 + rng.below(hidden);
                    let ids: Vec<u32> = (0..n).map(|_| rng.below(hidden) as u32).collect();
                    let x = rng.vec(dim, -1.0, 1.0);
                    let mut out = guarded_f32(dim);
                    let mut h_out = guarded_f32(n);
                    let mut xq = Guarded::new(padded_len(dim), 0i16, 31111i16);
                    ffn_bundled(out.inner_mut(), &x, slots.bytes(), stride, &ids, fmt, xq.inner_mut(), Some(h_out.inner_mut()), false);
                    out.check();
                    h_out.check();
                    xq.check();
                    let what = format!("{dtype:?} dim {dim} gated {gated}");

                    if dtype == Dtype::F16 {
                        // f16 bundles are f32 bundles of the decoded values, bit for bit
                        let mut want = vec![0.0; dim];
                        ffn_bundled(&mut want, &x, f32_slots.bytes(), f32_stride, &ids, f32_fmt, &mut [], None, false);
                        assert_bits_eq(out.inner(), &want, &what);
                    }

                    // h from the dtype's matvec on the same rows, the down sum over the values
                    let mut want = vec![0.0f32; dim];
                    let mut wide = vec![0.0f64; dim];
                    let mut abs = vec![0.0f64; dim];
                    for (k, &s) in ids.iter().enumerate() {
                        let nr = &neurons[s as usize];
                        let mv = |row: &[u8]| -> f32 {
                            let mut o = [0.0f32];
                            let mut scratch = vec![0u8; 2 * dim];
                            match dtype {
                                Dtype::F16 => matvec_f16(&mut o, row, &x),
                                Dtype::Q8_0 => matvec_block::<Q8_0>(&mut o, row, &x, &mut scratch[..scratch_bytes(dim)]),
                                _ => matvec_block::<Q4_0>(&mut o, row, &x, &mut scratch[..scratch_bytes(dim)]),
                            }
                            o[0]
                        };
                        let u = mv(&nr[1].0) + bias[s as usize];
                        let h = if gated { act.gated(mv(&nr[0].0), u) } else { act.apply(u) };
                        assert_eq!(h_out.inner()[k].to_bits(), h.to_bits(), "{what}: h[{k}]");
                        add_scaled(&mut want, h, &nr[2].1);

                        // float64: values, unquantized x (block types: x off by ≤ 0.57·amax/127 per block)
                        let u64_ = dot_f64(&nr[1].1, &x) + bias[s as usize] as f64;
                        let h64 = if gated { gated_f64(act, dot_f64(&nr[0].1, &x), u64_) } else { act_f64(act, u64_) };
                        let qerr = |w: &[f32]| -> f64 {
                            if dtype == Dtype::F16 {
                                return 1e-6 * w.iter().map(|v| v.abs() as f64).sum::<f64>();
                            }
                            w.chunks(32).zip(x.chunks(32)).map(|(wb, xb)| {
                                let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
                                wb.iter().map(|v| v.abs() as f64).sum::<f64>() * amax / 127.0 * 0.57
                            }).sum()
                        };
                        let herr = (qerr(&nr[1].1) + qerr(&nr[0].1)) * 2.0 + 1e-5 * (1.0 + h64.abs());
                        assert!((h as f64 - h64).abs() <= herr, "{what}: h[{k}] {h} vs {h64}");
                        for c in 0..dim {
                            wide[c] += h64 * nr[2].1[c] as f64;
                            abs[c] += nr[2].1[c].abs() as f64 * (herr + h64.abs());
                        }
                    }
                    assert_bits_eq(out.inner(), &want, &what);
                    assert_close(out.inner(), &wide, |c| abs[c] * 1.01 + 1e-6, &what);

                    // in two chunks with `accumulate`: the same bits
                    let cut = n / 2;
                    let mut chunked = vec![f32::NAN; dim];
                    ffn_bundled(&mut chunked, &x, slots.bytes(), stride, &ids[..cut], fmt, xq.inner_mut(), None, false);
                    ffn_bundled(&mut chunked, &x, slots.bytes(), stride, &ids[cut..], fmt, xq.inner_mut(), None, true);
                    assert_bits_eq(&chunked, out.inner(), &what);
                }
            }
        }
    }

    #[test]
    fn no_neurons_gives_zero() {
        let mut out = Guarded::from(&[5.0f32; 9], F32_SENTINEL);
        let fmt = BundleFormat { dim: 9, dtype: Dtype::F32, gated: true, act: Act::Silu };
        ffn_bundled(out.inner_mut(), &[1.0; 9], &[], 160, &[], fmt, &mut [], None, false);
        out.check();
        assert!(out.inner().iter().all(|v| v.to_bits() == 0));
    }
}
