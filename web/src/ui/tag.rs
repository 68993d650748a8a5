//! The tag view: pasted titles go to the workers in length-sorted batches (one request open per
//! worker), and each title's entities come back as coloured chips in input order as its batch is
//! answered, with a summary of the run, a legend of the entity types, and a JSONL download of the
//! results (`trainer tag`'s format) once the run is done. In benchmark mode it also has a button
//! that benchmarks the pasted titles (`super::bench`).
//!
//! The view owns its state: the pasted text, the run, the result rows and the download. A run has
//! a generation, so replies to a run that was replaced or cleared are dropped.
use std::sync::Arc;

use futures_util::StreamExt;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::browser::now;
use super::examples::{bundled_examples, one_line};
use super::model::{ModelContext, ModelState, OnDemandState};
use super::run::Run;
use crate::client::pool;
use crate::protocol::{Slot, TaggedTitle, TypeDescription};
use crate::view::{
    batch_order, format_ms, label_class, parse_lines, segments, Words, BATCH_SIZE, MAX_TITLES,
    SORT_WINDOW,
};

/// One tagged title, in the list by its place in the paste.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    index: usize,
    result: TaggedTitle,
    /// The worker's time for this title's batch divided by the batch's size.
    ms: f64,
}

const WORDS: Words = Words {
    prompt: "Paste titles above and press “Tag titles”.",
    working: "Tagging",
    finished: "Tagged",
    item: "title",
    items: "titles",
    limit: MAX_TITLES,
};

/// The view's run and, for a BINDER run, its types.
#[derive(Clone, Copy)]
struct Tagging {
    run: Run<Row>,
    /// The entity types of the last run's model (the legend and the chips' colours), when it was
    /// BINDER's: its trained types and the described ones.
    types: RwSignal<Option<Vec<String>>>,
}

impl Tagging {
    fn new() -> Self {
        Self {
            run: Run::new(),
            types: RwSignal::new(None),
        }
    }

    /// Tags the titles in `text`, replacing the previous run and its results: with the main
    /// tagger, or with BINDER and `described` types after its trained ones.
    fn start(self, text: &str, binder: Option<(Vec<String>, Vec<TypeDescription>)>) {
        let parsed = parse_lines(text, MAX_TITLES);
        let titles = parsed.titles;
        let generation = self.run.begin(titles.len(), parsed.dropped);
        self.types.set(binder.as_ref().map(|(trained, described)| {
            let mut names = trained.clone();
            names.extend(described.iter().map(|t| t.name.clone()));
            names
        }));
        if titles.is_empty() {
            return;
        }
        spawn_local(self.tag(titles, generation, binder.map(|(_, described)| described)));
    }

    async fn tag(
        self,
        titles: Vec<String>,
        generation: u64,
        described: Option<Vec<TypeDescription>>,
    ) {
        let Some(pool) = pool() else { return };
        let started = now();
        let lengths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
        // BINDER is loaded by the primary worker only; the tagger by every worker, one batch open
        // per worker. Replies come back in batch order.
        let open = if described.is_some() { 1 } else { pool.size() };
        let requests = batch_order(&lengths, BATCH_SIZE, SORT_WINDOW)
            .into_iter()
            .map(|batch| {
                let texts: Vec<String> = batch.iter().map(|&i| titles[i].clone()).collect();
                let pool = pool.clone();
                let described = described.clone();
                async move {
                    let reply = match described {
                        Some(types) => pool.primary().tag_described(texts, BATCH_SIZE, types).await,
                        None => pool.tag(texts, BATCH_SIZE).await,
                    };
                    (batch, reply)
                }
            });
        let mut replies = futures_util::stream::iter(requests).buffered(open);
        while let Some((batch, reply)) = replies.next().await {
            if !self.run.is_current(generation) {
                return;
            }
            match reply {
                Ok((results, ms)) => {
                    let per_title = ms / results.len().max(1) as f64;
                    let count = results.len();
                    self.run.rows.update(|rows| {
                        for (&index, result) in batch.iter().zip(results) {
                            let at = rows.partition_point(|r| r.index < index);
                            rows.insert(
                                at,
                                Arc::new(Row {
                                    index,
                                    result,
                                    ms: per_title,
                                }),
                            );
                        }
                    });
                    self.run.answered(count, ms, started);
                }
                Err(error) => return self.run.failed(error),
            }
        }
        let results: Vec<TaggedTitle> = self
            .run
            .rows
            .with_untracked(|rows| rows.iter().map(|r| r.result.clone()).collect());
        self.run.finish(started, &multitag_core::to_jsonl(&results));
    }
}

