//! `trainer bench`: training sequences/s (the full multitask step, and NER only) and tagging
//! titles/s (strings to entities, batch 1 and 32) on one device, with the shapes printed, medians
//! and spread over repetitions, and peak resident memory per workload. `bench/run.sh` runs the
//! PyTorch / onnxruntime reference (`bench/reference/reference.py`) on the same shapes and inputs
//! and prints the ratio; both write the same JSON schema (`schema: multitag-bench/1`).
//!
//! Inputs, identical on both sides: the first catalog items in file order (or, with `--titles`, a
//! plain file of titles, descriptions then being each title's next eight titles joined, since the
//! GPU machine has no catalog). Training steps use the first `batch * (warmup + steps)` items; the
//! negative of row i is row i+1's description, within the batch (cyclically). With `--shapes fixed` (the default) titles are
//! padded to exactly `--title-tokens` and descriptions to `--description-tokens`, so the compute
//! per step does not depend on the text, and our encoder computes the pads as the reference does;
//! `--shapes natural` pads each batch to its longest row, and our encoder drops the pads, as
//! `trainer train` does. Tagging always drops them (what `trainer tag` and the browser do).
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::ValueEnum;
use multitag_core::binder::TypeDescription;
use multitag_core::LabeledText;
use multitag_core::{split_words, LabelMap, SplitMix64};
use multitag_model::tasks::binder::BinderLoss;
use multitag_model::tasks::relations::{RelationLoss, SpanExample};
use multitag_model::tasks::tagging::anchor;
use multitag_model::tasks::Task;
use multitag_model::{DenseCompute, DropoutRng, Predictor, Tagger};
use serde::Serialize;

use crate::args::Backend;
use crate::binder::model::BinderTraining;
use crate::binder::train::binder_example;
use crate::data::Dataset;
use crate::model_dir::ModelDir;
use crate::optim::AdamWStyle;
use crate::relations::{RelationData, RelationModel};
use crate::train::{encode_examples, Objective, Stepper, TrainItem, TrainOptions, TrainingModel};

/// How training batches are padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shapes {
    /// Every title row padded to --title-tokens, every description row to --description-tokens,
    /// and every pad computed: the reference's arithmetic.
    Fixed,
    /// Each batch padded to its longest row, our encoder then dropping the pads (what `trainer
    /// train` does); the reference computes them.
    Natural,
}

/// The measurements `trainer bench` can take; `--workloads` picks a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Forward, backward and AdamW step of NER cross-entropy + lambda * triplet loss.
    TrainMultitask,
    /// The same step with the NER loss only (no descriptions).
    TrainNer,
    /// Strings to entities, one title at a time.
    Tag1,
    /// Strings to entities, 32 titles a batch.
    Tag32,
    /// Strings to entities, 256 titles a batch (where a GPU encoder has room to work).
    Tag256,
    /// `trainer train`'s own step (`TrainRun::time_steps`: training split, pad to longest, random
    /// negatives, the objective of --objective); needs the catalog. Not in the reference.
    TrainLoop,
    /// Forward, backward and AdamW step of the span/relation model (--span-method, SpERT's
    /// sampling and optimizer) on the first sentences of the relation training file (--data DIR
    /// of SpERT JSON), in file order, each sentence at its own length.
    TrainRelations,
    /// Forward, backward and AdamW step of BINDER (its recipe's optimizer: `--task binder`) on the
    /// first sentences with an entity of a labeled file (--train FILE, IOB2 or JSONL) with the
    /// types of --types FILE, in file order, each sentence at its own length.
    TrainBinder,
}

impl Workload {
    /// The key in the JSON `results` object (shared with the reference script).
    pub fn key(self) -> &'static str {
        match self {
            Self::TrainMultitask => "train_multitask",
            Self::TrainNer => "train_ner",
            Self::Tag1 => "tag_batch_1",
            Self::Tag32 => "tag_batch_32",
            Self::Tag256 => "tag_batch_256",
            Self::TrainLoop => "train_loop",
            Self::TrainRelations => "train_relations",
            Self::TrainBinder => "train_binder",
        }
    }
}

