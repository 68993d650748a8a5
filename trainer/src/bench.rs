//! `trainer bench`: training sequences/s (the full multitask step) and tagging titles/s (strings to
//! entities, batch 1 and 32) on one device, with the shapes printed, medians and spread over
//! repetitions, and peak resident memory. The reference harness of the speed issue compares these
//! against PyTorch in the same run.
use std::time::Instant;

use anyhow::Result;
use candle_core::Device;
use multitag_core::{LabelMap, Split};
use serde::Serialize;

use crate::data::Dataset;
use crate::model_dir::ModelDir;
use crate::train::{TrainOptions, TrainRun};

#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub repetitions: usize,
}

impl Spread {
    fn of(mut xs: Vec<f64>) -> Self {
        xs.sort_by(|a, b| a.total_cmp(b));
        let n = xs.len();
        let median = if n == 0 {
            0.0
        } else if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        };
        Self {
            median,
            min: xs.first().copied().unwrap_or(0.0),
            max: xs.last().copied().unwrap_or(0.0),
            repetitions: n,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub device: String,
    pub model: String,
    pub hidden_size: usize,
    pub layers: usize,
    pub train_batch: usize,
    pub title_tokens: usize,
    pub description_tokens: usize,
    pub variant: String,
    pub train_sequences_per_second: Spread,
    pub tag_titles: usize,
    pub tag_titles_per_second_batch_1: Spread,
    pub tag_titles_per_second_batch_32: Spread,
    pub peak_rss_mib: Option<f64>,
}

pub struct Bench<'a> {
    pub base: &'a ModelDir,
    pub dataset: &'a Dataset,
    pub labels: &'a LabelMap,
    pub options: &'a TrainOptions,
    pub device: &'a Device,
    pub train_steps: usize,
    pub tag_titles: usize,
    pub repetitions: usize,
}

impl Bench<'_> {
    pub fn run(&self) -> Result<BenchReport> {
        let run = TrainRun {
            base: self.base,
            dataset: self.dataset,
            labels: self.labels,
            options: self.options,
            device: self.device,
            out: None,
            resume: false,
        };
        eprintln!(
            "timing {} training steps of batch {} ...",
            self.train_steps, self.options.batch_size
        );
        let step_seconds = run.time_steps(2, self.train_steps)?;
        let train = Spread::of(
            step_seconds
                .iter()
                .map(|s| self.options.batch_size as f64 / s)
                .collect(),
        );

        // A trained model tags at the same speed as the base encoder with a fresh head.
        let (_, model) = self.base.trainable(self.labels, self.device, 0)?;
        let tagger =
            multitag_model::Tagger::new(model, self.base.tokenizer()?, self.device.clone());
        let titles: Vec<&str> = self
            .dataset
            .split(Split::Test)
            .iter()
            .take(self.tag_titles)
            .map(|r| r.title.as_str())
            .collect();
        let mut rates = [Vec::new(), Vec::new()];
        for (slot, batch) in [1usize, 32].into_iter().enumerate() {
            eprintln!(
                "timing tagging of {} titles at batch {batch} ...",
                titles.len()
            );
            tagger.tag(&titles[..titles.len().min(32)], batch)?; // warm-up
            for _ in 0..self.repetitions {
                let start = Instant::now();
                tagger.tag(&titles, batch)?;
                self.device.synchronize()?;
                rates[slot].push(titles.len() as f64 / start.elapsed().as_secs_f64());
            }
        }
        let [batch1, batch32] = rates;
        Ok(BenchReport {
            device: format!("{:?}", self.device),
            model: self.base.path.display().to_string(),
            hidden_size: self.base.config.hidden_size,
            layers: self.base.config.num_hidden_layers,
            train_batch: self.options.batch_size,
            title_tokens: self.options.title_tokens,
            description_tokens: self.options.description_tokens,
            variant: self.options.variant_name(),
            train_sequences_per_second: train,
            tag_titles: titles.len(),
            tag_titles_per_second_batch_1: Spread::of(batch1),
            tag_titles_per_second_batch_32: Spread::of(batch32),
            peak_rss_mib: peak_rss_mib(),
        })
    }
}

/// Peak resident set size from /proc (Linux); `None` elsewhere.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn print_bench(r: &BenchReport) {
    println!(
        "device {} | model {} (hidden {}, {} layers) | {}",
        r.device, r.model, r.hidden_size, r.layers, r.variant
    );
    println!(
        "training: batch {} x {} title tokens (+ descriptions {} tokens when used): {:.1} seq/s median (min {:.1}, max {:.1}, {} steps)",
        r.train_batch,
        r.title_tokens,
        r.description_tokens,
        r.train_sequences_per_second.median,
        r.train_sequences_per_second.min,
        r.train_sequences_per_second.max,
        r.train_sequences_per_second.repetitions
    );
    for (batch, s) in [
        (1, &r.tag_titles_per_second_batch_1),
        (32, &r.tag_titles_per_second_batch_32),
    ] {
        println!(
            "tagging {} titles, batch {batch}: {:.1} titles/s median (min {:.1}, max {:.1}, {} runs)",
            r.tag_titles, s.median, s.min, s.max, s.repetitions
        );
    }
    if let Some(m) = r.peak_rss_mib {
        println!("peak resident memory: {m:.0} MiB");
    }
}
