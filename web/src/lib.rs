//! multitag-web: the browser app. A Leptos (client-side rendered) page where a person pastes
//! product titles and sees their entities, compares titles with descriptions, or pastes sentences
//! and sees their entities and the relations between them, and a Web Worker that owns the models
//! (the same `multitag_model::Predictor` and `SpanExtractor` as `trainer tag`, built from the GGUF
//! files `trainer export` writes), whose encoder runs on WebGPU when the browser has it
//! (`multitag-gpu`, in `gpu`) and on the CPU otherwise. Both are wasm binaries built by trunk from
//! the repository root.
//!
//! `protocol` (the messages between page and worker) and `view` (the page's pure logic) build
//! natively so they are unit-tested with the rest of the workspace; the rest is wasm32 only.
pub mod protocol;
pub mod view;

#[cfg(target_arch = "wasm32")]
pub mod client;
#[cfg(target_arch = "wasm32")]
pub mod fetch;
#[cfg(target_arch = "wasm32")]
pub mod gpu;
#[cfg(target_arch = "wasm32")]
pub mod ui;
#[cfg(target_arch = "wasm32")]
pub mod worker;
