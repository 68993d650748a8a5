//! `trainer tag`: tags titles from a file or standard input and writes JSONL entities to stdout.
//! Every skipped line (not UTF-8, damaged CSV, empty title) is printed to stderr as `skipped: ...`
//! with its source and line, and the closing summary gives the totals (docs/damaged-input.md).
//! Each output line holds the title exactly as given (untrimmed: see `multitag_core::titles`), its
//! 1-based input `line`, and its entities, whose `start..end` are character offsets (Unicode scalar
//! values) into that title, so they slice the entity out of the user's own line. A relation model
//! (training.json's `task`) gives each line's entities and the relations between them instead.
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use crate::args::{BackendArgs, DeviceArgs, MatmulArgs};
use crate::input::{read_texts, FormatArgs};
use crate::model_dir::ModelDir;
use crate::train::Task;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: PathBuf,
    /// Input file, or - for standard input.
    #[arg(default_value = "-")]
    input: String,
    #[command(flatten)]
    format: FormatArgs,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    matmul: MatmulArgs,
    #[command(flatten)]
    backend: BackendArgs,
    /// The task the model must be for (checked; by default the one its training.json names).
    #[arg(long, value_enum)]
    task: Option<Task>,
    /// A BINDER model: entity types described in words to tag besides the trained ones (a file
    /// as data/binder/README.md describes; the trained types may be in it, unchanged).
    #[arg(long)]
    types: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        input,
        format,
        batch_size: batch,
        device,
        matmul,
        backend,
        task,
        types,
    } = args;
    let dir = ModelDir::read(&model)?;
    if let Some(task) = task {
        crate::train::check_task(&dir, task)?;
    }
    let device = device.device()?;
    if dir.task == multitag_model::TaskKind::Relations {
        let (_, parsed) = read_texts(&input, &format)?;
        let on = crate::relations::cli::Run {
            device: &device,
            compute: matmul.matmul,
            backend,
        };
        return crate::relations::cli::tag(&dir, &parsed, batch, &on);
    }
    let mut predictor: Box<dyn multitag_model::Predictor> = match (dir.task, types) {
        (multitag_model::TaskKind::Binder, types) => Box::new(
            crate::binder::load_tagger_with_types(&dir, &device, matmul.matmul, types.as_deref())?,
        ),
        (_, Some(_)) => anyhow::bail!(
            "--types adds described types to a BINDER model; {} is a {} model",
            dir.path.display(),
            dir.task.name()
        ),
        (_, None) => dir.predictor(&device, matmul.matmul)?,
    };
    backend.apply(&dir, predictor.as_mut())?;
    let (_, parsed) = read_texts(&input, &format)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut truncated = 0;
    for chunk in parsed.titles.chunks(batch.max(1) * 8) {
        let titles: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
        for ((line, _), tagged) in chunk.iter().zip(predictor.extract(&titles, batch)?) {
            truncated += tagged.truncated as usize;
            let mut value = serde_json::to_value(&tagged)?;
            value["line"] = (*line).into();
            writeln!(out, "{}", serde_json::to_string(&value)?)?;
        }
    }
    out.flush()?;
    eprintln!(
        "tagged {} titles ({} truncated to {} tokens; {} blank lines and {} bad rows skipped)",
        parsed.titles.len(),
        truncated,
        predictor.max_tokens(),
        parsed.blank_lines,
        parsed.problems.len()
    );
    Ok(())
}
