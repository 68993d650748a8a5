//! What the Tag and Relations views share about a run over pasted lines ([`Run`]): its result
//! rows, its progress and summary line, its generation (a run replaced or cleared drops the
//! replies still coming), and the JSONL download of a finished run.
use std::sync::Arc;

use leptos::prelude::*;

use super::browser::{jsonl_url, now};
use crate::view::Progress;

/// A view's run state, as copyable signal handles for the run's task and the buttons; `R` is a
/// result row.
pub struct Run<R: Send + Sync + 'static> {
    pub rows: RwSignal<Vec<Arc<R>>>,
    pub progress: RwSignal<Progress>,
    /// Bumped by every new run and by "Clear"; a task whose generation is gone stops.
    generation: RwSignal<u64>,
    /// An object URL of the last finished run's JSONL.
    pub download_url: RwSignal<Option<String>>,
}

impl<R: Send + Sync + 'static> Clone for Run<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R: Send + Sync + 'static> Copy for Run<R> {}

impl<R: Send + Sync + 'static> Run<R> {
    pub fn new() -> Self {
        Self {
            rows: RwSignal::new(Vec::new()),
            progress: RwSignal::new(Progress::default()),
            generation: RwSignal::new(0),
            download_url: RwSignal::new(None),
        }
    }

    /// Starts a run over `total` lines (`dropped` more were past the limit), replacing the last
    /// one, its rows and its download; returns the new run's generation.
    pub fn begin(self, total: usize, dropped: usize) -> u64 {
        let generation = self.generation.get_untracked() + 1;
        self.generation.set(generation);
        self.rows.set(Vec::new());
        if let Some(url) = self.download_url.get_untracked() {
            let _ = web_sys::Url::revoke_object_url(&url);
            self.download_url.set(None);
        }
        self.progress.set(Progress {
            total,
            dropped,
            running: total > 0,
            ..Progress::default()
        });
        generation
    }

    /// Whether the run of `generation` is still the view's.
    pub fn is_current(self, generation: u64) -> bool {
        self.generation.get_untracked() == generation
    }

    /// A batch of `count` lines answered with `ms` of the worker's time, the run begun at
    /// `started`.
    pub fn answered(self, count: usize, ms: f64, started: f64) {
        self.progress.update(|p| {
            p.done += count;
            p.worker_ms += ms;
            p.wall_ms = now() - started;
        });
    }

    /// The run stops at `error`.
    pub fn failed(self, error: String) {
        self.progress.update(|p| {
            p.running = false;
            p.error = Some(error);
        });
    }

    /// The run is done; `jsonl` is its download.
    pub fn finish(self, started: f64, jsonl: &str) {
        self.progress.update(|p| {
            p.running = false;
            p.wall_ms = now() - started;
        });
        self.download_url.set(jsonl_url(jsonl));
    }

    /// Drops the results and stops the run's task (the download of a finished run stays).
    pub fn clear(self) {
        self.generation.update(|g| *g += 1);
        self.rows.set(Vec::new());
        self.progress.set(Progress::default());
    }
}