/// The tag view. `bench` adds the benchmark button; `shown` is whether its tab is selected.
#[component]
pub fn TagView(bench: bool, #[prop(into)] shown: Signal<bool>) -> impl IntoView {
    let models = expect_context::<ModelContext>();
    let input = RwSignal::new(String::new());
    let tagging = Tagging::new();
    let described = Described::new();
    let bench_output = RwSignal::new(None::<String>);
    // A crash of the primary worker ends the run (its open requests fail with the crash): show it
    // stopped at once, together with the model status.
    Effect::new(move || {
        if models.crashed() {
            tagging.run.progress.update(|p| p.running = false);
        }
    });
    let fill_examples = move |_| {
        spawn_local(async move {
            match bundled_examples().await {
                Ok(examples) => {
                    let text = examples
                        .iter()
                        .take(MAX_TITLES)
                        .map(|e| one_line(&e.title))
                        .collect::<Vec<_>>()
                        .join("\n");
                    input.set(text);
                }
                Err(e) => tagging.run.progress.update(|p| p.error = Some(e)),
            }
        })
    };
    let run_bench = move |_| {
        spawn_local(async move {
            let titles = parse_lines(&input.get_untracked(), MAX_TITLES).titles;
            if titles.is_empty() {
                bench_output.set(Some("Paste some titles first.".into()));
                return;
            }
            bench_output.set(Some("Running…".into()));
            let report = super::bench::pasted(titles, models.load_ms.get_untracked()).await;
            bench_output.set(Some(report));
        })
    };
    let run = tagging.run.progress;
    let download_url = tagging.run.download_url;
    let has_download = move || download_url.get().is_some();
    view! {
        <section id="tag-view" class="view" class:hidden=move || !shown.get()>
            <div class="card">
                <label for="titles-input" class="field-label">
                    "Product titles, one per line (up to 5,000)"
                </label>
                <textarea
                    id="titles-input"
                    rows="8"
                    spellcheck="false"
                    placeholder="Roadster Men Navy Blue Slim Fit Checked Casual Shirt\nDKNY Unisex Black & Grey Printed Medium Trolley Bag"
                    prop:value=move || input.get()
                    on:input=move |ev| input.set(event_target_value(&ev))
                ></textarea>
                <div class="actions">
                    <button
                        id="tag-button"
                        class="primary"
                        prop:disabled=move || !models.ready() || run.get().running
                        on:click=move |_| tagging.start(&input.get_untracked(), described.request())
                    >
                        "Tag titles"
                    </button>
                    <button
                        id="tag-examples"
                        prop:disabled=move || !models.ready()
                        on:click=fill_examples
                    >
                        "Load examples"
                    </button>
                    <button
                        id="tag-clear"
                        on:click=move |_| {
                            tagging.run.clear();
                            input.set(String::new());
                        }
                    >
                        "Clear"
                    </button>
                    <a
                        id="download-jsonl"
                        class="button"
                        class:disabled=move || !has_download()
                        aria-disabled=move || (!has_download()).to_string()
                        href=move || download_url.get().unwrap_or_default()
                        download="multitag-tags.jsonl"
                    >
                        "Download JSONL"
                    </a>
                    {bench
                        .then(|| {
                            view! {
                                <button
                                    id="bench-button"
                                    prop:disabled=move || !models.ready()
                                    on:click=run_bench
                                >
                                    "Benchmark (batch 1 and 32)"
                                </button>
                            }
                        })}
                </div>
                <p
                    id="tag-summary"
                    class="summary"
                    data-done=move || run.get().done.to_string()
                    data-total=move || run.get().total.to_string()
                    data-running=move || run.get().running.to_string()
                >
                    {move || run.with(|p| p.summary(&WORDS))}
                </p>
                {move || bench_output.get().map(|b| view! { <pre id="bench-output" class="bench">{b}</pre> })}
            </div>
            <DescribedTypes described=described/>
            <Legend run_types=tagging.types/>
            <ol id="results" class="results">
                <For
                    each=move || tagging.run.rows.get()
                    key=|row| row.index
                    children=move |row| {
                        let types = tagging
                            .types
                            .get_untracked()
                            .unwrap_or_else(|| models.entity_types());
                        result_row(row, &types)
                    }
                />
            </ol>
        </section>
    }
}

