//! What the training loop needs from a method beyond its loss ([`Task`]): the trainable
//! variables, a dev-set evaluation that picks the best epoch, and how the best model is saved.
//! The loop ([`super::epochs`]) knows nothing else of the method, so SpERT.MT or BINDER train
//! through it by implementing this next to their task module.
use std::path::Path;

use anyhow::Result;
use candle_nn::VarMap;
use multitag_model::{Task, TaskKind};
use serde::Serialize;

use crate::optim::AdamWStyle;

pub trait Method {
    /// The task's training example.
    type Example;
    /// The task's loss, borrowing the model.
    type Task<'a>: Task<Example = Self::Example>
    where
        Self: 'a;
    /// The dev evaluation logged each epoch.
    type DevReport: Serialize;

    /// Recorded with the saved model (`training.json`), so inference picks this method's
    /// predictor.
    const TASK: TaskKind;

    fn varmap(&self) -> &VarMap;

    fn task(&self) -> Self::Task<'_>;

    /// The model as it is now, scored on the dev set; `last` after the last epoch. A
    /// [`Self::KEEP_LAST`] method may skip the earlier ones (nothing is selected on them).
    fn evaluate_dev(&self, last: bool) -> Result<Self::DevReport>;

    /// The name of [`Self::dev_score`] in logs (e.g. `F1`).
    const DEV_SCORE: &'static str;

    /// Keep the model of the last epoch rather than the best on dev, and never stop early (the
    /// dev report is then only logged): for a method whose published recipe trains a fixed
    /// number of epochs and evaluates the final model.
    const KEEP_LAST: bool = false;

    /// The optimizer the method's published recipe uses.
    const ADAMW: AdamWStyle = AdamWStyle::Pytorch;

    /// The number in a dev report that picks the best epoch (higher is better; a fraction,
    /// logged as a percentage).
    /// `None` when the report holds no score (a [`Self::KEEP_LAST`] method's skipped epochs).
    fn dev_score(report: &Self::DevReport) -> Option<f64>;

    /// Writes the model as it is now, with `training` (options, epoch, dev report) as its
    /// provenance, to the directory `out`.
    fn save(&self, out: &Path, training: &serde_json::Value) -> Result<()>;
}
