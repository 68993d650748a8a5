//! Training: a method's examples, one [`Stepper`] step per batch, epochs with dev evaluation,
//! checkpoints and metrics ([`epochs`]), for any [`Method`]; and the tagging method trained by
//! `trainer train` and `compare`: NER cross-entropy plus, optionally, the title/description
//! objective of Siskind & Shah (triplet in either form, or in-batch InfoNCE) weighted by lambda.
//!
//! | module | what |
//! |---|---|
//! | [`options`] | the training options, objective and precision |
//! | [`method`] | what the loop needs from a method |
//! | [`epochs`] | the epoch loop |
//! | [`step`] | one step: loss, backward, optimizer |
//! | [`checkpoint`] | checkpoints and best-epoch snapshots |
//! | [`examples`], [`model`] | the tagging method's examples and the model it trains |
use std::path::Path;

use anyhow::{bail, Result};
use candle_core::Device;
use candle_nn::VarMap;
use multitag_core::{LabelMap, LabeledRecord, NerReport, Split};
use multitag_model::tasks::tagging::{anchor, TaggingLoss, TitleExample};
use multitag_model::{DropoutRng, TaskKind};
use rand::{rngs::StdRng, Rng, SeedableRng};

pub mod checkpoint;
pub mod epochs;
pub mod examples;
pub mod method;
pub mod model;
pub mod options;
pub mod step;

pub use checkpoint::check_resume;
pub use epochs::{train_epochs, EpochLog};
pub use examples::{encode_examples, TrainItem};
pub use method::Method;
pub use model::TrainingModel;
#[cfg(test)]
pub use options::options_from;
pub use options::{check_task, Objective, Precision, Task, TrainOptions};
pub use step::Stepper;

use crate::data::Dataset;
use crate::evaluate::evaluate_ner;
use crate::model_dir::ModelDir;
use crate::output::save_model;

/// The training items of `records`, with descriptions where the objective uses them. An empty
/// description is none: that item trains tagging only.
pub fn record_items<'a>(
    records: &'a [&'a LabeledRecord],
    opts: &TrainOptions,
) -> impl Iterator<Item = TrainItem<'a>> + 'a {
    let descriptions = opts.uses_descriptions();
    records.iter().map(move |r| TrainItem {
        name: &r.id,
        words: &r.words,
        tags: &r.tags,
        description: (descriptions && !r.description.is_empty()).then_some(r.description.as_str()),
    })
}

/// The tagging method as the loop trains it: the model, the dev split that picks the best epoch
/// (entity F1), and the model directory it is saved as.
pub struct Tagging<'a> {
    pub model: TrainingModel,
    pub dev: Vec<&'a LabeledRecord>,
    /// How the data was split (recorded with the saved model).
    pub split: serde_json::Value,
    pub options: &'a TrainOptions,
    pub base: &'a ModelDir,
    pub labels: &'a LabelMap,
}

impl Method for Tagging<'_> {
    type Example = TitleExample;
    type Task<'b>
        = TaggingLoss<'b>
    where
        Self: 'b;
    type DevReport = NerReport;
    const TASK: TaskKind = TaskKind::Tagging;
    const DEV_SCORE: &'static str = "F1";

    fn varmap(&self) -> &VarMap {
        &self.model.varmap
    }

    fn task(&self) -> TaggingLoss<'_> {
        self.model.task(self.options, (0, 0))
    }

    fn evaluate_dev(&self, _last: bool) -> Result<NerReport> {
        evaluate_ner(&self.model, &self.dev, 64)
    }

    fn dev_score(report: &NerReport) -> Option<f64> {
        Some(report.f1)
    }

    fn save(&self, out: &Path, training: &serde_json::Value) -> Result<()> {
        let mut training = training.clone();
        training["split"] = self.split.clone();
        save_model(
            out,
            &self.model.varmap,
            self.base,
            &self.model.model.encoder.config,
            self.labels,
            &training,
        )
    }
}

pub struct TrainOutcome {
    pub model: TrainingModel,
    pub history: Vec<EpochLog<NerReport>>,
    pub best_dev_f1: f64,
    /// Wall time of the model's preparation (tokenizing, the distillation's anchors) and epochs.
    pub train_seconds: f64,
}

