//! The Web Worker that runs the model (trunk `data-type="worker"`).
fn main() {
    #[cfg(target_arch = "wasm32")]
    multitag_web::worker::start();
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("the multitag worker is a wasm binary: build it with `trunk build` from the repository root");
}
