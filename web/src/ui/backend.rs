//! Where the encoder runs, in the header: the active backend, a switch between the CPU
//! (WebAssembly) and WebGPU (offered when the browser gives an adapter), and the notice of the
//! last fallback. `#backend[data-active=cpu|webgpu][data-adapter][data-software][data-simd=relaxed|simd128]`,
//! `#backend-select`, `#backend-notice` (empty when there is none).
use leptos::prelude::*;

use super::model::ModelContext;
use crate::client::pool;
use crate::protocol::Backend;

#[component]
pub fn BackendSwitch() -> impl IntoView {
    let models = expect_context::<ModelContext>();
    let info = move || models.backend.get().unwrap_or_default();
    // Empty until the worker has said.
    let active = move || match models.backend.get().map(|i| i.active) {
        Some(Backend::Webgpu) => "webgpu",
        Some(Backend::Cpu) => "cpu",
        None => "",
    };
    let webgpu_label = move || {
        let i = info();
        match (i.adapter, i.unavailable) {
            (Some(adapter), _) if i.software => format!("WebGPU · {adapter} (software)"),
            (Some(adapter), _) => format!("WebGPU · {adapter}"),
            (None, Some(why)) => format!("WebGPU · not available: {why}"),
            (None, None) => "WebGPU".to_string(),
        }
    };
    let cpu_label = move || {
        if info().relaxed_simd {
            "CPU (WebAssembly, relaxed SIMD)"
        } else {
            "CPU (WebAssembly)"
        }
    };
    let on_change = move |event: leptos::ev::Event| {
        let backend = match event_target_value(&event).as_str() {
            "webgpu" => Backend::Webgpu,
            _ => Backend::Cpu,
        };
        if let Some(pool) = pool() {
            pool.set_backend(backend);
        }
    };
    view! {
        <div
            id="backend"
            class="backend"
            data-active=active
            data-adapter=move || info().adapter.unwrap_or_default()
            data-software=move || info().software.to_string()
            data-simd=move || if info().relaxed_simd { "relaxed" } else { "simd128" }
        >
            <label for="backend-select">"Encoder on"</label>
            <select id="backend-select" on:change=on_change prop:value=active>
                <option value="cpu">{cpu_label}</option>
                <option value="webgpu" disabled=move || info().adapter.is_none()>
                    {webgpu_label}
                </option>
            </select>
            <span id="backend-notice" class="backend-notice" role="status">
                {move || info().notice.unwrap_or_default()}
            </span>
        </div>
    }
}
