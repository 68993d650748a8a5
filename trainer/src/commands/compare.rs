//! `trainer compare`: trains each variant over several seeds and prints Table 1; with
//! `--task relations`, SpERT against SpERT.MT and its additions ([`crate::relations::compare`]).
use std::path::PathBuf;

use anyhow::Result;

use crate::args::{base_model, gold_or_default, DataArgs, DeviceArgs, LabeledArgs};
use crate::compare;
use crate::data::{load_gold, load_labeled, LabeledFiles};
use crate::train::{Task, TrainOptions};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    labeled: LabeledArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[arg(long)]
    gold: Option<PathBuf>,
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// The first seed; runs use seeds first_seed..first_seed+seeds, so several processes can
    /// share the work and a final `compare` over their merged runs.jsonl prints the table.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "baseline,triplet-bpr:0.03,triplet-bpr:0.1,triplet-bpr:0.3,triplet-bpr:1,triplet-sigmoid:1,infonce:0.1",
        default_value_if(
            "task",
            "relations",
            "spert,spert-mt,spert+mtl,spert+iou,spert+enriched"
        )
    )]
    variants: Vec<String>,
    /// Evaluate on only the first N test items (reduced CPU budget).
    #[arg(long)]
    eval_limit: Option<usize>,
    /// Another catalog's titles with descriptions, never trained on (labeled titles in any format
    /// `--data` reads, e.g. what `trainer label --catalog OTHER.csv --columns ...` writes): every
    /// run, and the pretrained encoder, also rank each title's own description among theirs.
    #[arg(long)]
    match_set: Option<PathBuf>,
    /// Train nothing; print the table of the runs already in <out>/runs.jsonl.
    #[arg(long)]
    summary_only: bool,
    /// With --task relations and --data DIR: cross-validation over these folds (`0-9`, `0,3,5`
    /// or `all`; files as for --fold), each seed's figures the mean over them.
    #[arg(long, conflicts_with = "fold", requires = "data")]
    folds: Option<String>,
    #[command(flatten)]
    options: TrainOptions,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        data,
        labeled,
        device,
        gold,
        out,
        seeds,
        first_seed,
        variants,
        eval_limit,
        match_set,
        summary_only,
        folds,
        options,
    } = args;
    let base = base_model(model)?;
    let seeds: Vec<u64> = (first_seed..first_seed + seeds).collect();
    if options.task == Task::Relations {
        let files = labeled.relation_files();
        let folds: Vec<Option<usize>> = match (&folds, &files.data) {
            (Some(spec), Some(dir)) => crate::relations::parse_folds(spec, dir)?
                .into_iter()
                .map(Some)
                .collect(),
            _ => vec![files.fold],
        };
        let variants: Vec<String> = variants.iter().map(|v| v.trim().to_string()).collect();
        for v in &variants {
            multitag_model::tasks::relations::SpanSettings::from_variant(v)
                .map_err(|e| anyhow::anyhow!("--variants: {e}"))?;
        }
        let grid = crate::relations::compare::Grid {
            variants: &variants,
            seeds: &seeds,
            folds: &folds,
        };
        let table = if summary_only {
            crate::relations::compare::summary(grid, &out)?
        } else {
            let device = device.device()?;
            crate::relations::compare::compare(&base, &files, &options, grid, &device, &out)?
        };
        println!("{table}");
        return Ok(());
    }
    let dataset = labeled.load(&data)?;
    let gold = match gold_or_default(gold, &data, &labeled) {
        Some(path) => Some(load_gold(&path, &dataset)?),
        None => None,
    };
    let match_set = match &match_set {
        Some(path) => {
            let files = LabeledFiles::Given {
                train: None,
                dev: None,
                test: Some(path),
            };
            Some(load_labeled(files, 0)?.records)
        }
        None => None,
    };
    let variants = variants
        .iter()
        .map(|v| compare::parse_variant(v.trim(), &options))
        .collect::<Result<Vec<_>>>()?;
    let types = match labeled.types_file() {
        Some(path) => Some((crate::binder::read_types(path)?, path.display().to_string())),
        None => None,
    };
    let table = compare::Comparison {
        base: &base,
        dataset: &dataset,
        gold: gold.as_deref(),
        labels: &dataset.labels,
        device: &device.device()?,
        out: &out,
        eval_limit,
        match_set: match_set.as_deref(),
        summary_only,
        types: types
            .as_ref()
            .map(|(t, source)| (t.as_slice(), source.as_str())),
    }
    .run(&variants, &seeds)?;
    println!("{table}");
    Ok(())
}
