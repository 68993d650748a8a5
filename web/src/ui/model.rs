//! The app-wide state: how far the workers have got loading the main model, the baseline and the
//! relation model, as they report it. It is the only state more than one view reads (the status
//! badge, the error panel, the views' buttons, the tag view's legend, the similarity view's
//! baseline note, the Relations view's note on the tagger), so it is shared through context as
//! [`ModelContext`]; everything else lives in the view that uses it.
//! The worker pool itself is the page's one `crate::client::pool()`.
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::browser::{fetch_text, now, query_param, window};
use crate::client::{pool, WorkerPool};
use crate::protocol::{BackendInfo, FromWorker, LoadError, ModelInfo, Slot, ToWorker};

/// The worker's loader (web/worker-loader.js), copied next to the page by trunk.
const WORKER_SCRIPT: &str = "./worker-loader.js";

/// The main model, as the primary worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelState {
    Starting,
    Loading {
        file: String,
        loaded: u64,
        total: Option<u64>,
        from_cache: bool,
    },
    Ready(ModelInfo),
    Failed(LoadError),
    /// The primary worker stopped (a panic, or it could not start); every request now fails.
    Crashed(String),
}

/// The baseline model the similarity view compares against, loaded only when someone opens it.
#[derive(Debug, Clone, PartialEq)]
pub enum BaselineState {
    /// Not looked for yet, or `model-baseline/` is not there.
    Absent,
    Available,
    Loading(Option<(u64, Option<u64>)>),
    Ready,
    Failed(String),
}

/// A model the primary worker loads when a view first asks for it: the relation extraction model
/// of the Relations view (`relations/`), the BINDER model of the Tag view's described types
/// (`binder/`).
#[derive(Debug, Clone, PartialEq)]
pub enum OnDemandState {
    /// Not asked for yet.
    Idle,
    Loading {
        file: String,
        loaded: u64,
        total: Option<u64>,
    },
    Ready(ModelInfo),
    /// The folder is not served, holds another kind of model, or cannot be read: the error says
    /// which.
    Failed(LoadError),
}

/// The models' state as copyable signal handles, provided by `App` for every view.
#[derive(Clone, Copy)]
pub struct ModelContext {
    pub model: RwSignal<ModelState>,
    /// When the main model became ready, in page milliseconds.
    pub load_ms: RwSignal<Option<f64>>,
    /// Workers with the main model loaded.
    pub taggers: RwSignal<usize>,
    pub baseline: RwSignal<BaselineState>,
    pub relations: RwSignal<OnDemandState>,
    pub binder: RwSignal<OnDemandState>,
    /// What the primary worker runs the encoder on, as it last said.
    pub backend: RwSignal<Option<BackendInfo>>,
}

impl ModelContext {
    pub fn new() -> Self {
        Self {
            model: RwSignal::new(ModelState::Starting),
            load_ms: RwSignal::new(None),
            taggers: RwSignal::new(0),
            baseline: RwSignal::new(BaselineState::Absent),
            relations: RwSignal::new(OnDemandState::Idle),
            binder: RwSignal::new(OnDemandState::Idle),
            backend: RwSignal::new(None),
        }
    }

    /// The state of an on-demand slot (`Relations` or `Binder`).
    fn on_demand(self, slot: Slot) -> Option<RwSignal<OnDemandState>> {
        match slot {
            Slot::Relations => Some(self.relations),
            Slot::Binder => Some(self.binder),
            Slot::Main | Slot::Baseline => None,
        }
    }

    /// Asks the primary worker for an on-demand model, the first time only (the view then shows
    /// how that went, a missing model included).
    pub fn ensure_loading(self, slot: Slot) {
        let Some(state) = self.on_demand(slot) else {
            return;
        };
        if state.get_untracked() == OnDemandState::Idle {
            if let Some(pool) = pool() {
                state.set(OnDemandState::Loading {
                    file: "manifest.json".into(),
                    loaded: 0,
                    total: None,
                });
                pool.primary().send(&ToWorker::Load {
                    slot,
                    base_url: slot.dir().into(),
                });
            }
        }
    }

    /// Whether the main model is loaded (tracked: buttons enable themselves when it is).
    pub fn ready(&self) -> bool {
        self.model.with(|m| matches!(m, ModelState::Ready(_)))
    }

    /// Whether the primary worker has stopped (tracked: a view stops its run when it has).
    pub fn crashed(&self) -> bool {
        self.model.with(|m| matches!(m, ModelState::Crashed(_)))
    }

    /// The main model's entity types, or none before it is loaded (untracked).
    pub fn entity_types(&self) -> Vec<String> {
        self.model.with_untracked(|m| match m {
            ModelState::Ready(info) => info.entity_types.clone(),
            _ => Vec::new(),
        })
    }