/// Median and spread of one workload's repetitions, plus its peak resident memory.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub unit: &'static str,
    pub shape: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub q1: f64,
    pub q3: f64,
    pub repetitions: usize,
    pub items_per_repetition: usize,
    /// Peak resident set size while this workload ran (model, optimizer state and activations
    /// included; the peak is reset before each workload).
    pub peak_rss_mib: Option<f64>,
    /// Training only: the median milliseconds of each phase of a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases_ms: Option<StepPhases>,
}

/// Where a training step's time goes: forward (through the loss), backward, and the optimizer
/// (clipping and AdamW), each a median over the timed steps, in milliseconds. The device is
/// synchronized at each boundary, so on a GPU each phase is its own kernels' time.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StepPhases {
    pub forward: f64,
    pub backward: f64,
    pub optimizer: f64,
}

impl StepPhases {
    /// Medians of per-step `[forward, backward, optimizer]` seconds.
    fn median_of(steps: &[[f64; 3]]) -> Self {
        let median_ms = |phase: usize| {
            let mut xs: Vec<f64> = steps.iter().map(|s| s[phase] * 1e3).collect();
            xs.sort_by(|a, b| a.total_cmp(b));
            quantile(&xs, 0.5)
        };
        Self {
            forward: median_ms(0),
            backward: median_ms(1),
            optimizer: median_ms(2),
        }
    }
}

