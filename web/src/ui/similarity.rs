//! The similarity view: titles and descriptions, one per line, and a heat map of the cosine
//! similarity of every title's and description's sentence embedding, with each title's best match
//! outlined. When a baseline model is exported (`model-baseline/`), its heat map is shown beside
//! the triplet-trained model's, so the effect of the triplet loss can be seen on the same items.
//! Below it, the search of the bundled descriptions (`super::search`), a component of its own.
//!
//! The view owns its inputs, the last comparison and its status line; the baseline's loading state
//! is app-wide (`super::model`), since the primary worker reports it.
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::browser::sleep;
use super::examples::{bundled_examples, one_line};
use super::model::{BaselineState, ModelContext};
use super::search::SearchPanel;
use crate::client::pool;
use crate::protocol::Slot;
use crate::view::{
    best_matches, diagonal_wins, format_bytes, format_ms, heat_color, heat_is_dark, matrix_range,
    parse_lines, MAX_SIMILARITY_ITEMS,
};

/// How many bundled examples "Load examples" puts in the similarity view.
const SIMILARITY_EXAMPLES: usize = 12;

/// One model's similarity matrix (titles x descriptions) and the worker's time for it.
#[derive(Debug, Clone, PartialEq)]
struct SimPanel {
    slot: Slot,
    matrix: Vec<Vec<f32>>,
    ms: f64,
}

/// One comparison: the items compared and a panel per model.
#[derive(Debug, Clone, PartialEq, Default)]
struct SimResult {
    titles: Vec<String>,
    descriptions: Vec<String>,
    panels: Vec<SimPanel>,
}

/// The view's state, as copyable signal handles for the comparison's task and the buttons.
#[derive(Clone, Copy)]
struct Comparison {
    titles: RwSignal<String>,
    descriptions: RwSignal<String>,
    result: RwSignal<Option<SimResult>>,
    /// The status line: what is running, or why nothing is shown.
    status: RwSignal<Option<String>>,
    running: RwSignal<bool>,
}

impl Comparison {
    fn new() -> Self {
        Self {
            titles: RwSignal::new(String::new()),
            descriptions: RwSignal::new(String::new()),
            result: RwSignal::new(None),
            status: RwSignal::new(None),
            running: RwSignal::new(false),
        }
    }

    /// Compares the entered titles and descriptions under the main model, then under the baseline
    /// when one is (or is being) loaded.
    fn start(self, models: ModelContext) {
        let titles: Vec<String> =
            parse_lines(&self.titles.get_untracked(), MAX_SIMILARITY_ITEMS).titles;
        let descriptions: Vec<String> =
            parse_lines(&self.descriptions.get_untracked(), MAX_SIMILARITY_ITEMS).titles;
        if titles.is_empty() || descriptions.is_empty() {
            self.status.set(Some(
                "Enter at least one title and one description, one per line.".into(),
            ));
            return;
        }
        self.running.set(true);
        self.status.set(Some(format!(
            "Embedding {} titles and {} descriptions…",
            titles.len(),
            descriptions.len()
        )));
        models.ensure_baseline_loading();
        spawn_local(self.compare(models, titles, descriptions));
    }

    async fn compare(self, models: ModelContext, titles: Vec<String>, descriptions: Vec<String>) {
        let Some(client) = pool().map(|p| p.primary()) else {
            return;
        };
        let mut result = SimResult {
            titles: titles.clone(),
            descriptions: descriptions.clone(),
            panels: Vec::new(),
        };
        match client
            .similarity(Slot::Main, titles.clone(), descriptions.clone())
            .await
        {
            Ok((matrix, ms)) => result.panels.push(SimPanel {
                slot: Slot::Main,
                matrix,
                ms,
            }),
            Err(e) => {
                self.status.set(Some(format!("Similarity failed: {e}")));
                self.running.set(false);
                return;
            }
        }
        self.result.set(Some(result.clone()));
        // Wait for the baseline when it is on its way (at most two minutes), then add its panel.
        let mut waited = 0;
        while matches!(models.baseline.get_untracked(), BaselineState::Loading(_)) && waited < 600 {
            self.status
                .set(Some("Loading the baseline model for comparison…".into()));
            sleep(200).await;
            waited += 1;
        }
        if models.baseline.get_untracked() == BaselineState::Ready {
            match client
                .similarity(Slot::Baseline, titles.clone(), descriptions.clone())
                .await
            {
                Ok((matrix, ms)) => {
                    result.panels.push(SimPanel {
                        slot: Slot::Baseline,
                        matrix,
                        ms,
                    });
                    self.result.set(Some(result));
                }
                Err(e) => self
                    .status
                    .set(Some(format!("Baseline similarity failed: {e}"))),
            }
        }
        if let BaselineState::Failed(e) = models.baseline.get_untracked() {
            self.status
                .set(Some(format!("The baseline model could not be loaded: {e}")));
        } else {
            self.status.set(None);
        }
        self.running.set(false);
    }
}