    /// Asks the primary worker for the baseline when one is served and not asked for yet.
    pub fn ensure_baseline_loading(self) {
        if self.baseline.get_untracked() == BaselineState::Available {
            if let Some(pool) = pool() {
                self.baseline.set(BaselineState::Loading(None));
                pool.primary().send(&ToWorker::Load {
                    slot: Slot::Baseline,
                    base_url: Slot::Baseline.dir().into(),
                });
            }
        }
    }
}

/// Workers that tag in parallel: `?workers=N` (1-8), else one per core up to two. Each holds its
/// own copy of the model in memory, so more would cost memory on phones; two were measured (on a
/// 2-core machine).
fn worker_count() -> usize {
    query_param("workers")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n.clamp(1, 8))
        .unwrap_or_else(|| (window().navigator().hardware_concurrency() as usize).clamp(1, 2))
}

/// Starts the worker pool and, once the primary has said what it found for WebGPU and the page
/// has chosen the backend, has it load the main model; the helpers start once it has (so they
/// read the files from the cache). The primary's reports drive `models`.
pub fn start_workers(models: ModelContext) {
    let on_event = move |message: FromWorker| match message {
        FromWorker::Ready => {}
        FromWorker::Backend { info } => {
            // The first report (before the worker is ready) is what it found: the page's
            // default is chosen from it, before the model loads.
            if models.backend.get_untracked().is_none() {
                let choice = info.default_choice(query_param("backend").as_deref());
                if let Some(pool) = pool() {
                    if choice != info.active {
                        pool.set_backend(choice);
                    }
                    pool.primary().send(&ToWorker::Load {
                        slot: Slot::Main,
                        base_url: Slot::Main.dir().into(),
                    });
                }
            }
            models.backend.set(Some(info));
        }
        FromWorker::Progress {
            slot: Slot::Main,
            file,
            loaded,
            total,
            from_cache,
        } => models.model.set(ModelState::Loading {
            file,
            loaded,
            total,
            from_cache,
        }),
        FromWorker::Progress {
            slot: Slot::Baseline,
            file,
            loaded,
            total,
            ..
        } if file == "model.gguf" => models
            .baseline
            .set(BaselineState::Loading(Some((loaded, total)))),
        FromWorker::Loaded {
            slot: Slot::Main,
            info,
        } => {
            models.load_ms.set(Some(now()));
            models.taggers.set(1);
            if let Some(pool) = pool() {
                pool.start_helpers(move || models.taggers.update(|n| *n += 1));
            }
            models.model.set(ModelState::Ready(info));
            spawn_local(look_for_baseline(models));
        }
        FromWorker::Progress {
            slot: slot @ (Slot::Relations | Slot::Binder),
            file,
            loaded,
            total,
            ..
        } => {
            if let Some(state) = models.on_demand(slot) {
                state.set(OnDemandState::Loading {
                    file,
                    loaded,
                    total,
                })
            }
        }
        FromWorker::Loaded {
            slot: Slot::Baseline,
            ..
        } => models.baseline.set(BaselineState::Ready),
        FromWorker::Loaded {
            slot: slot @ (Slot::Relations | Slot::Binder),
            info,
        } => {
            if let Some(state) = models.on_demand(slot) {
                state.set(OnDemandState::Ready(info))
            }
        }
        FromWorker::LoadFailed {
            slot: slot @ (Slot::Relations | Slot::Binder),
            error,
        } => {
            if let Some(state) = models.on_demand(slot) {
                state.set(OnDemandState::Failed(error))
            }
        }
        FromWorker::LoadFailed {
            slot: Slot::Main,
            error,
        } => models.model.set(ModelState::Failed(error)),
        FromWorker::LoadFailed {
            slot: Slot::Baseline,
            error,
        } => models.baseline.set(BaselineState::Failed(error.message)),
        _ => {}
    };
    let on_crash = move |message: String| models.model.set(ModelState::Crashed(message));
    // The main model is asked for once the worker has said what it runs on (above).
    // `?simd=plain` keeps the workers on the SIMD128 build where relaxed SIMD would be chosen,
    // to compare the two.
    let script = match query_param("simd").as_deref() {
        Some("plain") => format!("{WORKER_SCRIPT}?simd=plain"),
        _ => WORKER_SCRIPT.to_string(),
    };
    if let Err(message) = WorkerPool::spawn(&script, worker_count(), on_event, on_crash) {
        models.model.set(ModelState::Crashed(message));
    }
}

/// Offers the baseline side by side when `model-baseline/manifest.json` is served.
async fn look_for_baseline(models: ModelContext) {
    let url = format!("{}/manifest.json", Slot::Baseline.dir());
    if let Ok(Some(text)) = fetch_text(&url).await {
        if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
            models.baseline.set(BaselineState::Available);
        }
    }
}
