//! The training loop: NER cross-entropy plus, optionally, the title/description objective of
//! Siskind & Shah (triplet, either form) or in-batch InfoNCE, summed with weight lambda. AdamW with
//! warm-up/decay and clipping, early stopping on dev F1, atomic checkpoints, JSONL metrics.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use multitag_core::{LabelMap, LabeledRecord, NerReport, Split};
use multitag_model::{
    collate_to, info_nce_loss, mean_pool, pad_rows, token_cross_entropy, triplet_loss, DropoutRng,
    Mode, NerModel, Tagger, TripletForm, WordTokenizer,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::evaluate::evaluate_ner;
use crate::model_dir::{save_model, write_atomic, ModelDir};
use crate::optim::{learning_rate, AdamW};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// NER only: plain fine-tuning, the paper's baseline.
    None,
    /// NER + lambda * triplet loss on cos(t, d+) - cos(t, d-).
    Triplet,
    /// NER + lambda * in-batch InfoNCE from titles to descriptions.
    Infonce,
}

#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct TrainOptions {
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f64,
    /// Fraction of steps with linear warm-up.
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 disables).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    #[arg(long, default_value_t = 48)]
    pub title_tokens: usize,
    #[arg(long, default_value_t = 128)]
    pub description_tokens: usize,
    #[arg(long, value_enum, default_value_t = Objective::None)]
    pub objective: Objective,
    /// Weight of the description objective (0 = plain fine-tuning).
    #[arg(long, default_value_t = 1.0)]
    pub lambda: f64,
    /// bpr: -ln sigmoid(d); sigmoid: 1 - sigmoid(d), the paper's objective taken literally.
    #[arg(long, default_value_t = TripletForm::Bpr)]
    pub triplet_form: TripletForm,
    /// InfoNCE temperature.
    #[arg(long, default_value_t = 0.05)]
    pub temperature: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many epochs without a better dev F1.
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// Train on only the first N training items (a reduced budget for CPU runs).
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Compute precision of the encoder: f32, or bf16 mixed precision (f32 master weights,
    /// optimizer state and loss; for CUDA).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    #[serde(default)]
    pub precision: Precision,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

impl TrainOptions {
    pub fn uses_descriptions(&self) -> bool {
        self.objective != Objective::None && self.lambda > 0.0
    }

    pub fn variant_name(&self) -> String {
        match (self.objective, self.uses_descriptions()) {
            (_, false) => "baseline".into(),
            (Objective::Triplet, _) => format!("triplet-{} λ={}", self.triplet_form, self.lambda),
            (Objective::Infonce, _) => format!("infonce τ={} λ={}", self.temperature, self.lambda),
            (Objective::None, _) => unreachable!("uses_descriptions is false for None"),
        }
    }
}

/// A training title with its per-sub-word targets, and its description's ids.
pub(crate) struct Example {
    pub ids: Vec<u32>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
    pub description: Vec<u32>,
}

/// Tokenizes one item: each word's tag goes on its first sub-word (the others carry weight 0), and
/// the description is encoded only when given.
pub(crate) fn encode_example(
    tokenizer: &WordTokenizer,
    labels: &LabelMap,
    words: &[String],
    tags: &[String],
    description: Option<&str>,
    opts: &TrainOptions,
) -> Result<Example> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let enc = tokenizer.encode_words(&words, opts.title_tokens)?;
    let mut targets = vec![0u32; enc.ids.len()];
    let mut weights = vec![0f32; enc.ids.len()];
    for (tag, position) in tags.iter().zip(&enc.first_subword) {
        if let Some(p) = position {
            let id = labels
                .id(tag)
                .with_context(|| format!("tag {tag} not in label map"))?;
            targets[*p] = id as u32;
            weights[*p] = 1.0;
        }
    }
    let description = match description {
        Some(text) => tokenizer.encode_text(text, opts.description_tokens)?,
        None => Vec::new(),
    };
    Ok(Example {
        ids: enc.ids,
        targets,
        weights,
        description,
    })
}

