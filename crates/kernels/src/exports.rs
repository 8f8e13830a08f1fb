//! The C ABI of ABI.md (wasm32 only): `u32` byte offsets into linear memory become slices or
//! pointers, counts become lengths, and codes become enums. No kernel logic lives here.
//!
//! Invalid codes (`dtype`, `act`) and inconsistent shapes trap (`unreachable`) rather than give
//! silently wrong results.

use crate::alloc::{Heap, WasmMemory};
use crate::attention::AttnShape;
use crate::ffn::{Act, BundleFormat, Dtype};
use crate::qblock::{row_bytes, scratch_bytes, Block, Q4_0, Q8_0, QK};
use crate::quant::padded_len;
use core::ptr::{addr_of, addr_of_mut};
use core::slice;

extern "C" {
    /// First byte after the data segments and stack, placed by the linker.
    static __heap_base: u8;
}

static mut HEAP: Heap<WasmMemory> = Heap::new(WasmMemory);

fn heap() -> &'static mut Heap<WasmMemory> {
    // SAFETY: wasm32 without threads: nothing else can be using HEAP during an export call.
    unsafe {
        let h = &mut *addr_of_mut!(HEAP);
        if !h.is_ready() {
            h.init(addr_of!(__heap_base) as usize as u32);
        }
        h
    }
}

fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

// SAFETY (all helpers below): the caller (the TS side) guarantees that the offset is a live
// buffer of at least `n` elements, suitably aligned, as ABI.md requires.
unsafe fn r<'a, T>(p: u32, n: usize) -> &'a [T] {
    if n == 0 {
        &[]
    } else {
        slice::from_raw_parts(p as usize as *const T, n)
    }
}

unsafe fn w<'a, T>(p: u32, n: usize) -> &'a mut [T] {
    if n == 0 {
        &mut []
    } else {
        slice::from_raw_parts_mut(p as usize as *mut T, n)
    }
}

fn p(p: u32) -> *mut f32 {
    p as usize as *mut f32
}

fn n(v: u32) -> usize {
    v as usize
}

#[no_mangle]
pub extern "C" fn fl_alloc(size: u32, align: u32) -> u32 {
    heap().alloc(size, align)
}

#[no_mangle]
pub extern "C" fn fl_free(ptr: u32) {
    if ptr != 0 {
        heap().free(ptr)
    }
}

#[no_mangle]
pub extern "C" fn fl_heap_used() -> u32 {
    heap().used()
}

#[no_mangle]
pub extern "C" fn matvec_f32(out: u32, wt: u32, x: u32, rows: u32, cols: u32) {
    let (rows, cols) = (n(rows), n(cols));
    unsafe { crate::matvec::matvec_f32(w(out, rows), r(wt, rows * cols), r(x, cols)) }
}

#[no_mangle]
pub extern "C" fn matvec_t_f32(out: u32, wt: u32, x: u32, rows: u32, cols: u32) {
    let (rows, cols) = (n(rows), n(cols));
    unsafe { crate::matvec::matvec_t_f32(w(out, cols), r(wt, rows * cols), r(x, rows)) }
}

#[no_mangle]
pub extern "C" fn matvec_f32_scalar(out: u32, wt: u32, x: u32, rows: u32, cols: u32) {
    let (rows, cols) = (n(rows), n(cols));
    unsafe { crate::matvec::matvec_f32_scalar(w(out, rows), r(wt, rows * cols), r(x, cols)) }
}

#[no_mangle]
pub extern "C" fn matvec_q8(out: u32, wq: u32, scales: u32, x: u32, xq_scratch: u32, rows: u32, cols: u32) {
    let (rows, cols) = (n(rows), n(cols));
    unsafe {
        crate::quant::matvec_q8(
            w(out, rows),
            r(wq, rows * cols),
            r(scales, rows),
            r(x, cols),
            w(xq_scratch, padded_len(cols)),
        )
    }
}

#[no_mangle]
pub extern "C" fn matvec_f16(out: u32, wt: u32, x: u32, rows: u32, cols: u32) {
    let (rows, cols) = (n(rows), n(cols));
    unsafe { crate::half::matvec_f16(w(out, rows), r(wt, 2 * rows * cols), r(x, cols)) }
}

/// Shared by the Q8_0 and Q4_0 matvecs: `cols` must be a multiple of 32 (else trap).
fn matvec_block<B: Block>(out: u32, wt: u32, x: u32, xq_scratch: u32, rows: u32, cols: u32) {
    let (rows, cols) = (n(rows), n(cols));
    if cols % QK != 0 {
        trap();
    }
    unsafe {
        crate::qblock::matvec_block::<B>(
            w(out, rows),
            r(wt, rows * row_bytes::<B>(cols)),
            r(x, cols),
            w(xq_scratch, scratch_bytes(cols)),
        )
    }
}

#[no_mangle]
pub extern "C" fn matvec_q8_0(out: u32, wt: u32, x: u32, xq_scratch: u32, rows: u32, cols: u32) {
    matvec_block::<Q8_0>(out, wt, x, xq_scratch, rows, cols)
}

#[no_mangle]
pub extern "C" fn matvec_q4_0(out: u32, wt: u32, x: u32, xq_scratch: u32, rows: u32, cols: u32) {
    matvec_block::<Q4_0>(out, wt, x, xq_scratch, rows, cols)
}

