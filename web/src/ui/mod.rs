//! The page: a tag view (titles in, coloured entity chips out, JSONL download), a similarity
//! view (title x description cosine heat map, side by side with the baseline when one is exported)
//! and a Relations view (sentences in, entities and the relations between them out, from a
//! relation extraction model exported beside the tagger as `relations/`). All model work happens
//! in the workers (`crate::client`); this module and its children only keep state and render.
//!
//! The page is split by view, each view a component that owns its own signals:
//! - this module: the shell (`start`, `App`: header, tabs, footer) and which tab is shown;
//! - `model`: the only app-wide state, the models' loading state as the workers report it, shared
//!   through context as [`model::ModelContext`], and the start of the worker pool;
//! - `status`: the model status badge and the panel shown when the model cannot be loaded;
//! - `backend`: where the encoder runs (CPU or WebGPU), the switch, and the fallback notice;
//! - `tag`: the tag view, with its pasted text, run, result rows and legend;
//! - `similarity`: the similarity view, with its inputs and heat maps;
//! - `search`: the similarity view's search, a title against the bundled descriptions, with the
//!   descriptions' vectors it keeps and its results;
//! - `relations`: the Relations view, with its pasted sentences, run, result rows (chips and
//!   arcs), download, and the note on which model it uses;
//! - `bench`: the benchmark mode (`?bench=1`), a `window` hook and a button in the tag view;
//! - `examples`: the examples `trainer export` bundles, fetched once for both views;
//! - `browser`: small wrappers over `window` (query string, clock, timers, fetch).
//!
//! Elements carry stable ids, classes and data attributes for the end-to-end tests
//! (`tests/e2e`): `#model-status[data-state=starting|loading|ready|failed]` (with `data-load-ms`,
//! `data-bytes`, `data-from-cache` when ready, and `data-workers` / `data-pool-size`: workers with
//! the model loaded, of how many), `#model-error`, `#results > li.result`, `mark.ent[data-label]
//! [data-start][data-end]`, `table.heatmap[data-slot] td.cell[data-sim]`, `td.best`,
//! `#backend[data-active=cpu|webgpu][data-adapter][data-software]`, `#backend-select`,
//! `#backend-notice`, `#search-input`, `#search-run`, `#search-status[data-running]`,
//! `#search-results[data-count][data-catalog] > li.search-hit[data-rank][data-index][data-score][data-own]`,
//! `#relations-model[data-state=idle|loading|ready|missing|wrong-task|corrupt|network]`,
//! `#relations-input`, `#relations-run`, `#relations-summary[data-running][data-done]`,
//! `#relations-results > li.rel-result[data-index][data-line][data-entities][data-relations]`
//! holding `mark.ent[data-entity][data-label][data-start][data-end][data-score]`,
//! `.rel-arcs g.arc[data-label][data-head][data-tail][data-score]` and `li.rel[...]` alike,
//! `#relations-download`.
use leptos::prelude::*;

mod backend;
mod bench;
mod browser;
mod examples;
mod model;
mod relations;
mod run;
mod search;
mod similarity;
mod status;
mod tag;

use crate::protocol::Slot;
use backend::BackendSwitch;
use model::ModelContext;
use relations::RelationsView;
use similarity::SimilarityView;
use status::{ModelErrorPanel, ModelStatus};
use tag::TagView;

/// The page's entry point.
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Tag,
    Similarity,
    Relations,
}

#[component]
fn App() -> impl IntoView {
    let models = ModelContext::new();
    provide_context(models);
    model::start_workers(models);
    let bench = bench::enabled();
    if bench {
        bench::install_hook();
    }
    // Both views stay mounted (hidden by a class), so a tab switch keeps their inputs and results.
    let tab = RwSignal::new(Tab::Tag);
    let tab_button = move |which: Tab, id: &'static str, label: &'static str| {
        view! {
            <button
                id=id
                role="tab"
                class="tab"
                class:active=move || tab.get() == which
                aria-selected=move || (tab.get() == which).to_string()
                on:click=move |_| {
                    tab.set(which);
                    // Start the baseline's download as soon as someone may want the comparison.
                    if which == Tab::Similarity {
                        models.ensure_baseline_loading();
                    }
                    // The relation model only loads for the view that uses it.
                    if which == Tab::Relations {
                        models.ensure_loading(Slot::Relations);
                    }
                }
            >
                {label}
            </button>
        }
    };
    view! {
        <header class="topbar">
            <div class="brand">
                <span class="logo" aria-hidden="true">"◆"</span>
                <div>
                    <h1>"multitag"</h1>
                    <p class="tagline">"Product-title entity tagging, entirely in your browser"</p>
                </div>
            </div>
            <ModelStatus/>
            <BackendSwitch/>
        </header>
        <nav class="tabs" role="tablist">
            {tab_button(Tab::Tag, "tab-tag", "Tag titles")}
            {tab_button(Tab::Similarity, "tab-similarity", "Title ↔ description")}
            {tab_button(Tab::Relations, "tab-relations", "Relations")}
        </nav>
        <main>
            <ModelErrorPanel/>
            <TagView bench=bench shown=Signal::derive(move || tab.get() == Tab::Tag)/>
            <SimilarityView shown=Signal::derive(move || tab.get() == Tab::Similarity)/>
            <RelationsView shown=Signal::derive(move || tab.get() == Tab::Relations)/>
        </main>
        <footer class="footer">
            "Multi-task triplet NER (BERT + title/description triplet loss). The model runs in a Web Worker on your device; nothing you paste leaves this page."
        </footer>
    }
}
