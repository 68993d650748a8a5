//! `trainer train`: fine-tunes a tagger on the training split and keeps the best-dev-F1 model;
//! with `--task relations`, a SpERT / SpERT.MT model on SpERT JSON data ([`crate::relations`]).
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::args::{base_model, DataArgs, DeviceArgs, LabeledArgs};
use crate::output::{prepare_out, TRAINED_MODEL};
use crate::train::{self, check_resume, Task, TrainOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Base model directory [default: .cache/models/all-MiniLM-L6-v2].
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    labeled: LabeledArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// Output model directory (best dev F1), with metrics.jsonl and checkpoint/.
    #[arg(long)]
    out: PathBuf,
    /// Continue from <out>/checkpoint, with the options it was trained with (only --epochs and
    /// --patience may change).
    #[arg(long)]
    resume: bool,
    /// Write into --out even when it holds files that no training wrote (they are kept).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    options: TrainOptions,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        data,
        labeled,
        device,
        out,
        resume,
        force,
        options,
    } = args;
    // The output directory and a resumed checkpoint are checked before any work.
    prepare_out(&out, TRAINED_MODEL, force)?;
    if resume {
        check_resume(&out.join("checkpoint"), &options)?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let base = base_model(model)?;
    if options.task == Task::Relations {
        let files = labeled.relation_files();
        return crate::relations::cli::train(
            &base,
            &files,
            &options,
            &device.device()?,
            &out,
            resume,
        );
    }
    let dataset = labeled.load(&data)?;
    if options.task == Task::Binder {
        let Some(types_path) = labeled.types_file() else {
            anyhow::bail!("--task binder needs --types FILE: each entity type described in words");
        };
        let types = crate::binder::read_types(types_path)?;
        let outcome = crate::binder::train_binder(
            &base,
            &dataset,
            types,
            &types_path.display().to_string(),
            &options,
            &device.device()?,
            Some(&out),
            resume,
        )?;
        eprintln!(
            "best dev F1 {:.2}; model in {} ({:.0} s of training)",
            100.0 * outcome.best_dev_f1,
            out.display(),
            outcome.train_seconds
        );
        return Ok(());
    }
    let outcome = train::TrainRun {
        base: &base,
        dataset: &dataset,
        labels: &dataset.labels,
        options: &options,
        device: &device.device()?,
        out: Some(&out),
        resume,
    }
    .run()?;
    eprintln!(
        "best dev F1 {:.2}; model in {} ({:.0} s of training)",
        100.0 * outcome.best_dev_f1,
        out.display(),
        outcome.train_seconds
    );
    Ok(())
}
