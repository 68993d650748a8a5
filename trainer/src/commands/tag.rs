//! `trainer tag`: tags titles from a file or standard input and writes JSONL entities to stdout.
//! Every skipped line (not UTF-8, damaged CSV, empty title) is printed to stderr as `skipped: ...`
//! with its source and line, and the closing summary gives the totals (docs/damaged-input.md).
//! Each output line holds the title exactly as given (untrimmed: see `multitag_core::titles`), its
//! 1-based input `line`, and its entities, whose `start..end` are character offsets (Unicode scalar
//! values) into that title, so they slice the entity out of the user's own line.
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use multitag_core::{read_titles, TitleFormat};

use crate::args::{DeviceArgs, MatmulArgs};
use crate::model_dir::ModelDir;

// `--format`: the command-line face of `TitleFormat` (clap stays out of multitag-core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One title per line.
    Lines,
    /// One JSON object per line; the title is in `--column`.
    Jsonl,
    /// CSV with a header row; the title is in `--column`.
    Csv,
}

impl From<InputFormat> for TitleFormat {
    fn from(format: InputFormat) -> Self {
        match format {
            InputFormat::Lines => TitleFormat::Lines,
            InputFormat::Jsonl => TitleFormat::Jsonl,
            InputFormat::Csv => TitleFormat::Csv,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: PathBuf,
    /// Input file, or - for standard input.
    #[arg(default_value = "-")]
    input: String,
    #[arg(long, value_enum, default_value_t = InputFormat::Lines)]
    format: InputFormat,
    #[arg(long, default_value = "title")]
    column: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    matmul: MatmulArgs,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        input,
        format,
        column,
        batch_size: batch,
        device,
        matmul,
    } = args;
    let predictor = ModelDir::read(&model)?.predictor(&device.device()?, matmul.matmul)?;
    // Bytes, not text: decoding happens per line in read_titles, so a line that is not UTF-8 costs
    // only itself and is named with its line and byte column, on stdin as in a file.
    let (source, bytes) = if input == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        ("<stdin>".to_string(), bytes)
    } else {
        let bytes = std::fs::read(&input).with_context(|| format!("cannot read {input}"))?;
        (input, bytes)
    };
    let parsed = read_titles(&source, &bytes, format.into(), &column)?;
    for problem in &parsed.problems {
        eprintln!("skipped: {problem}");
    }
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
