//! The training loop: the tagging task's loss (NER cross-entropy plus, optionally, the
//! title/description objective of Siskind & Shah, triplet in either form or in-batch InfoNCE,
//! weighted by lambda), one [`Stepper`] step per batch (AdamW with warm-up/decay and clipping),
//! early stopping on dev F1, atomic checkpoints, JSONL metrics.
//!
//! | module | what |
//! |---|---|
//! | [`options`] | the training options, objective and precision |
//! | [`examples`] | labeled items to the task's examples |
//! | [`model`] | the model being trained (variables, task model, tokenizer) |
//! | [`step`] | one step: loss, backward, optimizer |
//! | [`checkpoint`] | checkpoints and best-epoch snapshots |
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use multitag_core::{LabelMap, LabeledRecord, NerReport, Split};
use multitag_model::tasks::tagging::TitleExample;
use multitag_model::{DropoutRng, Mode, Task};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::ser::SerializeMap;
use serde::Serialize;

pub mod checkpoint;
pub mod examples;
pub mod model;
pub mod options;
pub mod step;

use checkpoint::{
    load_checkpoint, restore, save_checkpoint, snapshot, snapshot_from_file, CheckpointState,
};
pub use examples::{encode_examples, TrainItem};
pub use model::TrainingModel;
pub use options::{Objective, Precision, TrainOptions};
pub use step::Stepper;

use crate::data::Dataset;
use crate::evaluate::evaluate_ner;
use crate::model_dir::{save_model, write_atomic, ModelDir};
use crate::optim::learning_rate;

/// The training items of `records`, with descriptions where the objective uses them.
pub fn record_items<'a>(
    records: &'a [&'a LabeledRecord],
    opts: &TrainOptions,
) -> impl Iterator<Item = TrainItem<'a>> + 'a {
    let descriptions = opts.uses_descriptions();
    records.iter().map(move |r| TrainItem {
        name: &r.id,
        words: &r.words,
        tags: &r.tags,
        description: descriptions.then_some(r.description.as_str()),
    })
}

