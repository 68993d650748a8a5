//! The texts `trainer tag`, `embed` and `match` read: a file or standard input (`-`), as plain
//! lines, JSONL or CSV with `--column` ([`multitag_core::read_titles`]). One reader for all three,
//! so a line is skipped, and reported with its source and line, the same way in each: a text's
//! line number is what every command prints beside its output.
use std::io::Read;

use anyhow::{bail, Context, Result};
use multitag_core::{read_titles, TitleFormat, TitleInput};

// `--format`: the command-line face of `TitleFormat` (clap stays out of multitag-core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One text per line.
    Lines,
    /// One JSON object per line; the text is in `--column`.
    Jsonl,
    /// CSV with a header row; the text is in `--column`.
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

/// How an input file is laid out.
#[derive(clap::Args, Clone)]
pub struct FormatArgs {
    #[arg(long, value_enum, default_value_t = InputFormat::Lines)]
    pub format: InputFormat,
    /// The JSONL field or CSV column that holds the text.
    #[arg(long, default_value = "title")]
    pub column: String,
}

/// The texts of `input` (a path, or `-` for standard input) and the source name messages use
/// (`<stdin>` for standard input). Every skipped line is printed to stderr as `skipped: ...`.
pub fn read_texts(input: &str, format: &FormatArgs) -> Result<(String, TitleInput)> {
    // Bytes, not text: decoding happens per line in read_titles, so a line that is not UTF-8
    // costs only itself and is named with its line and byte column, on stdin as in a file.
    let (source, bytes) = if input == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        ("<stdin>".to_string(), bytes)
    } else {
        let bytes = std::fs::read(input).with_context(|| format!("cannot read {input}"))?;
        (input.to_string(), bytes)
    };
    let parsed = read_titles(&source, &bytes, format.format.into(), &format.column)?;
    for problem in &parsed.problems {
        eprintln!("skipped: {problem}");
    }
    Ok((source, parsed))
}

/// [`read_texts`], where an input without a single text is an error (there is nothing to embed
/// or match, and an empty result would pass unnoticed in a pipeline).
pub fn read_some_texts(input: &str, format: &FormatArgs) -> Result<(String, TitleInput)> {
    let (source, parsed) = read_texts(input, format)?;
    if parsed.titles.is_empty() {
        bail!(
            "{source}: no texts ({} blank lines, {} bad rows skipped{})",
            parsed.blank_lines,
            parsed.problems.len(),
            match format.format {
                InputFormat::Lines => String::new(),
                _ => format!("; the text is read from `--column {}`", format.column),
            }
        );
    }
    Ok((source, parsed))
}
