//! flashllm kernels: f32 / int8 kernels for LLM inference, compiled to one
//! `wasm32-unknown-unknown` module with `simd128` (see `ABI.md` for the C ABI).
//!
//! The kernels are written once against the small vector layer in [`simd`]. On wasm32 that layer
//! is `core::arch::wasm32` simd128; everywhere else it is a scalar emulation that performs the same
//! IEEE operations in the same order, so native `cargo test` results are bit-identical to wasm.
//!
//! The safe Rust API below (slices) is what the tests exercise; `exports` (wasm32 only) is the thin
//! layer turning the ABI's `u32` offsets into slices.

#![cfg_attr(not(test), no_std)]
// Index loops are kept where they mirror the maths (and in the test references).
#![allow(clippy::needless_range_loop)]

// Native, non-test builds (e.g. `cargo build` on the host) link std for its panic runtime and
// `sqrt`; the wasm module stays `core`-only.
#[cfg(all(not(test), not(target_arch = "wasm32")))]
extern crate std;

#[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
compile_error!("flashllm-kernels needs simd128: build with RUSTFLAGS=\"-C target-feature=+simd128\"");

pub mod activation;
pub mod alloc;
pub mod attention;
pub mod axpy;
pub mod crc32;
pub mod dot;
pub mod elementwise;
pub mod ffn;
pub mod half;
pub mod math;
pub mod memread;
pub mod matvec;
pub mod norm;
pub mod qblock;
pub mod quant;
pub mod rope;
pub mod simd;

#[cfg(target_arch = "wasm32")]
mod exports;

#[cfg(test)]
mod testutil;

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Ignoring the PanicInfo lets LTO drop all of core::fmt from the module.
    core::arch::wasm32::unreachable()
}
