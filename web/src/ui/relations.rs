//! The Relations view: pasted sentences go to the relation extraction model (`relations/`, a
//! SpERT / SpERT.MT export that only the primary worker loads, when the view is first opened) in
//! small batches, and each sentence comes back with its entities as type-coloured chips and its
//! relations as labelled arcs drawn over the text (an SVG laid over the chips once they are laid
//! out), each with its score on hover, and listed under it; a JSONL download gives the same lines
//! as `trainer tag` of the model. A note says which model the view uses and which the other views
//! use; when no relation model is served (a page that serves only a tagger) it says what model is
//! needed and how to make one.
//!
//! The view owns its state: the pasted text, the run, the result rows, the download, and a layout
//! counter that every row redraws its arcs on (the window was resized, the tab was shown).
use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use wasm_bindgen::JsCast;

use super::browser::{fetch_text, now};
use super::examples::one_line;
use super::model::{ModelContext, ModelState, OnDemandState};
use super::run::Run;
use super::status::error_kind_name;
use crate::client::pool;
use crate::protocol::{LoadErrorKind, Slot, TextRelations};
use crate::view::{
    arc_room, arc_svg, chip_of, format_bytes, label_class, numbered_lines, relations_jsonl,
    segments, shown_entities, ChipBox, Words, MAKE_RELATION_MODEL_COMMANDS, MAX_SENTENCES,
    RELATION_BATCH,
};

/// One sentence's entities and relations, in the list by its place in the paste.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    index: usize,
    /// Its 1-based line in the paste, as `trainer tag` numbers it.
    line: usize,
    result: TextRelations,
}

const WORDS: Words = Words {
    prompt: "Paste sentences above and press “Find relations”.",
    working: "Reading",
    finished: "Read",
    item: "sentence",
    items: "sentences",
    limit: MAX_SENTENCES,
};

/// The view's run.
#[derive(Clone, Copy)]
struct Extraction {
    run: Run<Row>,
}

impl Extraction {
    fn new() -> Self {
        Self { run: Run::new() }
    }

    /// Reads the sentences in `text`, replacing the previous run and its results.
    fn start(self, text: &str) {
        let parsed = numbered_lines(text, MAX_SENTENCES);
        let generation = self.run.begin(parsed.lines.len(), parsed.dropped);
        if parsed.lines.is_empty() {
            return;
        }
        spawn_local(self.extract(parsed.lines, generation));
    }

    /// One request open at a time: only the primary worker has the relation model.
    async fn extract(self, lines: Vec<(usize, String)>, generation: u64) {
        let Some(client) = pool().map(|p| p.primary()) else {
            return;
        };
        let started = now();
        for (b, batch) in lines.chunks(RELATION_BATCH).enumerate() {
            let texts: Vec<String> = batch.iter().map(|(_, t)| t.clone()).collect();
            let reply = client.relations(texts, RELATION_BATCH).await;
            if !self.run.is_current(generation) {
                return;
            }
            match reply {
                Ok((results, ms)) => {
                    let count = results.len();
                    self.run.rows.update(|rows| {
                        for (i, ((line, _), result)) in batch.iter().zip(results).enumerate() {
                            rows.push(Arc::new(Row {
                                index: b * RELATION_BATCH + i,
                                line: *line,
                                result,
                            }));
                        }
                    });
                    self.run.answered(count, ms, started);
                }
                Err(error) => return self.run.failed(error),
            }
        }
        let jsonl = self.run.rows.with_untracked(|rows| {
            let pairs: Vec<(usize, &TextRelations)> =
                rows.iter().map(|r| (r.line, &r.result)).collect();
            relations_jsonl(&pairs)
        });
        self.run.finish(started, &jsonl);
    }
}

/// A test sentence `trainer export` bundles with a relation model (`relations/examples.json`).
#[derive(Debug, Clone, Deserialize)]
struct SentenceExample {
    text: String,
}

async fn bundled_sentences() -> Result<Vec<String>, String> {
    let url = format!("{}/examples.json", Slot::Relations.dir());
    match fetch_text(&url).await {
        Ok(Some(text)) => serde_json::from_str::<Vec<SentenceExample>>(&text)
            .map(|e| e.into_iter().map(|e| one_line(&e.text)).collect())
            .map_err(|e| format!("{url} is not a list of {{id, text}}: {e}")),
        Ok(None) => Err(format!("{url} is not there; `trainer export` writes it")),
        Err(e) => Err(format!("could not fetch {url}: {e}")),
    }
}