#[no_mangle]
pub extern "C" fn rmsnorm(out: u32, x: u32, wt: u32, len: u32, eps: f32) {
    unsafe { crate::norm::rmsnorm(p(out), p(x), p(wt), n(len), eps) }
}

#[no_mangle]
pub extern "C" fn layernorm(out: u32, x: u32, wt: u32, b: u32, len: u32, eps: f32) {
    unsafe { crate::norm::layernorm(p(out), p(x), p(wt), p(b), n(len), eps) }
}

#[no_mangle]
pub extern "C" fn softmax(x: u32, len: u32) {
    unsafe { crate::activation::softmax(w(x, n(len))) }
}

#[no_mangle]
pub extern "C" fn silu(x: u32, len: u32) {
    unsafe { crate::activation::silu(w(x, n(len))) }
}

#[no_mangle]
pub extern "C" fn relu(x: u32, len: u32) {
    unsafe { crate::activation::relu(w(x, n(len))) }
}

#[no_mangle]
pub extern "C" fn fatrelu(x: u32, len: u32, threshold: f32) {
    unsafe { crate::activation::fatrelu(w(x, n(len)), threshold) }
}

#[no_mangle]
pub extern "C" fn gelu(x: u32, len: u32) {
    unsafe { crate::activation::gelu(w(x, n(len))) }
}

#[no_mangle]
pub extern "C" fn mul(out: u32, a: u32, b: u32, len: u32) {
    unsafe { crate::elementwise::mul(p(out), p(a), p(b), n(len)) }
}

#[no_mangle]
pub extern "C" fn add(out: u32, a: u32, b: u32, len: u32) {
    unsafe { crate::elementwise::add(p(out), p(a), p(b), n(len)) }
}

#[no_mangle]
pub extern "C" fn argmax(x: u32, len: u32) -> i32 {
    unsafe { crate::elementwise::argmax(r(x, n(len))) }
}

#[no_mangle]
pub extern "C" fn rope(v: u32, n_heads: u32, head_size: u32, cos: u32, sin: u32, neox: i32) {
    let (heads, hs) = (n(n_heads), n(head_size));
    unsafe { crate::rope::rope(w(v, heads * hs), heads, hs, r(cos, hs / 2), r(sin, hs / 2), neox != 0) }
}

#[no_mangle]
pub extern "C" fn attention(
    out: u32,
    q: u32,
    k_cache: u32,
    v_cache: u32,
    att: u32,
    pos: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_size: u32,
    kv_stride: u32,
) {
    let s = AttnShape {
        pos: n(pos),
        n_heads: n(n_heads),
        n_kv_heads: n(n_kv_heads),
        head_size: n(head_size),
        kv_stride: n(kv_stride),
    };
    if s.n_kv_heads == 0 || s.n_heads % s.n_kv_heads != 0 {
        trap();
    }
    let q_len = s.n_heads * s.head_size;
    unsafe {
        crate::attention::attention(
            w(out, q_len),
            r(q, q_len),
            r(k_cache, s.cache_len()),
            r(v_cache, s.cache_len()),
            w(att, s.n_heads * (s.pos + 1)),
            s,
        )
    }
}

#[no_mangle]
pub extern "C" fn ffn_bundled(
    out: u32,
    x: u32,
    dim: u32,
    slots: u32,
    slot_stride: u32,
    slot_ids: u32,
    count: u32,
    dtype: u32,
    gated: u32,
    act: u32,
    xq_scratch: u32,
    h_out: u32,
    accumulate: u32,
    act_param: f32,
) {
    let dtype = match Dtype::from_code(dtype) {
        Some(d) => d,
        None => trap(),
    };
    let act = match Act::from_code(act, act_param) {
        Some(a) => a,
        None => trap(),
    };
    let fmt = BundleFormat { dim: n(dim), dtype, gated: gated != 0, act };
    if !dtype.fits(fmt.dim) {
        trap();
    }
    let stride = n(slot_stride);
    unsafe {
        let ids: &[u32] = r(slot_ids, n(count));
        // The slot matrix's size is not passed: it spans at least up to the end of the
        // highest slot used.
        let slots_len = match ids.iter().max() {
            Some(&top) => n(top) * stride + fmt.bundle_bytes(),
            None => 0,
        };
        // i8 bundles: padded_len(dim) i16; block types: 2·dim bytes = dim i16; f32/f16: none.
        let xq: &mut [i16] = match dtype {
            Dtype::I8 => w(xq_scratch, padded_len(fmt.dim)),
            Dtype::Q8_0 | Dtype::Q4_0 => w(xq_scratch, fmt.dim),
            Dtype::F32 | Dtype::F16 => &mut [],
        };
        let h = if h_out != 0 { Some(w(h_out, n(count))) } else { None };
        crate::ffn::ffn_bundled(w(out, fmt.dim), r(x, fmt.dim), r(slots, slots_len), stride, ids, fmt, xq, h, accumulate != 0);
    }
}

#[no_mangle]
pub extern "C" fn crc32(ptr: u32, len: u32, crc_in: u32) -> u32 {
    unsafe { crate::crc32::crc32(r(ptr, n(len)), crc_in) }
}

/// For the benchmark: the wrapping sum of the u32 words of `len` bytes (a plain memory-read floor).
#[no_mangle]
pub extern "C" fn read_floor(ptr: u32, len: u32) -> u32 {
    unsafe { crate::memread::sum_words(r(ptr, n(len))) }
}