/// Linear-interpolated quantile of sorted values (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Measurement {
    fn of(
        unit: &'static str,
        shape: String,
        mut xs: Vec<f64>,
        items_per_repetition: usize,
    ) -> Self {
        xs.sort_by(|a, b| a.total_cmp(b));
        Self {
            unit,
            shape,
            median: quantile(&xs, 0.5),
            min: xs.first().copied().unwrap_or(0.0),
            max: xs.last().copied().unwrap_or(0.0),
            q1: quantile(&xs, 0.25),
            q3: quantile(&xs, 0.75),
            repetitions: xs.len(),
            items_per_repetition,
            peak_rss_mib: peak_rss_mib(),
            phases_ms: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BenchReport {
    pub schema: String,
    pub implementation: String,
    pub device: String,
    pub threads: usize,
    pub model: String,
    /// The model the tagging workloads used, when not `model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_model: Option<String>,
    pub hidden_size: usize,
    pub layers: usize,
    pub labels: usize,
    pub input: String,
    pub shapes: Shapes,
    pub train_batch: usize,
    pub title_tokens: usize,
    pub description_tokens: usize,
    pub variant: String,
    pub warmup_steps: usize,
    pub results: serde_json::Map<String, serde_json::Value>,
}

/// One training item of the benchmark input.
pub struct BenchItem {
    pub words: Vec<String>,
    pub tags: Vec<String>,
    pub description: String,
}

/// The benchmark input: titles to tag and items to train on, in input order.
pub struct BenchInput {
    pub source: String,
    pub titles: Vec<String>,
    pub items: Vec<BenchItem>,
    /// The labeled catalog with its split, when the input is the catalog.
    pub dataset: Option<Dataset>,
}

impl BenchInput {
    /// The first catalog items in file order with their derived tags and descriptions.
    pub fn from_catalog(data: &crate::args::DataArgs) -> Result<Self> {
        let dataset = data.load()?;
        Ok(Self {
            source: data.catalog().display().to_string(),
            titles: dataset.records.iter().map(|r| r.title.clone()).collect(),
            items: dataset
                .records
                .iter()
                .map(|r| BenchItem {
                    words: r.words.clone(),
                    tags: r.tags.clone(),
                    description: r.description.clone(),
                })
                .collect(),
            dataset: Some(dataset),
        })
    }

    /// No titles and no items: workloads that read their own input (`source`).
    pub fn empty(source: String) -> Self {
        Self {
            source,
            titles: Vec::new(),
            items: Vec::new(),
            dataset: None,
        }
    }

    /// Titles from a plain file; every word is tagged O (speed does not depend on the tags), and
    /// item i's description is titles i+1..=i+8 joined with ". " (wrapping around).
    pub fn from_titles(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read titles from {}", path.display()))?;
        let titles: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if titles.is_empty() {
            bail!("{}: no titles", path.display());
        }
        let n = titles.len();
        let items = (0..n)
            .map(|i| {
                let words: Vec<String> = split_words(&titles[i])
                    .into_iter()
                    .map(|w| w.text)
                    .collect();
                let description = (1..=8)
                    .map(|k| titles[(i + k) % n].as_str())
                    .collect::<Vec<_>>()
                    .join(". ");
                BenchItem {
                    tags: vec!["O".to_string(); words.len()],
                    words,
                    description,
                }
            })
            .collect();
        Ok(Self {
            source: path.display().to_string(),
            titles,
            items,
            dataset: None,
        })
    }
}

/// The BINDER workload's input: a labeled file's records in file order and the types described.
pub struct BinderBenchData {
    pub records: Vec<LabeledText>,
    pub types: Vec<TypeDescription>,
    /// The labeled file, as errors and the report name it.
    pub source: String,
}

impl BinderBenchData {
    /// `--train FILE` and `--types FILE`.
    pub fn read(labeled: &crate::args::LabeledArgs) -> Result<Self> {
        let (Some(train), Some(types)) = (labeled.train_file(), labeled.types_file()) else {
            bail!(
                "the train-binder workload needs --train FILE (labeled sentences) and --types FILE"
            );
        };
        let source = train.display().to_string();
        let text = std::fs::read_to_string(train).with_context(|| format!("reading {source}"))?;
        let read = multitag_core::read_labeled(&source, &text)?;
        Ok(Self {
            records: read.records,
            types: crate::binder::read_types(types)?,
            source,
        })
    }
}

pub struct Bench<'a> {
    pub base: &'a ModelDir,
    /// The relation extraction dataset, for the span/relation workload.
    pub relations: Option<&'a RelationData>,
    /// BINDER's sentences and types, for its workload.
    pub binder: Option<&'a BinderBenchData>,
    pub tag_model: Option<&'a ModelDir>,
    pub input: &'a BenchInput,
    pub labels: &'a LabelMap,
    pub options: &'a TrainOptions,
    pub device: &'a Device,
    pub shapes: Shapes,
    pub warmup: usize,
    pub steps: usize,
    pub tag_titles: usize,
    pub tag_titles_batch1: usize,
    pub repetitions: usize,
    pub matmul: DenseCompute,
    /// Where the tagging workloads' encoder runs.
    pub backend: Backend,
}

impl Bench<'_> {
    /// What the report's figures are of: the training precision, and how an exported tagging
    /// model multiplies where that is not the default.
    fn implementation(&self) -> String {
        let mut name = match self.options.precision {
            crate::train::Precision::F32 => "multitag (candle)".to_string(),
            crate::train::Precision::Bf16 => "multitag (candle, bf16 training)".to_string(),
        };
        #[cfg(feature = "cuda")]
        if self.device.is_cuda() && multitag_model::kernels::cuda::enabled() {
            name += ", our CUDA training kernels";
        }
        if self.tag_model.is_some() && self.matmul != DenseCompute::default() {
            name += &format!(", tagging with {:?} matmul", self.matmul).to_lowercase();
        }
        if self.backend == Backend::Wgpu {
            name += ", tagging encoder on wgpu";
        }
        name
    }

    pub fn run(&self, workloads: &[Workload]) -> Result<BenchReport> {
        let mut results = serde_json::Map::new();
        for &w in workloads {
            reset_peak_rss();
            let m = match w {
                Workload::TrainMultitask => self.train(true)?,
                Workload::TrainNer => self.train(false)?,
                Workload::Tag1 => self.tag(1, self.tag_titles_batch1)?,
                Workload::Tag32 => self.tag(32, self.tag_titles)?,
                Workload::Tag256 => self.tag(256, self.tag_titles)?,
                Workload::TrainLoop => self.train_loop()?,
                Workload::TrainRelations => self.train_relations()?,
                Workload::TrainBinder => self.train_binder()?,
            };
            eprintln!(
                "  {}: {:.1} {} median (min {:.1}, max {:.1}, {} repetitions), peak RSS {}",
                w.key(),
                m.median,
                m.unit,
                m.min,
                m.max,
                m.repetitions,
                m.peak_rss_mib
                    .map_or("n/a".to_string(), |x| format!("{x:.0} MiB"))
            );
            if let Some(p) = &m.phases_ms {
                eprintln!(
                    "    per step: forward {:.1} ms, backward {:.1} ms, optimizer {:.1} ms (medians)",
                    p.forward, p.backward, p.optimizer
                );
            }
            results.insert(w.key().to_string(), serde_json::to_value(m)?);
        }
        let mut multitask = self.options.clone();
        multitask.objective = crate::train::Objective::Triplet;
        Ok(BenchReport {
            schema: "multitag-bench/1".into(),
            implementation: self.implementation(),
            device: format!("{:?}", self.device),
            threads: candle_core::utils::get_num_threads(),
            model: self.base.path.display().to_string(),
            tag_model: self.tag_model.map(|d| d.path.display().to_string()),
            hidden_size: self.base.config.hidden_size,
            layers: self.base.config.num_hidden_layers,
            labels: self.labels.len(),
            input: self.input.source.clone(),
            shapes: self.shapes,
            train_batch: self.options.batch_size,
            title_tokens: self.options.title_tokens,
            description_tokens: self.options.description_tokens,
            variant: multitask.variant_name(),
            warmup_steps: self.warmup,
            results,
        })
    }

    /// The least widths of title and description rows: the configured lengths for fixed shapes,
    /// none (pad to the longest) for natural ones.
    fn fixed_widths(&self) -> (usize, usize) {
        match self.shapes {
            Shapes::Fixed => (self.options.title_tokens, self.options.description_tokens),
            Shapes::Natural => (0, 0),
        }
    }

    /// Seconds per optimizer step (forward, backward, AdamW with clipping, and with `multitask`
    /// the triplet loss over positive and negative descriptions in one encoder pass).
    fn train(&self, multitask: bool) -> Result<Measurement> {
        let opts = self.options;
        let b = opts.batch_size;
        if b == 0 {
            bail!("--batch-size must be positive");
        }
        if multitask && b < 2 {
            bail!("--batch-size must be at least 2 for the multitask workload (its negatives come from the batch)");
        }
        let needed = b * (self.warmup + self.steps);
        if self.input.items.len() < needed {
            bail!(
                "{}: need {needed} items for {} steps of batch {b}, have {}",
                self.input.source,
                self.warmup + self.steps,
                self.input.items.len()
            );
        }
        // The objective of the workload (the triplet loss, or none) on the given options.
        let mut workload_opts = opts.clone();
        workload_opts.objective = if multitask {
            Objective::Triplet
        } else {
            Objective::None
        };
        let mut trained = TrainingModel::from_base(self.base, self.labels, self.device, opts)?;
        // Fixed shapes compare arithmetic with the reference, which computes every pad.
        trained.model.encoder.drop_padding = self.shapes == Shapes::Natural;
        // Every item with its description, whatever the workload (as the reference encodes them).
        let items = self.input.items[..needed]
            .iter()
            .enumerate()
            .map(|(i, item)| TrainItem {
                name: &self.input.titles[i],
                words: &item.words,
                tags: &item.tags,
                description: Some(&item.description),
            });
        let mut examples = encode_examples(&trained.tokenizer, self.labels, items, opts)?;
        if opts.distill > 0.0 {
            // The anchors are made once before training, so they are not part of a step.
            anchor(
                &trained.model,
                &mut examples,
                trained.tokenizer.pad_id(),
                64,
                self.device,
            )?;
        }
        let mut stepper = Stepper::new(&trained.varmap, opts.weight_decay, self.device)?.timed();
        let dropout = DropoutRng::new(opts.seed);
        let shape = if multitask {
            format!(
                "{b}x{} titles + {b}x{} descriptions",
                opts.title_tokens, opts.description_tokens
            )
        } else {
            format!("{b}x{} titles", opts.title_tokens)
        };
        eprintln!(
            "timing {} training steps ({}, {shape}, {:?} shapes) after {} warm-up ...",
            self.steps,
            if multitask {
                "NER + triplet"
            } else {
                "NER only"
            },
            self.shapes,
            self.warmup
        );
        let task = trained.task(&workload_opts, self.fixed_widths());
        // Row i's negative: the next row's description (in-batch, as `trainer train`, with the
        // shift fixed at one row: the draw is always 0).
        self.timed_steps(&mut stepper, &task, &examples, &dropout, &mut |_| 0, shape)
    }

    /// Seconds per step of the training loop itself, as a check that the steps above match it.
    fn train_loop(&self) -> Result<Measurement> {
        let dataset = self
            .input
            .dataset
            .as_ref()
            .context("the train-loop workload needs the catalog (not --titles)")?;
        let opts = self.options;
        eprintln!(
            "timing {} steps of the training loop ({}, batch {}) after {} warm-up ...",
            self.steps,
            opts.variant_name(),
            opts.batch_size,
            self.warmup
        );
        let seconds = crate::train::TrainRun {
            base: self.base,
            dataset,
            labels: self.labels,
            options: opts,
            device: self.device,
            out: None,
            resume: false,
        }
        .time_steps(self.warmup, self.steps)?;
        Ok(Measurement::of(
            "seq/s",
            format!(
                "{}x<={} titles (natural), {}",
                opts.batch_size,
                opts.title_tokens,
                opts.variant_name()
            ),
            seconds.iter().map(|s| opts.batch_size as f64 / s).collect(),
            opts.batch_size,
        ))
    }

    /// Sentences per second of the span/relation step: batches of `--batch-size` consecutive
    /// training sentences from the first, negatives drawn as in training (seeded by `--seed`),
    /// SpERT's optimizer; phases timed as in [`Self::train`].
    fn train_relations(&self) -> Result<Measurement> {
        let data = self.relations.context(
            "the train-relations workload needs relation data (--task relations --data DIR)",
        )?;
        let opts = self.options;
        let b = opts.batch_size;
        if b == 0 {
            bail!("--batch-size must be positive");
        }
        let needed = b * (self.warmup + self.steps);
        if data.train.len() < needed {
            bail!(
                "need {needed} training sentences for {} steps of batch {b}, have {}",
                self.warmup + self.steps,
                data.train.len()
            );
        }
        let model = RelationModel::from_base(self.base, &data.types, self.device, opts)?;
        let read = SpanExample::from_documents(
            &model.tokenizer,
            &data.train[..needed],
            model.model.max_positions(),
        )?;
        if let Some((index, e)) = read.too_long.first() {
            bail!("training document {index}: {e}");
        }
        let examples = read.examples;
        let mut stepper = Stepper::with_style(
            &model.varmap,
            opts.weight_decay,
            AdamWStyle::Spert,
            self.device,
        )?
        .timed();
        let task = RelationLoss {
            model: &model.model,
            sampling: model.recipe.sampling,
            device: self.device,
        };
        let dropout = DropoutRng::new(opts.seed);
        let mut rng = SplitMix64::new(opts.seed);
        let subwords: usize = examples.iter().map(|e| e.sentence.ids.len()).sum();
        let shape = format!(
            "{b} sentences a step ({:.1} sub-words on average), {}, {} + {} negatives",
            subwords as f64 / examples.len() as f64,
            model.recipe.settings.variant(),
            opts.neg_entities,
            opts.neg_relations
        );
        eprintln!(
            "timing {} span/relation steps ({shape}) after {} warm-up ...",
            self.steps, self.warmup
        );
        let mut draw = |n: usize| rng.below(n as u64) as usize;
        self.timed_steps(&mut stepper, &task, &examples, &dropout, &mut draw, shape)
    }

    /// Sentences per second of BINDER's step: batches of `--batch-size` consecutive sentences
    /// with an entity from the first; every type's description encoded each step, as in
    /// training; phases timed as in [`Self::train`].
    fn train_binder(&self) -> Result<Measurement> {
        let data = self.binder.context(
            "the train-binder workload needs --train FILE (labeled sentences) and --types FILE",
        )?;
        let opts = self.options;
        let b = opts.batch_size;
        if b == 0 {
            bail!("--batch-size must be positive");
        }
        let needed = b * (self.warmup + self.steps);
        let model = BinderTraining::from_base(self.base, data.types.clone(), self.device, opts)?;
        let index = (data.types.iter().enumerate())
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let mut examples = Vec::with_capacity(needed);
        for record in &data.records {
            if examples.len() == needed {
                break;
            }
            let id = format!("{}:{}", data.source, record.line);
            if let Some(e) = binder_example(&model, &id, &record.words, &record.tags, &index)? {
                examples.push(e);
            }
        }
        if examples.len() < needed {
            bail!(
                "need {needed} sentences with an entity for {} steps of batch {b}, {} has {}",
                self.warmup + self.steps,
                data.source,
                examples.len()
            );
        }
        let mut stepper = Stepper::with_style(
            &model.varmap,
            opts.weight_decay,
            AdamWStyle::Pytorch,
            self.device,
        )?
        .timed();
        let task = BinderLoss {
            model: &model.model,
            descriptions: &model.descriptions,
            device: self.device,
        };
        let dropout = DropoutRng::new(opts.seed);
        let subwords: usize = examples.iter().map(|e| e.sentence.ids.len()).sum();
        let shape = format!(
            "{b} sentences a step ({:.1} sub-words on average), {} types described",
            subwords as f64 / examples.len() as f64,
            data.types.len()
        );
        eprintln!(
            "timing {} BINDER steps ({shape}) after {} warm-up ...",
            self.steps, self.warmup
        );
        self.timed_steps(&mut stepper, &task, &examples, &dropout, &mut |_| 0, shape)
    }

    /// `warmup` untimed then `steps` timed steps on consecutive batches of `--batch-size`
    /// examples from the first: sequences per second of each timed step and its phases' medians.
    fn timed_steps<T: Task>(
        &self,
        stepper: &mut Stepper,
        task: &T,
        examples: &[T::Example],
        dropout: &DropoutRng,
        draw: &mut dyn FnMut(usize) -> usize,
        shape: String,
    ) -> Result<Measurement> {
        let (b, opts) = (self.options.batch_size, self.options);
        let mut rates = Vec::with_capacity(self.steps);
        let mut phases = Vec::with_capacity(self.steps);
        for step in 0..self.warmup + self.steps {
            let batch: Vec<usize> = (step * b..(step + 1) * b).collect();
            let report = stepper.step(task, examples, &batch, draw, dropout, opts.lr, opts.clip)?;
            if !report.loss.is_finite() {
                bail!("loss is {} at step {step}", report.loss);
            }
            if step >= self.warmup {
                rates.push(b as f64 / report.phases.iter().sum::<f64>());
                phases.push(report.phases);
            }
        }
        let mut measurement = Measurement::of("seq/s", shape, rates, b);
        measurement.phases_ms = Some(StepPhases::median_of(&phases));
        Ok(measurement)
    }

    /// Titles per second from strings to entities over the first `count` input titles.
    fn tag(&self, batch: usize, count: usize) -> Result<Measurement> {
        // A trained or exported (possibly quantized) tagger is timed as it is; a base encoder
        // gets a fresh head, which tags at the same speed as a trained one.
        let dir = self.tag_model.unwrap_or(self.base);
        let mut tagger: Box<dyn Predictor> = if dir.is_trained() {
            dir.predictor(self.device, self.matmul)?
        } else {
            let (_, model) = dir.trainable(self.labels, self.device, 0, 0)?;
            Box::new(Tagger::new(model, dir.tokenizer()?, self.device.clone()))
        };
        let on = match self.backend {
            Backend::Cpu => String::new(),
            Backend::Wgpu => {
                let encoder = tagger
                    .text_encoder_mut()
                    .context("this tagger's encoder cannot move to the GPU")?;
                format!(", encoder on {}", dir.encoder_on_gpu(encoder)?)
            }
        };
        let titles: Vec<&str> = self
            .input
            .titles
            .iter()
            .take(count)
            .map(String::as_str)
            .collect();
        if titles.is_empty() {
            bail!("no titles to tag");
        }
        eprintln!(
            "timing tagging of {} titles at batch {batch}, {} repetitions ...",
            titles.len(),
            self.repetitions
        );
        tagger.extract(&titles[..titles.len().min(32)], batch)?; // warm-up
        self.device.synchronize()?;
        let mut rates = Vec::with_capacity(self.repetitions);
        for _ in 0..self.repetitions {
            let start = Instant::now();
            let tagged = tagger.extract(&titles, batch)?;
            self.device.synchronize()?;
            rates.push(titles.len() as f64 / start.elapsed().as_secs_f64());
            std::hint::black_box(tagged);
        }
        Ok(Measurement::of(
            "titles/s",
            format!(
                "{} titles, batch {batch}, <= {} tokens{on}",
                titles.len(),
                tagger.max_tokens()
            ),
            rates,
            titles.len(),
        ))
    }
}