/// A tagger trained on a labeled catalog's training split (the first `limit_train` items), the
/// best epoch picked on its dev split.
pub struct TrainRun<'a> {
    pub base: &'a ModelDir,
    pub dataset: &'a Dataset,
    pub labels: &'a LabelMap,
    pub options: &'a TrainOptions,
    pub device: &'a Device,
    /// Where to save the best model, the checkpoint and metrics.jsonl; `None` keeps it in memory.
    pub out: Option<&'a Path>,
    pub resume: bool,
}

impl TrainRun<'_> {
    pub fn run(&self) -> Result<TrainOutcome> {
        let opts = self.options;
        if opts.batch_size == 0 || opts.epochs == 0 {
            bail!("--batch-size and --epochs must be positive");
        }
        let mut train_records = self.dataset.split(Split::Train);
        if let Some(limit) = opts.limit_train {
            train_records.truncate(limit);
        }
        if train_records.len() < 2 {
            bail!(
                "need at least two training items, have {}",
                train_records.len()
            );
        }
        if opts.uses_descriptions() {
            let described = train_records
                .iter()
                .filter(|r| !r.description.is_empty())
                .count();
            if described < train_records.len() {
                eprintln!(
                    "{described} of {} training titles have a description: the description loss \
                     uses those, the others train tagging only",
                    train_records.len()
                );
            }
        }
        let started = std::time::Instant::now();
        let (model, examples) = self.prepare(&train_records)?;
        // Part of the training time: the distillation's anchors are computed here.
        let prepare_seconds = started.elapsed().as_secs_f64();
        let method = Tagging {
            model,
            dev: self.dataset.split(Split::Dev),
            split: self.dataset.split_record(),
            options: opts,
            base: self.base,
            labels: self.labels,
        };
        let epochs = train_epochs(&method, &examples, opts, self.device, self.out, self.resume)?;
        Ok(TrainOutcome {
            model: method.model,
            history: epochs.history,
            best_dev_f1: epochs.best_dev_score,
            train_seconds: prepare_seconds + epochs.train_seconds,
        })
    }

    /// The model to train, from the base, and the examples of `records`.
    fn prepare(&self, records: &[&LabeledRecord]) -> Result<(TrainingModel, Vec<TitleExample>)> {
        let opts = self.options;
        let trained = TrainingModel::from_base(self.base, self.labels, self.device, opts)?;
        let items = record_items(records, opts);
        let mut examples = encode_examples(&trained.tokenizer, self.labels, items, opts)?;
        if opts.distill > 0.0 {
            let described = examples
                .iter()
                .filter(|e| !e.description.is_empty())
                .count();
            eprintln!(
                "embedding {} titles and {described} descriptions with the base encoder, the \
                 distillation's anchors ...",
                examples.len()
            );
            let start = std::time::Instant::now();
            anchor(
                &trained.model,
                &mut examples,
                trained.tokenizer.pad_id(),
                opts.batch_size.max(64),
                self.device,
            )?;
            eprintln!("anchors ready in {:.0} s", start.elapsed().as_secs_f64());
        }
        Ok((trained, examples))
    }

    /// Seconds per optimizer step (forward, backward, AdamW, the multitask loss included) over
    /// `steps` timed steps after `warmup` untimed ones, on the first training items.
    pub fn time_steps(&self, warmup: usize, steps: usize) -> Result<Vec<f64>> {
        let opts = self.options;
        let records = self.dataset.split(Split::Train);
        let needed = (warmup + steps) * opts.batch_size;
        if records.len() < needed.max(2) {
            bail!(
                "need {needed} training items for this benchmark, have {}",
                records.len()
            );
        }
        let (trained, examples) = self.prepare(&records[..needed])?;
        let task = trained.task(opts, (0, 0));
        let mut stepper = Stepper::new(&trained.varmap, opts.weight_decay, self.device)?.timed();
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let dropout = DropoutRng::new(opts.seed);
        let order: Vec<usize> = (0..examples.len()).collect();
        let mut timings = Vec::with_capacity(steps);
        for (i, batch) in order.chunks(opts.batch_size).enumerate() {
            let step = stepper.step(
                &task,
                &examples,
                batch,
                &mut |n| rng.gen_range(0..n),
                &dropout,
                opts.lr,
                opts.clip,
            )?;
            if i >= warmup {
                timings.push(step.phases.iter().sum());
            }
        }
        Ok(timings)
    }
}