fn build_examples(
    tagger: &Tagger,
    records: &[&LabeledRecord],
    opts: &TrainOptions,
) -> Result<Vec<Example>> {
    records
        .iter()
        .map(|r| {
            let description = opts.uses_descriptions().then_some(r.description.as_str());
            encode_example(
                &tagger.tokenizer,
                &tagger.model.labels,
                &r.words,
                &r.tags,
                description,
                opts,
            )
            .with_context(|| format!("item {}", r.id))
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    pub ner_loss: f64,
    pub aux_loss: f64,
    pub grad_norm: f64,
    pub seconds: f64,
    pub sequences_per_second: f64,
    pub dev: NerReport,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    epochs_done: usize,
    step: usize,
    best_dev_f1: f64,
    epochs_without_gain: usize,
    options: TrainOptions,
}

pub struct TrainOutcome {
    pub tagger: Tagger,
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
        let (varmap, mut model) = self.base.trainable(self.labels, self.device, opts.seed)?;
        model.encoder.compute_dtype = opts.precision.dtype();
        let tagger = Tagger::new(model, self.base.tokenizer()?, self.device.clone());
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
        let examples = build_examples(&tagger, &train_records, opts)?;
        let steps_per_epoch = examples.len().div_ceil(opts.batch_size);
        let total_steps = steps_per_epoch * opts.epochs;
        let mut optimizer = AdamW::new(&varmap, opts.weight_decay)?;

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
            state = load_checkpoint(dir, &varmap, &mut optimizer)?;
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
            let (mut sum_loss, mut sum_ner, mut sum_aux, mut norm) = (0.0, 0.0, 0.0, 0.0);
            let mut lr = 0.0;
            for batch in order.chunks(opts.batch_size) {
                lr = learning_rate(opts.lr, state.step, total_steps, opts.warmup);
                let (ner, aux, loss) =
                    self.step_loss(&tagger, &examples, batch, &mut rng, &dropout)?;
                let grads = loss.backward()?;
                norm = optimizer.step(&grads, lr, opts.clip)?;
                state.step += 1;
                sum_loss += loss.to_scalar::<f32>()? as f64;
                sum_ner += ner;
                sum_aux += aux;
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
            let dev = evaluate_ner(&tagger, &dev_records, 64)?;
            let log = EpochLog {
                epoch: epoch + 1,
                step: state.step,
                lr,
                loss: sum_loss / steps_per_epoch as f64,
                ner_loss: sum_ner / steps_per_epoch as f64,
                aux_loss: sum_aux / steps_per_epoch as f64,
                grad_norm: norm,
                seconds,
                sequences_per_second: examples.len() as f64 / seconds,
                dev,
            };
            eprintln!(
                "epoch {}/{}: loss {:.4} (ner {:.4}, aux {:.4}), dev F1 {:.2}, {:.0} s, {:.1} seq/s",
                log.epoch,
                opts.epochs,
                log.loss,
                log.ner_loss,
                log.aux_loss,
                100.0 * log.dev.f1,
                seconds,
                log.sequences_per_second
            );
            state.epochs_done = epoch + 1;
            if log.dev.f1 > state.best_dev_f1 {
                state.best_dev_f1 = log.dev.f1;
                state.epochs_without_gain = 0;
                best = Some(snapshot(&varmap)?);
                if let Some(out) = self.out {
                    let meta = serde_json::json!({"options": opts, "epoch": epoch + 1, "dev": &log.dev, "variant": opts.variant_name()});
                    save_model(out, &varmap, self.base, self.labels, &meta)?;
                }
            } else {
                state.epochs_without_gain += 1;
            }
            if let Some(out) = self.out {
                append_jsonl(&out.join("metrics.jsonl"), &log)?;
                save_checkpoint(
                    checkpoint_dir.as_ref().unwrap(),
                    &varmap,
                    &optimizer,
                    &state,
                )?;
            }
            history.push(log);
        }
        if let Some(best) = best {
            restore(&varmap, &best)?;
        }
        Ok(TrainOutcome {
            tagger,
            history,
            best_dev_f1: state.best_dev_f1,
            train_seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Seconds per optimizer step (forward, backward, AdamW, the multitask loss included) over
    /// `steps` timed steps after `warmup` untimed ones, on the first training items.
    pub fn time_steps(&self, warmup: usize, steps: usize) -> Result<Vec<f64>> {
        let opts = self.options;
        let (varmap, mut model) = self.base.trainable(self.labels, self.device, opts.seed)?;
        model.encoder.compute_dtype = opts.precision.dtype();
        let tagger = Tagger::new(model, self.base.tokenizer()?, self.device.clone());
        let records = self.dataset.split(Split::Train);
        let needed = (warmup + steps) * opts.batch_size;
        if records.len() < needed.max(2) {
            bail!(
                "need {needed} training items for this benchmark, have {}",
                records.len()
            );
        }
        let examples = build_examples(&tagger, &records[..needed], opts)?;
        let mut optimizer = AdamW::new(&varmap, opts.weight_decay)?;
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let dropout = DropoutRng::new(opts.seed);
        let order: Vec<usize> = (0..examples.len()).collect();
        let mut timings = Vec::with_capacity(steps);
        for (i, batch) in order.chunks(opts.batch_size).enumerate() {
            let start = Instant::now();
            let (_, _, loss) = self.step_loss(&tagger, &examples, batch, &mut rng, &dropout)?;
            optimizer.step(&loss.backward()?, opts.lr, opts.clip)?;
            self.device.synchronize()?;
            if i >= warmup {
                timings.push(start.elapsed().as_secs_f64());
            }
        }
        Ok(timings)
    }

    /// Forward pass and the summed loss for one batch: (ner value, aux value, total loss tensor).
    fn step_loss(
        &self,
        tagger: &Tagger,
        examples: &[Example],
        batch: &[usize],
        rng: &mut StdRng,
        dropout: &DropoutRng,
    ) -> Result<(f64, f64, Tensor)> {
        let opts = self.options;
        let rows: Vec<&Example> = batch.iter().map(|&i| &examples[i]).collect();
        let mut descriptions: Vec<&[u32]> = Vec::new();
        let mut negatives = Vec::new();
        if opts.uses_descriptions() {
            descriptions.extend(rows.iter().map(|e| e.description.as_slice()));
            if opts.objective == Objective::Triplet {
                let (in_batch, outside) = in_batch_negatives(batch, examples.len(), rng);
                negatives = in_batch;
                descriptions.extend(outside.map(|j| examples[j].description.as_slice()));
            }
        }
        let batch = TrainBatch {
            rows,
            descriptions,
            negatives: &negatives,
            min_widths: (0, 0),
        };
        let loss = batch.loss(
            &tagger.model,
            tagger.tokenizer.pad_id(),
            opts,
            &Mode::Train(dropout),
            self.device,
        )?;
        let aux_value = match &loss.aux {
            Some(aux) => aux.to_scalar::<f32>()? as f64,
            None => 0.0,
        };
        Ok((loss.ner.to_scalar::<f32>()? as f64, aux_value, loss.total))
    }
}

/// Each row's triplet negative, as an index into the batch's descriptions: another row of the
/// same batch, `k` rows on (cyclically) for a random `k` in 1..len. Batches are shuffled samples of
/// the training items, so this is a random other item, and its description is encoded once for
/// both roles, which halves the description work of a step. A batch of one has no other row: the
/// second value is then a random other item of all `items`, whose description goes at index 1.
pub(crate) fn in_batch_negatives(
    batch: &[usize],
    items: usize,
    rng: &mut StdRng,
) -> (Vec<usize>, Option<usize>) {
    let n = batch.len();
    if n == 1 {
        let mut j = rng.gen_range(0..items - 1);
        if j >= batch[0] {
            j += 1;
        }
        return (vec![1], Some(j));
    }
    (rows_on(n, rng.gen_range(1..n)), None)
}

/// Row i's negative is row `(i + k) % n`: for 0 < k < n, another row of the batch.
pub(crate) fn rows_on(n: usize, k: usize) -> Vec<usize> {
    (0..n).map(|i| (i + k) % n).collect()
}

/// The losses of one training batch.
pub(crate) struct BatchLoss {
    pub ner: Tensor,
    /// The description loss (before `lambda`), when the objective uses descriptions.
    pub aux: Option<Tensor>,
    /// `ner + lambda * aux`.
    pub total: Tensor,
}

/// One training batch, as `trainer train` and `trainer bench` feed it to the model.
pub(crate) struct TrainBatch<'a> {
    pub rows: Vec<&'a Example>,
    /// The rows' own descriptions (in row order), encoded in one pass; empty when the objective
    /// uses no descriptions.
    pub descriptions: Vec<&'a [u32]>,
    /// For the triplet loss, row i's negative: an index into `descriptions` other than i.
    pub negatives: &'a [usize],
    /// Least widths of title and description rows (fixed shapes); 0 pads to the longest.
    pub min_widths: (usize, usize),
}

impl TrainBatch<'_> {
    /// NER cross-entropy, plus `lambda` times the description loss when `opts` uses descriptions.
    pub fn loss(
        &self,
        model: &NerModel,
        pad_id: u32,
        opts: &TrainOptions,
        mode: &Mode,
        device: &Device,
    ) -> Result<BatchLoss> {
        let rows = &self.rows;
        let seqs: Vec<&[u32]> = rows.iter().map(|e| e.ids.as_slice()).collect();
        let (ids, mask) = collate_to(&seqs, pad_id, self.min_widths.0, device)?;
        let width = ids.dim(1)?;
        let targets: Vec<&[u32]> = rows.iter().map(|e| e.targets.as_slice()).collect();
        let weights: Vec<&[f32]> = rows.iter().map(|e| e.weights.as_slice()).collect();
        let targets = pad_rows(&targets, width, 0u32, device)?;
        let weights = pad_rows(&weights, width, 0f32, device)?;
        let (hidden, logits) = model.forward(&ids, &mask, mode)?;
        let ner = token_cross_entropy(&logits, &targets, &weights)?;
        if !opts.uses_descriptions() {
            return Ok(BatchLoss {
                total: ner.clone(),
                ner,
                aux: None,
            });
        }
        let titles = mean_pool(&hidden, &mask)?;
        let (d_ids, d_mask) = collate_to(&self.descriptions, pad_id, self.min_widths.1, device)?;
        let described = model.embed(&d_ids, &d_mask, mode)?;
        let n = rows.len();
        let aux = match opts.objective {
            Objective::Triplet => {
                let negatives: Vec<u32> = self.negatives.iter().map(|&j| j as u32).collect();
                let negatives = Tensor::new(negatives.as_slice(), device)?;
                triplet_loss(
                    &titles,
                    &described.narrow(0, 0, n)?,
                    &described.index_select(&negatives, 0)?,
                    opts.triplet_form,
                )?
            }
            Objective::Infonce => info_nce_loss(&titles, &described, opts.temperature)?,
            Objective::None => unreachable!("uses_descriptions() is false"),
        };
        let total = (&ner + (&aux * opts.lambda)?)?;
        Ok(BatchLoss {
            ner,
            aux: Some(aux),
            total,
        })
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

fn snapshot(varmap: &VarMap) -> Result<Vec<(String, Tensor)>> {
    let data = varmap.data().lock().expect("variable map lock");
    data.iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
        .collect()
}

fn snapshot_from_file(path: &Path, device: &Device) -> Result<Vec<(String, Tensor)>> {
    let tensors = candle_core::safetensors::load(path, device)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(tensors.into_iter().collect())
}

fn restore(varmap: &VarMap, values: &[(String, Tensor)]) -> Result<()> {
    let data = varmap.data().lock().expect("variable map lock");
    for (name, value) in values {
        if let Some(var) = data.get(name) {
            var.set(value)?;
        }
    }
    Ok(())
}

fn save_checkpoint(
    dir: &Path,
    varmap: &VarMap,
    optimizer: &AdamW,
    state: &CheckpointState,
) -> Result<()> {
    let staged: PathBuf = dir.with_file_name(format!(".checkpoint.tmp-{}", std::process::id()));
    if staged.exists() {
        std::fs::remove_dir_all(&staged)?;
    }
    std::fs::create_dir_all(&staged)?;
    varmap.save(staged.join("model.safetensors"))?;
    optimizer.save(&staged.join("optimizer.safetensors"))?;
    std::fs::write(
        staged.join("state.json"),
        serde_json::to_string_pretty(state)?,
    )?;
    crate::model_dir::replace_dir(&staged, dir)
}

fn load_checkpoint(dir: &Path, varmap: &VarMap, optimizer: &mut AdamW) -> Result<CheckpointState> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path)
        .with_context(|| format!("no checkpoint to resume from at {}", state_path.display()))?;
    let state: CheckpointState = serde_json::from_str(&text)
        .with_context(|| format!("{}: unreadable", state_path.display()))?;
    let device = varmap
        .all_vars()
        .first()
        .map(|v| v.device().clone())
        .unwrap_or(Device::Cpu);
    restore(
        varmap,
        &snapshot_from_file(&dir.join("model.safetensors"), &device)?,
    )?;
    optimizer.load(&dir.join("optimizer.safetensors"), state.step)?;
    Ok(state)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_batch_negatives_are_other_rows_and_vary() {
        let mut rng = StdRng::seed_from_u64(1);
        let batch: Vec<usize> = (10..42).collect();
        let mut shifts = std::collections::HashSet::new();
        for _ in 0..50 {
            let (negatives, extra) = in_batch_negatives(&batch, 100, &mut rng);
            assert_eq!(extra, None);
            assert_eq!(negatives.len(), batch.len());
            for (i, &j) in negatives.iter().enumerate() {
                assert!(j < batch.len() && j != i, "row {i} got negative {j}");
            }
            shifts.insert(negatives[0]);
        }
        assert!(shifts.len() > 10, "the shift should be random: {shifts:?}");
    }

    #[test]
    fn a_batch_of_one_gets_another_item() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..50 {
            let (negatives, extra) = in_batch_negatives(&[3], 5, &mut rng);
            assert_eq!(negatives, vec![1]);
            let item = extra.expect("an item from outside the batch");
            assert!(item < 5 && item != 3, "item {item}");
        }
    }
}
