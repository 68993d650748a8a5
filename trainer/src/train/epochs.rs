//! The epoch loop, for any [`Method`]: seeded shuffling, one [`Stepper`] step per batch (AdamW
//! with warm-up/decay and clipping), a dev evaluation per epoch that keeps the best model (saved,
//! and restored at the end), early stopping, atomic checkpoints, JSONL metrics.
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use multitag_model::{DropoutRng, Task};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::ser::SerializeMap;
use serde::Serialize;

use super::checkpoint::{
    load_checkpoint, restore, save_checkpoint, snapshot, snapshot_from_file, CheckpointState,
};
use super::{Method, Stepper, TrainOptions};
use crate::output::write_atomic;

/// An epoch's mean losses, by the task's part names, serialized as `<name>_loss`.
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

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog<D> {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    #[serde(flatten)]
    pub parts: PartLosses,
    pub grad_norm: f64,
    pub seconds: f64,
    pub sequences_per_second: f64,
    pub dev: D,
}

pub struct Epochs<D> {
    pub history: Vec<EpochLog<D>>,
    pub best_dev_score: f64,
    pub train_seconds: f64,
}

/// Trains `method` on `examples` for `opts.epochs` epochs of `opts.batch_size`. With `out`, the
/// best model is saved there after each better epoch, and each epoch appends to
/// `metrics.jsonl` and replaces `checkpoint/`; `resume` continues from that checkpoint.
pub fn train_epochs<M: Method>(
    method: &M,
    examples: &[M::Example],
    opts: &TrainOptions,
    device: &Device,
    out: Option<&Path>,
    resume: bool,
) -> Result<Epochs<M::DevReport>> {
    let task = method.task();
    let varmap = method.varmap();
    let steps_per_epoch = examples.len().div_ceil(opts.batch_size);
    let total_steps = steps_per_epoch * opts.epochs;
    let mut stepper = Stepper::with_style(varmap, opts.weight_decay, M::ADAMW, device)?;

    let mut state = CheckpointState {
        epochs_done: 0,
        step: 0,
        best_dev_f1: -1.0,
        epochs_without_gain: 0,
        options: opts.clone(),
    };
    let checkpoint_dir = out.map(|o| o.join("checkpoint"));
    let mut best: Option<Vec<(String, Tensor)>> = None;
    if resume {
        let dir = checkpoint_dir.as_ref().context("--resume needs --out")?;
        state = load_checkpoint(dir, varmap, &mut stepper.optimizer)?;
        best = Some(snapshot_from_file(
            &out.unwrap().join("model.safetensors"),
            device,
        )?);
        eprintln!(
            "resuming after epoch {} (step {})",
            state.epochs_done, state.step
        );
    }

    if let Some(out) = out {
        let metrics = out.join("metrics.jsonl");
        if resume {
            keep_epochs(&metrics, state.epochs_done)?;
        } else {
            // A fresh run starts its log and checkpoint anew: lines and a checkpoint of an
            // earlier run in the same directory would describe another model.
            remove_if_present(&metrics)?;
            let checkpoint = checkpoint_dir.as_ref().expect("set with out");
            if checkpoint.exists() {
                std::fs::remove_dir_all(checkpoint)
                    .with_context(|| format!("removing {}", checkpoint.display()))?;
            }
        }
    }
    let mut history = Vec::new();
    let started = Instant::now();
    for epoch in state.epochs_done..opts.epochs {
        if !M::KEEP_LAST && state.epochs_without_gain >= opts.patience.max(1) {
            eprintln!(
                "early stop: no dev {} gain for {} epochs",
                M::DEV_SCORE,
                state.epochs_without_gain
            );
            break;
        }
        // Per-epoch generators make a resumed run draw exactly what an uninterrupted one would.
        let epoch_seed = opts.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
        let mut rng = StdRng::seed_from_u64(epoch_seed);
        let dropout = DropoutRng::new(epoch_seed);
        if !device.is_cpu() {
            // Accelerators draw dropout masks on the device, from its own generator.
            device.set_seed(epoch_seed)?;
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
            lr = M::ADAMW.learning_rate(opts.lr, state.step, total_steps, opts.warmup);
            let step = stepper.step(
                &task,
                examples,
                batch,
                &mut |n| rng.gen_range(0..n),
                &dropout,
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
        let dev = method.evaluate_dev(epoch + 1 == opts.epochs)?;
        let score = M::dev_score(&dev);
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
        let dev_text = match score {
            Some(score) => format!("dev {} {:.2}", M::DEV_SCORE, 100.0 * score),
            None => "dev not scored".to_string(),
        };
        eprintln!(
            "epoch {}/{}: loss {:.4} ({}), {dev_text}, {:.0} s, {:.1} seq/s",
            log.epoch,
            opts.epochs,
            log.loss,
            parts.join(", "),
            seconds,
            log.sequences_per_second
        );
        state.epochs_done = epoch + 1;
        if M::KEEP_LAST || score.is_some_and(|s| s > state.best_dev_f1) {
            state.best_dev_f1 = score.unwrap_or(state.best_dev_f1);
            state.epochs_without_gain = 0;
            best = Some(snapshot(varmap)?);
            if let Some(out) = out {
                let meta = serde_json::json!({"task": M::TASK.name(), "options": opts, "epoch": epoch + 1, "dev": &log.dev, "variant": opts.variant_name()});
                method.save(out, &meta)?;
            }
        } else {
            state.epochs_without_gain += 1;
        }
        if let Some(out) = out {
            append_jsonl(&out.join("metrics.jsonl"), &log)?;
            save_checkpoint(
                checkpoint_dir.as_ref().unwrap(),
                varmap,
                &stepper.optimizer,
                &state,
            )?;
        }
        history.push(log);
    }
    if let Some(best) = best {
        restore(varmap, &best)?;
    }
    Ok(Epochs {
        history,
        best_dev_score: state.best_dev_f1,
        train_seconds: started.elapsed().as_secs_f64(),
    })
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

/// Keeps the lines of `metrics.jsonl` up to epoch `epochs_done`, the checkpoint's: a run killed
/// after logging an epoch but before checkpointing it logs that epoch again when resumed.
fn keep_epochs(path: &Path, epochs_done: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("epoch")?.as_u64())
                .is_some_and(|epoch| epoch as usize <= epochs_done)
        })
        .collect();
    let dropped = text.lines().count() - kept.len();
    if dropped > 0 {
        eprintln!(
            "{}: dropping {dropped} line(s) logged after the checkpoint's epoch {epochs_done}",
            path.display()
        );
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        write_atomic(path, out.as_bytes())?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn append_jsonl<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{}", serde_json::to_string(value)?)?;
    Ok(())
}
