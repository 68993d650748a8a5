//! What the page says about the model: the badge in the header (`#model-status`, whose data
//! attributes the end-to-end tests and the benchmark wait on), and, when the model cannot be
//! loaded, a panel above the views that says why and which commands make one (`#model-error`).
use leptos::prelude::*;

use super::model::{ModelContext, ModelState};
use crate::client::pool;
use crate::protocol::LoadErrorKind;
use crate::view::{format_bytes, format_ms, MAKE_MODEL_COMMANDS};

#[component]
pub fn ModelStatus() -> impl IntoView {
    let models = expect_context::<ModelContext>();
    let data_state = move || match models.model.get() {
        ModelState::Starting => "starting",
        ModelState::Loading { .. } => "loading",
        ModelState::Ready(_) => "ready",
        ModelState::Failed(_) | ModelState::Crashed(_) => "failed",
    };
    let ready_info = move || match models.model.get() {
        ModelState::Ready(info) => Some(info),
        _ => None,
    };
    let body = move || match models.model.get() {
        ModelState::Starting => {
            view! { <span class="dot pending"></span> "Starting the model worker…" }.into_any()
        }
        ModelState::Loading {
            file,
            loaded,
            total,
            from_cache,
        } => {
            let label = match total {
                Some(t) => format!("{} / {}", format_bytes(loaded), format_bytes(t)),
                None => format_bytes(loaded),
            };
            let source = if from_cache { " (from cache)" } else { "" };
            view! {
                <span class="dot pending"></span>
                <span class="loading-text">{format!("Loading {file}{source}: {label}")}</span>
                <progress
                    id="load-progress"
                    max=total.unwrap_or(0).max(1).to_string()
                    value=loaded.to_string()
                ></progress>
            }
            .into_any()
        }
        ModelState::Ready(info) => {
            let quant = info
                .quantization()
                .map(|q| format!(" · {q}"))
                .unwrap_or_default();
            let source = if info.from_cache() {
                "from cache"
            } else {
                "downloaded"
            };
            let load = models
                .load_ms
                .get()
                .map(|ms| format!(" in {}", format_ms(ms)))
                .unwrap_or_default();
            view! {
                <span class="dot ok"></span>
                {format!(
                    "Model ready{quant} · {} {source}{load}",
                    format_bytes(info.total_bytes()),
                )}
            }
            .into_any()
        }
        ModelState::Failed(_) | ModelState::Crashed(_) => {
            view! { <span class="dot bad"></span> "Model not loaded" }.into_any()
        }
    };
    view! {
        <div
            id="model-status"
            class="model-status"
            role="status"
            data-state=data_state
            data-load-ms=move || models.load_ms.get().map(|v| format!("{v:.1}")).unwrap_or_default()
            data-bytes=move || ready_info().map(|i| i.total_bytes().to_string()).unwrap_or_default()
            data-from-cache=move || ready_info().map(|i| i.from_cache().to_string()).unwrap_or_default()
            data-fetch-ms=move || ready_info().map(|i| format!("{:.1}", i.fetch_ms)).unwrap_or_default()
            data-parse-ms=move || ready_info().map(|i| format!("{:.1}", i.parse_ms)).unwrap_or_default()
            data-workers=move || models.taggers.get().to_string()
            data-pool-size=move || pool().map(|p| p.size()).unwrap_or(0).to_string()
        >
            {body}
        </div>
    }
}

#[component]
pub fn ModelErrorPanel() -> impl IntoView {
    let models = expect_context::<ModelContext>();
    move || {
        let (headline, detail, kind) = match models.model.get() {
            ModelState::Failed(error) => {
                let headline = match error.kind {
                    LoadErrorKind::Missing => "The model files are missing.",
                    LoadErrorKind::Corrupt => "The model files could not be read.",
                    LoadErrorKind::Network => "The model files could not be fetched.",
                    LoadErrorKind::WrongTask => "The served model is not a tagger.",
                };
                let kind = error_kind_name(error.kind);
                (headline, error.message, kind)
            }
            ModelState::Crashed(message) => ("The model worker stopped.", message, "crashed"),
            _ => return None,
        };
        Some(view! {
            <section id="model-error" class="card error-panel" role="alert" data-kind=kind>
                <h2>{headline}</h2>
                <p>
                    "This page needs an exported model next to it: "
                    <code>"model/manifest.json"</code> ", " <code>"model/model.gguf"</code> " and "
                    <code>"model/tokenizer.json"</code> " (and " <code>"model/examples.json"</code>
                    " for the examples)."
                </p>
                <p class="error-detail"><code>{detail}</code></p>
                <p>"Make them from the repository root with:"</p>
                <pre class="commands"><code>{MAKE_MODEL_COMMANDS}</code></pre>
                <p>
                    "then rebuild with " <code>"trunk build --release"</code> " (or let "
                    <code>"trunk serve"</code> " pick them up) and reload this page."
                </p>
            </section>
        })
    }
}

/// The `data-kind` of a load error, for the error panels and the end-to-end tests.
pub fn error_kind_name(kind: LoadErrorKind) -> &'static str {
    match kind {
        LoadErrorKind::Missing => "missing",
        LoadErrorKind::Corrupt => "corrupt",
        LoadErrorKind::Network => "network",
        LoadErrorKind::WrongTask => "wrong-task",
    }
}