/// An epoch's mean losses, by the task's part names: `ner_loss`, `aux_loss`.
#[derive(Debug, Clone)]
pub struct PartLosses(pub Vec<(&'static str, f64)>);

impl Serialize for PartLosses {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(&format!("{name}_loss"), value)?;
        }
        map.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    #[serde(flatten)]
    pub parts: PartLosses,
    pub grad_norm: f64,
    pub seconds: f64,
    pub sequences_per_second: f64,
    pub dev: NerReport,
}

pub struct TrainOutcome {
    pub model: TrainingModel,
    pub history: Vec<EpochLog>,
    pub best_dev_f1: f64,
    pub train_seconds: f64,
}

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
        let dev_records = self.dataset.split(Split::Dev);
        let (trained, examples) = self.prepare(&train_records)?;
        let task = trained.task(opts, (0, 0));
        let steps_per_epoch = examples.len().div_ceil(opts.batch_size);
        let total_steps = steps_per_epoch * opts.epochs;
        let mut stepper = Stepper::new(&trained.varmap, opts.weight_decay, self.device)?;

        let mut state = CheckpointState {
            epochs_done: 0,
            step: 0,
            best_dev_f1: -1.0,
            epochs_without_gain: 0,
            options: opts.clone(),
        };
        let checkpoint_dir = self.out.map(|o| o.join("checkpoint"));
        let mut best: Option<Vec<(String, Tensor)>> = None;
        if self.resume {
            let dir = checkpoint_dir.as_ref().context("--resume needs --out")?;
            state = load_checkpoint(dir, &trained.varmap, &mut stepper.optimizer)?;
            best = Some(snapshot_from_file(
                &self.out.unwrap().join("model.safetensors"),
                self.device,
            )?);
            eprintln!(
                "resuming after epoch {} (step {})",
                state.epochs_done, state.step
            );
        }

        let mut history = Vec::new();
        let started = Instant::now();
        for epoch in state.epochs_done..opts.epochs {
            if state.epochs_without_gain >= opts.patience.max(1) {
                eprintln!(
                    "early stop: no dev F1 gain for {} epochs",
                    state.epochs_without_gain
                );
                break;
            }
            // Per-epoch generators make a resumed run draw exactly what an uninterrupted one would.
            let epoch_seed = opts.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
            let mut rng = StdRng::seed_from_u64(epoch_seed);
            let dropout = DropoutRng::new(epoch_seed);
            if !self.device.is_cpu() {
                // Accelerators draw dropout masks on the device, from its own generator.
                self.device.set_seed(epoch_seed)?;
            }
            let mut order: Vec<usize> = (0..examples.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.gen_range(0..=i));
            }
            let bar = progress_bar(steps_per_epoch, epoch, opts.epochs);
            let epoch_start = Instant::now();
            let names = task.loss_parts();
            let (mut sum_loss, mut sums, mut norm) = (0.0, vec![0.0; names.len()], 0.0);
            let mut lr = 0.0;
            for batch in order.chunks(opts.batch_size) {
                lr = learning_rate(opts.lr, state.step, total_steps, opts.warmup);
                let step = stepper.step(
                    &task,
                    &examples,
                    batch,
                    &mut |n| rng.gen_range(0..n),
                    &Mode::Train(&dropout),
                    lr,
                    opts.clip,
                )?;
                norm = step.grad_norm;
                state.step += 1;
                sum_loss += step.loss;
                for (sum, part) in sums.iter_mut().zip(&step.parts) {
                    *sum += part;
                }
                let seen = bar.position() as usize + 1;
                let rate = (seen * opts.batch_size) as f64 / epoch_start.elapsed().as_secs_f64();
                bar.set_message(format!(
                    "loss {:.4} | {:.1} seq/s",
                    sum_loss / seen as f64,
                    rate
                ));
                bar.inc(1);
            }
            bar.finish_and_clear();
            let seconds = epoch_start.elapsed().as_secs_f64();
            let dev = evaluate_ner(trained.view(), &dev_records, 64)?;
            let log = EpochLog {
                epoch: epoch + 1,
                step: state.step,
                lr,
                loss: sum_loss / steps_per_epoch as f64,
                parts: PartLosses(
                    names
                        .iter()
                        .zip(&sums)
                        .map(|(&name, sum)| (name, sum / steps_per_epoch as f64))
                        .collect(),
                ),
                grad_norm: norm,
                seconds,
                sequences_per_second: examples.len() as f64 / seconds,
                dev,
            };
            let parts: Vec<String> = log
                .parts
                .0
                .iter()
                .map(|(name, value)| format!("{name} {value:.4}"))
                .collect();
            eprintln!(
                "epoch {}/{}: loss {:.4} ({}), dev F1 {:.2}, {:.0} s, {:.1} seq/s",
                log.epoch,
                opts.epochs,
                log.loss,
                parts.join(", "),
                100.0 * log.dev.f1,
                seconds,
                log.sequences_per_second
            );
            state.epochs_done = epoch + 1;
            if log.dev.f1 > state.best_dev_f1 {
                state.best_dev_f1 = log.dev.f1;
                state.epochs_without_gain = 0;
                best = Some(snapshot(&trained.varmap)?);
                if let Some(out) = self.out {
                    let meta = serde_json::json!({"options": opts, "epoch": epoch + 1, "dev": &log.dev, "variant": opts.variant_name()});
                    save_model(out, &trained.varmap, self.base, self.labels, &meta)?;
                }
            } else {
                state.epochs_without_gain += 1;
            }
            if let Some(out) = self.out {
                append_jsonl(&out.join("metrics.jsonl"), &log)?;
                save_checkpoint(
                    checkpoint_dir.as_ref().unwrap(),
                    &trained.varmap,
                    &stepper.optimizer,
                    &state,
                )?;
            }
            history.push(log);
        }
        if let Some(best) = best {
            restore(&trained.varmap, &best)?;
        }
        Ok(TrainOutcome {
            model: trained,
            history,
            best_dev_f1: state.best_dev_f1,
            train_seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The model to train, from the base, and the examples of `records`.
    fn prepare(&self, records: &[&LabeledRecord]) -> Result<(TrainingModel, Vec<TitleExample>)> {
        let opts = self.options;
        let trained = TrainingModel::from_base(self.base, self.labels, self.device, opts)?;
        let items = record_items(records, opts);
        let examples = encode_examples(&trained.tokenizer, self.labels, items, opts)?;
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
                &Mode::Train(&dropout),
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

fn progress_bar(steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
    bar
}

fn append_jsonl<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{}", serde_json::to_string(value)?)?;
    Ok(())
}

/// Writes `contents` as the JSON file `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())
}