/// The entity types and their colours: the last run's when it was BINDER's, else the main
/// model's once it is loaded.
#[component]
fn Legend(run_types: RwSignal<Option<Vec<String>>>) -> impl IntoView {
    let models = expect_context::<ModelContext>();
    move || {
        let types = match (run_types.get(), models.model.get()) {
            (Some(types), _) => types,
            (None, ModelState::Ready(info)) => info.entity_types.clone(),
            (None, _) => return None,
        };
        Some(view! {
            <div id="legend" class="legend" aria-label="Entity types">
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
        })
    }
}

/// One title with its entities marked (`mark.ent` with the label and character offsets).
fn result_row(row: Arc<Row>, types: &[String]) -> impl IntoView {
    let result = &row.result;
    let parts = segments(&result.title, &result.entities)
        .into_iter()
        .map(|segment| match segment.entity {
            None => view! { <span class="plain">{segment.text}</span> }.into_any(),
            Some(i) => {
                let e = &result.entities[i];
                let class = format!("ent {}", label_class(&e.label, types));
                view! {
                    <mark
                        class=class
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
    let truncated = result.truncated.then(|| {
        view! {
            <span
                class="truncated-notice"
                title="The model reads at most 48 sub-words of a title; the words after the cut are not tagged."
            >
                "⚠ truncated: only the first 48 sub-words were read"
            </span>
        }
    });
    view! {
        <li
            class="result"
            class:truncated=result.truncated
            data-index=row.index.to_string()
            data-entities=result.entities.len().to_string()
        >
            <span class="index">{(row.index + 1).to_string()}</span>
            <div class="title-text">{parts}</div>
            <div class="meta">
                {truncated}
                <span class="ms" title="Worker time for this title's batch, divided by the batch size">
                    {format_ms(row.ms)}
                </span>
            </div>
        </li>
    }
}

/// Entity types described in words, for BINDER (`binder/`): whether tagging uses it, and the
/// types a person added after its trained ones.
#[derive(Clone, Copy)]
struct Described {
    enabled: RwSignal<bool>,
    types: RwSignal<Vec<TypeDescription>>,
}

impl Described {
    fn new() -> Self {
        Self {
            enabled: RwSignal::new(false),
            types: RwSignal::new(Vec::new()),
        }
    }

    /// What a run asks of BINDER: its trained types' names and the described types, when it is
    /// switched on and loaded.
    fn request(self) -> Option<(Vec<String>, Vec<TypeDescription>)> {
        let models = expect_context::<ModelContext>();
        if !self.enabled.get_untracked() {
            return None;
        }
        match models.binder.get_untracked() {
            OnDemandState::Ready(info) => Some((info.entity_types, self.types.get_untracked())),
            _ => None,
        }
    }
}

/// The trained types of a BINDER manifest with their descriptions (`described_types`).
fn trained_descriptions(manifest: &serde_json::Value) -> Vec<TypeDescription> {
    manifest
        .get("described_types")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// The panel that switches tagging to BINDER and takes described types: a name and a sentence.
#[component]
fn DescribedTypes(described: Described) -> impl IntoView {
    let models = expect_context::<ModelContext>();
    let name = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let add = move |_| {
        let (n, d) = (name.get_untracked(), description.get_untracked());
        let (n, d) = (n.trim().to_string(), d.trim().to_string());
        let trained = match models.binder.get_untracked() {
            OnDemandState::Ready(info) => info.entity_types,
            _ => Vec::new(),
        };
        let taken = trained.contains(&n)
            || described
                .types
                .with_untracked(|t| t.iter().any(|t| t.name == n));
        let error = if n.is_empty() || d.is_empty() {
            Some("Give the type a name and a sentence that describes it.".to_string())
        } else if n.chars().any(char::is_whitespace) {
            Some("A type name has no spaces (it becomes a tag such as B-MATERIAL).".to_string())
        } else if taken {
            Some(format!("{n} is already one of the types."))
        } else {
            None
        };
        problem.set(error.clone());
        if error.is_none() {
            described.types.update(|t| {
                t.push(TypeDescription {
                    name: n,
                    description: d,
                })
            });
            name.set(String::new());
            description.set(String::new());
        }
    };
    let status = move || match models.binder.get() {
        OnDemandState::Idle => None,
        OnDemandState::Loading { file, loaded, .. } => Some(format!(
            "Loading the BINDER model… {file} {:.1} MB",
            loaded as f64 / 1e6
        )),
        OnDemandState::Failed(e) => Some(format!("No BINDER model: {}", e.message)),
        OnDemandState::Ready(_) => None,
    };
    let trained = move || match models.binder.get() {
        OnDemandState::Ready(info) => trained_descriptions(&info.manifest),
        _ => Vec::new(),
    };
    let ready = move || matches!(models.binder.get(), OnDemandState::Ready(_));
    view! {
        <div class="card" id="binder-panel">
            <label class="check">
                <input
                    type="checkbox"
                    id="use-binder"
                    prop:checked=move || described.enabled.get()
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        described.enabled.set(on);
                        if on {
                            models.ensure_loading(Slot::Binder);
                        }
                    }
                />
                " Tag with entity types described in words (BINDER)"
            </label>
            <div class:hidden=move || !described.enabled.get()>
                <p id="binder-status" class="summary" data-ready=move || ready().to_string()>
                    {status}
                </p>
                <ul id="trained-types" class="types">
                    {move || {
                        trained()
                            .into_iter()
                            .map(|t| view! {
                                <li data-name=t.name.clone()>
                                    <strong>{t.name.clone()}</strong>" — "{t.description.clone()}
                                </li>
                            })
                            .collect_view()
                    }}
                </ul>
                <ul id="described-types" class="types">
                    <For
                        each=move || described.types.get()
                        key=|t| t.name.clone()
                        children=move |t| {
                            let gone = t.name.clone();
                            view! {
                                <li data-name=t.name.clone()>
                                    <strong>{t.name.clone()}</strong>" — "{t.description.clone()}
                                    " (described here) "
                                    <button
                                        class="remove-type"
                                        on:click=move |_| described.types.update(|all| all.retain(|x| x.name != gone))
                                    >
                                        "Remove"
                                    </button>
                                </li>
                            }
                        }
                    />
                </ul>
                <div class="actions">
                    <input
                        id="type-name"
                        placeholder="MATERIAL"
                        prop:value=move || name.get()
                        on:input=move |ev| name.set(event_target_value(&ev))
                    />
                    <input
                        id="type-description"
                        class="wide"
                        placeholder="a material entity is the fabric the product is made of, such as cotton or leather."
                        prop:value=move || description.get()
                        on:input=move |ev| description.set(event_target_value(&ev))
                    />
                    <button id="add-type" prop:disabled=move || !ready() on:click=add>
                        "Add type"
                    </button>
                </div>
                {move || problem.get().map(|p| view! { <p id="type-problem" class="summary">{p}</p> })}
            </div>
        </div>
    }
}
