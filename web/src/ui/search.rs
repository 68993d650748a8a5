//! The search of the similarity view: a title typed or pasted in, and the descriptions bundled
//! with the model (every description in `model/examples.json`, the page's catalog) ranked by the
//! cosine of their sentence embeddings with the title's, best first. Each result shows its score
//! and its own example's title, so one sees whether the searched title's product came first.
//!
//! The catalog is embedded once, by the first search, and its vectors are kept in this view's
//! state: they never change for the page's model, and embedding a few dozen descriptions of up to
//! 128 sub-words is the slow part of a search. Each search then embeds only its title, through
//! the same `Embed` request to the primary worker (which pools and normalises as the heat map
//! does), and ranks on the page (`crate::view::rank_top_k`), so showing more results needs no
//! model call.
//!
//! A search runs on Enter or the button, not as one types: each is a model call in the primary
//! worker, which the heat map shares, and searching at every pause in typing would queue calls
//! for half-typed titles and make the list jump while the user reads it. A title is usually
//! pasted whole, so one key press costs nothing.
use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::examples::{bundled_examples, one_line, BundledExample};
use super::model::ModelContext;
use crate::client::pool;
use crate::protocol::{Slot, TextKind};
use crate::view::{format_ms, rank_top_k, same_title, SEARCH_TOP_K};

/// The choices of how many results to show; `usize::MAX` is "all".
const SHOW_CHOICES: [usize; 4] = [SEARCH_TOP_K, 25, 50, usize::MAX];

/// A choice as the menu shows it, and as its option's value.
fn choice_label(n: usize) -> String {
    if n == usize::MAX {
        "all".into()
    } else {
        n.to_string()
    }
}

/// What the search says for a model exported with `--examples 0`.
const NO_EXAMPLES: &str = "This model was exported without examples (examples.json is empty), so \
    there are no descriptions to search: export it again with `trainer export --examples N`.";

/// The bundled examples with one vector per description, in bundled order (the ranking's ties
/// keep it).
#[derive(Debug)]
struct Catalog {
    examples: Vec<BundledExample>,
    vectors: Vec<Vec<f32>>,
}

/// The last search: the title as embedded, its vector, and the worker's time for it.
#[derive(Debug)]
struct Query {
    text: String,
    vector: Vec<f32>,
    ms: f64,
}

/// The view's state, as copyable signal handles for the search's task and the controls.
#[derive(Clone, Copy)]
struct Search {
    input: RwSignal<String>,
    /// How many results to show.
    shown: RwSignal<usize>,
    /// Embedded by the first search that gets as far, then kept; never set again after that.
    catalog: RwSignal<Option<Arc<Catalog>>>,
    query: RwSignal<Option<Arc<Query>>>,
    /// What is running, or why nothing is shown.
    status: RwSignal<Option<String>>,
    running: RwSignal<bool>,
}

impl Search {
    fn new() -> Self {
        Self {
            input: RwSignal::new(String::new()),
            shown: RwSignal::new(SEARCH_TOP_K),
            catalog: RwSignal::new(None),
            query: RwSignal::new(None),
            status: RwSignal::new(None),
            running: RwSignal::new(false),
        }
    }

    /// Searches for the entered title, replacing the last results. One search at a time: the
    /// button is disabled while one runs, so Enter cannot submit either.
    fn start(self) {
        if self.running.get_untracked() {
            return;
        }
        // One line, as a title is: a paste with line breaks becomes one title, not several.
        let text = one_line(&self.input.get_untracked());
        if text.is_empty() {
            self.query.set(None);
            self.status.set(Some(
                "Type or paste a product title to rank the bundled descriptions against it.".into(),
            ));
            return;
        }
        self.running.set(true);
        spawn_local(async move {
            match self.search(text).await {
                Ok(query) => {
                    self.query.set(Some(Arc::new(query)));
                    self.status.set(None);
                }
                Err(message) => {
                    self.query.set(None);
                    self.status.set(Some(message));
                }
            }
            self.running.set(false);
        });
    }

    async fn search(self, text: String) -> Result<Query, String> {
        let client = pool()
            .map(|p| p.primary())
            .ok_or("The model workers are not running.")?;
        if self.catalog.get_untracked().is_none() {
            let catalog = self.embed_catalog(&client).await?;
            self.catalog.set(Some(Arc::new(catalog)));
        }
        self.status.set(Some("Embedding the title…".into()));
        let (vectors, ms) = client
            .embed(Slot::Main, vec![text.clone()], TextKind::Title)
            .await
            .map_err(|e| format!("The search failed: {e}"))?;
        let vector = vectors
            .into_iter()
            .next()
            .ok_or("The search failed: the worker returned no embedding for the title.")?;
        Ok(Query { text, vector, ms })
    }

