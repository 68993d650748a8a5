//! Training SpERT / SpERT.MT through the shared epoch loop ([`crate::train::train_epochs`]):
//! [`RelationLoss`] per batch, SpERT's evaluator on the dev documents after the last epoch (when
//! there are any), and, as SpERT does, the model after the last epoch kept (no selection on dev, no early
//! stopping: the published recipe trains a fixed 20 epochs and evaluates its final model), and
//! its optimizer ([`AdamWStyle::Spert`]: no bias correction, no decay of biases and norms).
use std::path::Path;

use anyhow::{bail, Result};
use candle_core::Device;
use candle_nn::VarMap;
use multitag_core::relations::{evaluate, Document, ExtractionReport, TypeSet};
use multitag_model::tasks::relations::{RelationLoss, SpanExample};
use multitag_model::TaskKind;

use super::data::RelationData;
use super::model::{save_span_model, RelationModel};
use crate::model_dir::ModelDir;
use crate::optim::AdamWStyle;
use crate::train::{train_epochs, EpochLog, Method, TrainOptions};

/// Sentences per inference pass when evaluating.
pub const EVAL_BATCH: usize = 16;

pub struct Relations<'a> {
    pub model: RelationModel,
    pub dev: &'a [Document],
    pub types: &'a TypeSet,
    pub base: &'a ModelDir,
    /// The data files, recorded with the saved model.
    pub files: serde_json::Value,
}

impl Method for Relations<'_> {
    type Example = SpanExample;
    type Task<'b>
        = RelationLoss<'b>
    where
        Self: 'b;
    /// `None` without dev documents.
    type DevReport = Option<ExtractionReport>;
    const TASK: TaskKind = TaskKind::Relations;
    const DEV_SCORE: &'static str = "relation F1 (strict, micro)";
    const KEEP_LAST: bool = true;
    const ADAMW: AdamWStyle = AdamWStyle::Spert;

    fn varmap(&self) -> &VarMap {
        &self.model.varmap
    }

    fn task(&self) -> RelationLoss<'_> {
        RelationLoss {
            model: &self.model.model,
            sampling: self.model.recipe.sampling,
            device: &self.model.device,
        }
    }

    /// After the last epoch only, as SpERT's `final_eval`: the model kept is the last one
    /// whatever the dev scores, and an evaluation of every span of every dev sentence costs
    /// about a tenth of an epoch.
    fn evaluate_dev(&self, last: bool) -> Result<Option<ExtractionReport>> {
        if !last || self.dev.is_empty() {
            return Ok(None);
        }
        let predicted = self.model.predict(self.dev, EVAL_BATCH)?;
        Ok(Some(
            evaluate(self.types, self.dev, &predicted, false).map_err(anyhow::Error::msg)?,
        ))
    }

    fn dev_score(report: &Option<ExtractionReport>) -> Option<f64> {
        report.as_ref().map(|r| r.relations_strict.micro.f1)
    }

    fn save(&self, out: &Path, training: &serde_json::Value) -> Result<()> {
        let mut training = training.clone();
        training["data"] = self.files.clone();
        save_span_model(out, &self.model.varmap, self.base, self.types, &training)
    }
}

pub struct RelationOutcome {
    pub model: RelationModel,
    pub history: Vec<EpochLog<Option<ExtractionReport>>>,
    pub train_seconds: f64,
}

/// Trains on `data.train`, scoring `data.dev` after the last epoch; with `out`, saves there
/// (model, metrics.jsonl, checkpoint; `resume` continues from the checkpoint).
pub fn train_relations(
    base: &ModelDir,
    data: &RelationData,
    opts: &TrainOptions,
    device: &Device,
    out: Option<&Path>,
    resume: bool,
) -> Result<RelationOutcome> {
    let (types, train, dev) = (&data.types, &data.train, &data.dev);
    if opts.batch_size == 0 || opts.epochs == 0 {
        bail!("--batch-size and --epochs must be positive");
    }
    let train = &train[..opts.limit_train.unwrap_or(train.len()).min(train.len())];
    let started = std::time::Instant::now();
    let model = RelationModel::from_base(base, types, device, opts)?;
    let read = SpanExample::from_documents(&model.tokenizer, train, model.model.max_positions())?;
    if let Some((index, e)) = read.too_long.first() {
        bail!(
            "training document {index}: {e}; {} document(s) are too long for this encoder",
            read.too_long.len()
        );
    }
    let examples = read.examples;
    if examples.is_empty() {
        bail!("no training documents");
    }
    eprintln!(
        "training {} on {} sentences ({} dev), {} epochs of batch {}",
        model.recipe.settings.variant(),
        examples.len(),
        dev.len(),
        opts.epochs,
        opts.batch_size
    );
    let method = Relations {
        model,
        dev,
        types,
        base,
        files: data.files.clone(),
    };
    let epochs = train_epochs(&method, &examples, opts, device, out, resume)?;
    Ok(RelationOutcome {
        model: method.model,
        history: epochs.history,
        train_seconds: started.elapsed().as_secs_f64(),
    })
}