/// The note beside the buttons on whether a baseline is there to compare with.
fn baseline_note(baseline: BaselineState) -> String {
    match baseline {
        BaselineState::Absent => {
            "Export a plain fine-tuned model to public/model-baseline to compare it side by side."
                .to_string()
        }
        BaselineState::Available => {
            "A baseline model is available and will be shown side by side.".into()
        }
        BaselineState::Loading(Some((loaded, total))) => format!(
            "Loading the baseline: {}{}",
            format_bytes(loaded),
            total
                .map(|t| format!(" / {}", format_bytes(t)))
                .unwrap_or_default()
        ),
        BaselineState::Loading(None) => "Loading the baseline…".into(),
        BaselineState::Ready => {
            "Baseline loaded: triplet-trained and baseline side by side.".into()
        }
        BaselineState::Failed(e) => format!("The baseline could not be loaded: {e}"),
    }
}

/// One model's heat map: a row per title, a column per description, each cell coloured by its
/// cosine (scaled to the matrix's range) and carrying it in `data-sim`.
fn heatmap(panel: &SimPanel, titles: &[String], descriptions: &[String], ms: f64) -> impl IntoView {
    let matrix = &panel.matrix;
    let best = best_matches(matrix);
    let (lo, hi) = matrix_range(matrix);
    let wins = diagonal_wins(matrix);
    let square = titles.len() == descriptions.len();
    let show_numbers = descriptions.len() <= 16;
    let slot = match panel.slot {
        Slot::Main => "main",
        Slot::Baseline => "baseline",
        // The relation and BINDER models are never compared here.
        Slot::Relations => "relations",
        Slot::Binder => "binder",
    };
    let caption = if square {
        format!(
            "best match is the title's own description for {wins} of {} titles",
            titles.len()
        )
    } else {
        format!(
            "{} titles × {} descriptions",
            titles.len(),
            descriptions.len()
        )
    };
    let head = descriptions
        .iter()
        .enumerate()
        .map(|(j, d)| {
            view! {
                <th scope="col" class="col-head" title=d.clone()>
                    {format!("D{}", j + 1)}
                </th>
            }
        })
        .collect_view();
    let body = matrix
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let cells = row
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    let is_best = best[i] == Some(j);
                    let class = match (is_best, i == j && square) {
                        (true, true) => "cell best diag",
                        (true, false) => "cell best",
                        (false, true) => "cell diag",
                        (false, false) => "cell",
                    };
                    let style = format!(
                        "background:{};color:{}",
                        heat_color(v, lo, hi),
                        if heat_is_dark(v, lo, hi) {
                            "#fff"
                        } else {
                            "#1d2733"
                        }
                    );
                    let hover = format!(
                        "T{} × D{}: cosine {v:.3}{}",
                        i + 1,
                        j + 1,
                        if is_best { " (best match)" } else { "" }
                    );
                    view! {
                        <td
                            class=class
                            data-row=i.to_string()
                            data-col=j.to_string()
                            data-sim=format!("{v:.4}")
                            title=hover
                            style=style
                        >
                            {show_numbers.then(|| format!("{v:.2}"))}
                        </td>
                    }
                })
                .collect_view();
            let title = titles.get(i).cloned().unwrap_or_default();
            let hover = title.clone();
            view! {
                <tr data-row=i.to_string()>
                    <th scope="row" class="row-head" title=hover>
                        <span class="row-num">{format!("T{}", i + 1)}</span>
                        <span class="row-title">{title}</span>
                    </th>
                    {cells}
                </tr>
            }
        })
        .collect_view();
    view! {
        <figure class="heatmap-panel" data-slot=slot>
            <figcaption>
                <strong>{panel.slot.title()}</strong>
                <span class="caption-detail">{format!(" · {caption} · {}", format_ms(ms))}</span>
            </figcaption>
            <div class="heatmap-scroll">
                <table
                    class="heatmap"
                    data-slot=slot
                    data-rows=titles.len().to_string()
                    data-cols=descriptions.len().to_string()
                    data-diagonal-wins=wins.to_string()
                >
                    <thead>
                        <tr>
                            <th class="corner">"title \\ description"</th>
                            {head}
                        </tr>
                    </thead>
                    <tbody>{body}</tbody>
                </table>
            </div>
        </figure>
    }
}