    /// The bundled examples and their descriptions' vectors; an error says why there is nothing
    /// to search (no examples.json, an empty one) or why embedding failed.
    async fn embed_catalog(self, client: &crate::client::WorkerClient) -> Result<Catalog, String> {
        let examples = bundled_examples()
            .await
            .map_err(|e| format!("This model has no bundled descriptions to search: {e}."))?;
        if examples.is_empty() {
            return Err(NO_EXAMPLES.into());
        }
        self.status.set(Some(format!(
            "Embedding the {} bundled descriptions (once)…",
            examples.len()
        )));
        // As the heat map's inputs hold them: the same text gives the same vector in both.
        let descriptions = examples.iter().map(|e| one_line(&e.description)).collect();
        let (vectors, _) = client
            .embed(Slot::Main, descriptions, TextKind::Description)
            .await
            .map_err(|e| format!("Embedding the bundled descriptions failed: {e}"))?;
        if vectors.len() != examples.len() {
            return Err(format!(
                "Embedding the bundled descriptions failed: {} vectors for {} descriptions.",
                vectors.len(),
                examples.len()
            ));
        }
        Ok(Catalog { examples, vectors })
    }
}

/// The ranked descriptions for the last search, or nothing before one.
fn results(catalog: &Catalog, query: &Query, shown: usize) -> impl IntoView {
    let ranked = rank_top_k(&query.vector, &catalog.vectors, shown);
    let total = catalog.examples.len();
    let summary = format!(
        "Top {} of {total} bundled descriptions for “{}” · {}",
        ranked.len(),
        query.text,
        format_ms(query.ms)
    );
    let rows = ranked
        .iter()
        .enumerate()
        .map(|(rank, r)| {
            let example = &catalog.examples[r.index];
            let own = same_title(&query.text, &example.title);
            view! {
                <li
                    class="result search-hit"
                    class:own=own
                    data-rank=rank.to_string()
                    data-index=r.index.to_string()
                    data-id=example.id.clone()
                    data-score=format!("{:.4}", r.score)
                    data-own=own.to_string()
                >
                    <span class="index">{format!("{}", rank + 1)}</span>
                    <div class="hit-text">
                        <div class="hit-title">
                            <span class="hit-title-text">{example.title.clone()}</span>
                            {own.then(|| view! { <span class="own-badge">"the searched title"</span> })}
                        </div>
                        <div class="hit-description">{one_line(&example.description)}</div>
                    </div>
                    <span class="meta score" title="cosine similarity">
                        {format!("{:.3}", r.score)}
                    </span>
                </li>
            }
        })
        .collect_view();
    view! {
        <p id="search-summary" class="summary">{summary}</p>
        <ol
            id="search-results"
            class="results search-results"
            data-count=ranked.len().to_string()
            data-catalog=total.to_string()
        >
            {rows}
        </ol>
    }
}

/// The search card of the similarity view.
#[component]
pub fn SearchPanel() -> impl IntoView {
    let models = expect_context::<ModelContext>();
    let search = Search::new();
    let Search {
        input,
        shown,
        catalog,
        query,
        status,
        running,
    } = search;
    // A crash of the primary worker fails the pending request; show the search stopped at once.
    Effect::new(move || {
        if models.crashed() {
            running.set(false);
        }
    });
    let ranking = move || {
        let catalog = catalog.get()?;
        let query = query.get()?;
        Some(results(&catalog, &query, shown.get()))
    };
    let choices = SHOW_CHOICES
        .iter()
        .map(|&n| {
            view! {
                <option value=choice_label(n) selected=n == SEARCH_TOP_K>
                    {choice_label(n)}
                </option>
            }
        })
        .collect_view();
    view! {
        <div id="search" class="card">
            <h2 class="card-title">"Search the bundled descriptions"</h2>
            <p class="hint">
                "Type or paste a product title and press Enter: the descriptions exported with the model (its held-out examples) are ranked by the cosine similarity of their embeddings with the title's, best first, each with its example's title, so you can see whether the title's own product comes first. Equal scores keep the examples' order."
            </p>
            <form
                class="search-row"
                on:submit=move |ev| {
                    ev.prevent_default();
                    search.start();
                }
            >
                <input
                    id="search-input"
                    type="search"
                    placeholder="e.g. Roadster Men Navy Blue Slim Fit Checked Casual Shirt"
                    spellcheck="false"
                    autocomplete="off"
                    aria-label="Product title to search for"
                    prop:value=move || input.get()
                    on:input=move |ev| input.set(event_target_value(&ev))
                />
                <button
                    id="search-run"
                    type="submit"
                    class="primary"
                    prop:disabled=move || !models.ready() || running.get()
                >
                    "Search"
                </button>
                <label class="note">
                    "Show "
                    <select
                        id="search-shown"
                        on:change=move |ev| {
                            let value = event_target_value(&ev);
                            let n = SHOW_CHOICES
                                .into_iter()
                                .find(|&n| choice_label(n) == value)
                                .unwrap_or(SEARCH_TOP_K);
                            shown.set(n);
                        }
                    >
                        {choices}
                    </select>
                </label>
            </form>
            <p id="search-status" class="summary" data-running=move || running.get().to_string()>
                {move || status.get()}
            </p>
            {ranking}
        </div>
    }
}