/// What the view says about its model (`#relations-model[data-state]`): the relation model it
/// uses and the tagger the other views use, or why there is no relation model and what is
/// needed.
#[component]
fn RelationModelNote() -> impl IntoView {
    let models = expect_context::<ModelContext>();
    let tagger = move || match models.model.get() {
        ModelState::Ready(info) => format!(
            "the tagger in model/ (task {}, entity types {})",
            if info.task.is_empty() {
                "tagging"
            } else {
                info.task.as_str()
            },
            info.entity_types.join(", ")
        ),
        ModelState::Failed(_) | ModelState::Crashed(_) => "a tagger in model/ (not loaded)".into(),
        _ => "the tagger in model/".into(),
    };
    let state = move || match models.relations.get() {
        OnDemandState::Idle => "idle",
        OnDemandState::Loading { .. } => "loading",
        OnDemandState::Ready(_) => "ready",
        OnDemandState::Failed(e) => error_kind_name(e.kind),
    };
    let body = move || match models.relations.get() {
        OnDemandState::Idle
        | OnDemandState::Loading {
            file: _,
            total: None,
            ..
        } => view! {
            <p>"Loading the relation extraction model (relations/)…"</p>
        }
        .into_any(),
        OnDemandState::Loading {
            file,
            loaded,
            total: Some(total),
        } => view! {
            <p>
                {format!(
                    "Loading the relation extraction model (relations/{file}): {} / {}",
                    format_bytes(loaded),
                    format_bytes(total),
                )}
            </p>
        }
        .into_any(),
        OnDemandState::Ready(info) => {
            let method = info.span_method().unwrap_or_else(|| "span model".into());
            let quant = info
                .quantization()
                .map(|q| format!(", {q}"))
                .unwrap_or_default();
            let threshold = info
                .rel_threshold()
                .map(|t| format!(", relations kept at score ≥ {t}"))
                .unwrap_or_default();
            view! {
                <p>
                    <strong>"Relation model: "</strong>
                    {format!(
                        "relations/ ({method}{quant}, {}{threshold}) · entity types {} · relation types {}.",
                        format_bytes(info.total_bytes()),
                        info.entity_types.join(", "),
                        info.relation_types.join(", "),
                    )}
                </p>
                <p class="note">{move || format!("Tag titles and Title ↔ description use {}.", tagger())}</p>
            }
            .into_any()
        }
        OnDemandState::Failed(error) => {
            let headline = match error.kind {
                LoadErrorKind::Missing => {
                    "No relation extraction model is served (relations/ is not there)."
                }
                LoadErrorKind::WrongTask => "relations/ holds no relation extraction model.",
                LoadErrorKind::Corrupt => "The relation model files could not be read.",
                LoadErrorKind::Network => "The relation model files could not be fetched.",
            };
            view! {
                <h2>{headline}</h2>
                <p>
                    {move || format!(
                        "This page serves {}: it tags entities but finds no relations between \
                         them. This view needs a span-based relation extraction model (SpERT or \
                         SpERT.MT) trained with --task relations and exported to public/relations, \
                         which the page serves as relations/:",
                        tagger()
                    )}
                </p>
                <pre class="commands"><code>{MAKE_RELATION_MODEL_COMMANDS}</code></pre>
                <p>
                    "then rebuild with " <code>"trunk build --release"</code>
                    " (or let " <code>"trunk serve"</code> " pick it up) and reload this page."
                </p>
                <p class="error-detail"><code>{error.message}</code></p>
            }
            .into_any()
        }
    };
    view! {
        <div
            id="relations-model"
            class="card relation-model"
            class:error-panel=move || matches!(models.relations.get(), OnDemandState::Failed(_))
            data-state=state
        >
            {body}
        </div>
    }
}