/// The similarity view; `shown` is whether its tab is selected.
#[component]
pub fn SimilarityView(#[prop(into)] shown: Signal<bool>) -> impl IntoView {
    let models = expect_context::<ModelContext>();
    let comparison = Comparison::new();
    let Comparison {
        titles,
        descriptions,
        result,
        status,
        running,
    } = comparison;
    // A crash of the primary worker ends the comparison (it may be waiting for the baseline, which
    // will not come): show it stopped at once, together with the model status.
    Effect::new(move || {
        if models.crashed() {
            running.set(false);
        }
    });
    let fill_examples = move |_| {
        spawn_local(async move {
            match bundled_examples().await {
                Ok(examples) => {
                    let chosen = &examples[..examples.len().min(SIMILARITY_EXAMPLES)];
                    titles.set(
                        chosen
                            .iter()
                            .map(|e| one_line(&e.title))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    );
                    descriptions.set(
                        chosen
                            .iter()
                            .map(|e| one_line(&e.description))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    );
                    comparison.start(models);
                }
                Err(e) => status.set(Some(e)),
            }
        })
    };
    let panels = move || {
        result.get().map(|result| {
            result
                .panels
                .iter()
                .map(|p| heatmap(p, &result.titles, &result.descriptions, p.ms))
                .collect_view()
        })
    };
    let descriptions_list = move || {
        result.get().map(|result| {
            view! {
                <ol class="desc-list">
                    {result
                        .descriptions
                        .iter()
                        .enumerate()
                        .map(|(j, d)| {
                            view! {
                                <li>
                                    <span class="row-num">{format!("D{}", j + 1)}</span>
                                    " "
                                    {d.clone()}
                                </li>
                            }
                        })
                        .collect_view()}
                </ol>
            }
        })
    };
    view! {
        <section
            id="similarity-view"
            class="view"
            class:hidden=move || !shown.get()
        >
            <div class="card">
                <p class="hint">
                    "Titles on the left, descriptions on the right, one per line. Each cell is the cosine similarity of a title's and a description's sentence embeddings (mean-pooled, as the triplet loss trains them); the outlined cell is each title's best match."
                </p>
                <div class="two-col">
                    <div>
                        <label for="sim-titles" class="field-label">"Titles"</label>
                        <textarea
                            id="sim-titles"
                            rows="7"
                            spellcheck="false"
                            prop:value=move || titles.get()
                            on:input=move |ev| titles.set(event_target_value(&ev))
                        ></textarea>
                    </div>
                    <div>
                        <label for="sim-descriptions" class="field-label">"Descriptions"</label>
                        <textarea
                            id="sim-descriptions"
                            rows="7"
                            spellcheck="false"
                            prop:value=move || descriptions.get()
                            on:input=move |ev| descriptions.set(event_target_value(&ev))
                        ></textarea>
                    </div>
                </div>
                <div class="actions">
                    <button
                        id="sim-run"
                        class="primary"
                        prop:disabled=move || !models.ready() || running.get()
                        on:click=move |_| comparison.start(models)
                    >
                        "Compare"
                    </button>
                    <button
                        id="sim-examples"
                        prop:disabled=move || !models.ready() || running.get()
                        on:click=fill_examples
                    >
                        "Load examples"
                    </button>
                    <span id="baseline-note" class="note">
                        {move || baseline_note(models.baseline.get())}
                    </span>
                </div>
                <p id="sim-status" class="summary" data-running=move || running.get().to_string()>
                    {move || status.get()}
                </p>
            </div>
            <div id="heatmaps" class="heatmaps">{panels}</div>
            {descriptions_list}
            <SearchPanel/>
        </section>
    }
}
