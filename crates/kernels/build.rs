// The precompiled `core` of the wasm32 target carries ~1.7 MB of DWARF that the release profile
// keeps; strip it at link time so the module is only its code (the `name` section stays, for
// readable stack traces in the browser).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-cdylib-link-arg=--strip-debug");
    }
}