/// Peak resident set size since the last reset, from /proc (Linux); `None` elsewhere.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the kernel's peak-RSS counter (VmHWM) to the current RSS (Linux 4.0+); a no-op elsewhere.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn print_bench(r: &BenchReport) {
    println!(
        "{} | device {} ({} threads) | model {} (hidden {}, {} layers, {} labels) | input {} | {:?} shapes",
        r.implementation, r.device, r.threads, r.model, r.hidden_size, r.layers, r.labels, r.input, r.shapes
    );
    if let Some(tag_model) = &r.tag_model {
        println!("tagging with {tag_model}");
    }
    println!("| workload | shape | median | min | q1 | q3 | max | reps | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let keys: Vec<&str> = Workload::value_variants().iter().map(|w| w.key()).collect();
    for &key in &keys {
        let Some(value) = r.results.get(key) else {
            continue;
        };
        let Ok(m) = serde_json::from_value::<MeasurementView>(value.clone()) else {
            continue;
        };
        println!(
            "| {key} | {} | {:.1} {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            m.shape,
            m.median,
            m.unit,
            m.min,
            m.q1,
            m.q3,
            m.max,
            m.repetitions,
            m.peak_rss_mib.map_or("n/a".into(), |x| format!("{x:.0}"))
        );
    }
    let phases: Vec<(&str, StepPhases)> = keys
        .iter()
        .filter_map(|&key| {
            let m = serde_json::from_value::<MeasurementView>(r.results.get(key)?.clone()).ok()?;
            Some((key, m.phases_ms?))
        })
        .collect();
    if !phases.is_empty() {
        println!();
        println!("| training step (ms, medians) | forward | backward | optimizer |");
        println!("|---|---|---|---|");
        for (key, p) in phases {
            println!(
                "| {key} | {:.1} | {:.1} | {:.1} |",
                p.forward, p.backward, p.optimizer
            );
        }
    }
}