/// The relation model's entity types and their colours, once it is loaded.
#[component]
fn RelationLegend(types: Signal<Vec<String>>) -> impl IntoView {
    move || {
        let types = types.get();
        (!types.is_empty()).then(|| {
            view! {
                <div id="relations-legend" class="legend" aria-label="Entity types">
                    {types
                        .iter()
                        .map(|t| {
                            let class = format!("ent {}", label_class(t, &types));
                            view! {
                                <span class=class data-label=t.clone()>
                                    <span class="ent-label">{t.clone()}</span>
                                </span>
                            }
                        })
                        .collect_view()}
                </div>
            }
        })
    }
}

/// The arcs' box: the chips' places relative to `container` (their offset parent, being
/// positioned), measured once the row is laid out, drawn as `arc_svg`.
fn measure_arcs(container: &web_sys::HtmlElement, row: &Row, chips: &[Option<usize>]) -> String {
    let entities = &row.result.entities;
    let boxes: Vec<Option<ChipBox>> = (0..entities.len())
        .map(|i| {
            let element = container
                .query_selector(&format!("mark.ent[data-entity=\"{i}\"]"))
                .ok()??
                .dyn_into::<web_sys::HtmlElement>()
                .ok()?;
            Some(ChipBox {
                left: element.offset_left() as f64,
                top: element.offset_top() as f64,
                width: element.offset_width() as f64,
                height: element.offset_height() as f64,
            })
        })
        .collect();
    arc_svg(
        &format!("rel-{}", row.index),
        entities,
        &row.result.relations,
        chips,
        &boxes,
        container.offset_width() as f64,
        container.offset_height() as f64,
    )
}

/// One sentence: its text with the entity chips (`mark.ent[data-entity]`, hover: type, score and
/// offsets) and, over it, the relation arcs (`g.arc`, hover: type, arguments and score), drawn
/// again whenever `layout` changes; below it, the relations as a list.
#[component]
fn RelationRow(row: Arc<Row>, types: Vec<String>, layout: RwSignal<u64>) -> impl IntoView {
    let result = &row.result;
    let shown = shown_entities(&result.text, &result.entities);
    let chips: Vec<Option<usize>> = (0..result.entities.len())
        .map(|i| chip_of(&result.entities, &shown, i))
        .collect();
    let room = crate::view::arc_levels(&result.entities, &result.relations)
        .into_iter()
        .map(arc_room)
        .fold(0.0, f64::max);
    let container = NodeRef::<leptos::html::Div>::new();
    let svg = RwSignal::new(String::new());
    {
        let row = row.clone();
        let chips = chips.clone();
        Effect::new(move || {
            layout.track();
            let row = row.clone();
            let chips = chips.clone();
            request_animation_frame(move || {
                if let Some(div) = container.get_untracked() {
                    let element: &web_sys::HtmlElement = &div;
                    svg.set(measure_arcs(element, &row, &chips));
                }
            });
        });
    }
    let parts = segments(&result.text, &result.entities)
        .into_iter()
        .map(|segment| match segment.entity {
            None => view! { <span class="plain">{segment.text}</span> }.into_any(),
            Some(i) => {
                let e = &result.entities[i];
                let class = format!("ent {}", label_class(&e.label, &types));
                view! {
                    <mark
                        class=class
                        data-entity=i.to_string()
                        data-label=e.label.clone()
                        data-start=e.start.to_string()
                        data-end=e.end.to_string()
                        data-score=format!("{:.4}", e.score)
                        title=format!("{} · score {:.3} · chars {}–{}", e.label, e.score, e.start, e.end)
                    >
                        <span class="ent-text">{segment.text}</span>
                        <span class="ent-label">{e.label.clone()}</span>
                    </mark>
                }
                .into_any()
            }
        })
        .collect_view();
    let relations = result
        .relations
        .iter()
        .filter_map(|r| {
            let (head, tail) = (result.entities.get(r.head)?, result.entities.get(r.tail)?);
            let title = format!(
                "{}: {} ({}) → {} ({}) · score {:.3}",
                r.label, head.text, head.label, tail.text, tail.label, r.score
            );
            Some(view! {
                <li
                    class="rel"
                    data-label=r.label.clone()
                    data-head=r.head.to_string()
                    data-tail=r.tail.to_string()
                    data-score=format!("{:.4}", r.score)
                    title=title
                >
                    <span class="rel-arg">{head.text.clone()}</span>
                    <span class="rel-type">{format!(" —{}→ ", r.label)}</span>
                    <span class="rel-arg">{tail.text.clone()}</span>
                    <span class="score">{format!(" {:.2}", r.score)}</span>
                </li>
            })
        })
        .collect_view();
    let has_relations = !result.relations.is_empty();
    view! {
        <li
            class="rel-result"
            data-index=row.index.to_string()
            data-line=row.line.to_string()
            data-entities=result.entities.len().to_string()
            data-relations=result.relations.len().to_string()
        >
            <span class="index">{row.line.to_string()}</span>
            <div class="rel-body">
                <div
                    class="rel-text"
                    node_ref=container
                    style:padding-top=format!("{room:.0}px")
                >
                    {parts}
                    <div class="rel-arcs" inner_html=move || svg.get()></div>
                </div>
                {has_relations.then(|| view! { <ul class="rel-list">{relations}</ul> })}
            </div>
        </li>
    }
}

