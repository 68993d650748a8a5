//! The page (trunk `data-type="main"`).
fn main() {
    #[cfg(target_arch = "wasm32")]
    multitag_web::ui::start();
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!(
        "the multitag page is a wasm binary: build it with `trunk build` from the repository root"
    );
}