#[derive(serde::Deserialize)]
struct MeasurementView {
    unit: String,
    shape: String,
    median: f64,
    min: f64,
    max: f64,
    q1: f64,
    q3: f64,
    pub repetitions: usize,
    peak_rss_mib: Option<f64>,
    phases_ms: Option<StepPhases>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_phases_are_medians_in_milliseconds() {
        let steps = [[0.1, 0.3, 0.05], [0.3, 0.2, 0.01], [0.2, 0.1, 0.03]];
        let p = StepPhases::median_of(&steps);
        assert!((p.forward - 200.0).abs() < 1e-9);
        assert!((p.backward - 200.0).abs() < 1e-9);
        assert!((p.optimizer - 30.0).abs() < 1e-9);
    }

    #[test]
    fn spread_is_median_quartiles_and_range() {
        let m = Measurement::of("x", String::new(), vec![5.0, 1.0, 3.0, 2.0, 4.0], 1);
        assert_eq!((m.median, m.min, m.max), (3.0, 1.0, 5.0));
        assert_eq!((m.q1, m.q3), (2.0, 4.0));
        let even = Measurement::of("x", String::new(), vec![1.0, 2.0], 1);
        assert_eq!(even.median, 1.5);
        assert_eq!(even.repetitions, 2);
    }

    #[test]
    fn titles_file_input_synthesises_descriptions() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("multitag-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("titles.txt");
        std::fs::write(&path, "Nike Men Black Shoes\n\nPuma Women Red T-shirt\n")?;
        let input = BenchInput::from_titles(&path)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(input.titles.len(), 2);
        assert_eq!(input.items[0].words.len(), input.items[0].tags.len());
        assert!(input.items[0]
            .description
            .starts_with("Puma Women Red T-shirt"));
        Ok(())
    }
}