/// The Relations view; `shown` is whether its tab is selected.
#[component]
pub fn RelationsView(#[prop(into)] shown: Signal<bool>) -> impl IntoView {
    let models = expect_context::<ModelContext>();
    let input = RwSignal::new(String::new());
    let extraction = Extraction::new();
    let layout = RwSignal::new(0u64);
    // Arcs follow the chips: drawn again when the window is resized or the tab is shown (a
    // hidden tab lays nothing out).
    let resize = window_event_listener(leptos::ev::resize, move |_| layout.update(|n| *n += 1));
    on_cleanup(move || resize.remove());
    Effect::new(move || {
        if shown.get() {
            layout.update(|n| *n += 1);
        }
    });
    Effect::new(move || {
        if models.crashed() {
            extraction.run.progress.update(|p| p.running = false);
        }
    });
    let ready = move || matches!(models.relations.get(), OnDemandState::Ready(_));
    let types = Signal::derive(move || match models.relations.get() {
        OnDemandState::Ready(info) => info.entity_types,
        _ => Vec::new(),
    });
    let fill_examples = move |_| {
        spawn_local(async move {
            match bundled_sentences().await {
                Ok(sentences) => input.set(sentences.join("\n")),
                Err(e) => extraction.run.progress.update(|p| p.error = Some(e)),
            }
        })
    };
    let run = extraction.run.progress;
    let download_url = extraction.run.download_url;
    let has_download = move || download_url.get().is_some();
    view! {
        <section id="relations-view" class="view" class:hidden=move || !shown.get()>
            <RelationModelNote/>
            <div class="card">
                <label for="relations-input" class="field-label">
                    "Sentences, one per line (up to 1,000)"
                </label>
                <textarea
                    id="relations-input"
                    rows="4"
                    spellcheck="false"
                    placeholder="John Smith works for Acme Corp in Boston ."
                    prop:value=move || input.get()
                    on:input=move |ev| input.set(event_target_value(&ev))
                ></textarea>
                <div class="actions">
                    <button
                        id="relations-run"
                        class="primary"
                        prop:disabled=move || !ready() || run.get().running
                        on:click=move |_| extraction.start(&input.get_untracked())
                    >
                        "Find relations"
                    </button>
                    <button id="relations-examples" prop:disabled=move || !ready() on:click=fill_examples>
                        "Load examples"
                    </button>
                    <button
                        id="relations-clear"
                        on:click=move |_| {
                            extraction.run.clear();
                            input.set(String::new());
                        }
                    >
                        "Clear"
                    </button>
                    <a
                        id="relations-download"
                        class="button"
                        class:disabled=move || !has_download()
                        aria-disabled=move || (!has_download()).to_string()
                        href=move || download_url.get().unwrap_or_default()
                        download="multitag-relations.jsonl"
                    >
                        "Download JSONL"
                    </a>
                </div>
                <p
                    id="relations-summary"
                    class="summary"
                    data-done=move || run.get().done.to_string()
                    data-total=move || run.get().total.to_string()
                    data-running=move || run.get().running.to_string()
                >
                    {move || run.with(|p| p.summary(&WORDS))}
                </p>
            </div>
            <RelationLegend types=types/>
            <ol id="relations-results" class="results">
                <For
                    each=move || extraction.run.rows.get()
                    key=|row| row.index
                    children=move |row| {
                        view! { <RelationRow row=row types=types.get_untracked() layout=layout/> }
                    }
                />
            </ol>
        </section>
    }
}
