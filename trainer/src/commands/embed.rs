//! `trainer embed`: the sentence vector of each text (mean-pooled over its sub-words and scaled to
//! unit length, as training pools descriptions), from a trained model or a plain base encoder.
//! Texts are read as `trainer tag` reads titles (lines, JSONL or CSV with `--column`; skipped lines
//! reported on stderr). Output is JSONL, `{"line", "vector"}` per text with its 1-based input
//! line, on stdout or to `--out FILE`; or, with `--out FILE.npy`, one float32 `(texts, hidden)`
//! matrix whose row `i` is the `i`-th text read, for numpy and for `trainer match
//! --candidate-vectors`. Files are written whole (a temporary file renamed over the target).
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use multitag_model::Embedder;
use serde::Serialize;

use crate::args::{DeviceArgs, MatmulArgs};
use crate::embedding::{check_max_tokens, embed_all, embed_chunks};
use crate::input::{read_some_texts, FormatArgs};
use crate::model_dir::ModelDir;
use crate::npy;
use crate::output::{check_out_file, write_with};

#[derive(clap::Args)]
pub struct Args {
    /// A trained model, an export, or a base encoder (config.json, model.safetensors,
    /// tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Input file, or - for standard input.
    #[arg(default_value = "-")]
    input: String,
    #[command(flatten)]
    format: FormatArgs,
    /// Write here instead of stdout: FILE.npy for a float32 matrix (row i = the i-th text read),
    /// any other name for JSONL.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cut each text at this many sub-words [default: the model's: 48 for a trained tagger,
    /// 128 for a base encoder].
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    matmul: MatmulArgs,
}

/// One output line.
#[derive(Serialize)]
struct Vector<'a> {
    line: usize,
    vector: &'a [f32],
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        input,
        format,
        out,
        max_tokens,
        batch,
        device,
        matmul,
    } = args;
    if batch == 0 {
        bail!("--batch 0: at least 1 text per forward pass");
    }
    let dir = ModelDir::read(&model)?;
    let (_, parsed) = read_some_texts(&input, &format)?;
    if let Some(out) = &out {
        check_out_file(out)?;
    }
    let embedder = dir.embedder(&device.device()?, matmul.matmul)?;
    let max_tokens = check_max_tokens(
        "--max-tokens",
        max_tokens.unwrap_or(embedder.max_tokens()),
        &dir.config,
    )?;
    let texts: Vec<&str> = parsed.titles.iter().map(|(_, t)| t.as_str()).collect();
    let lines: Vec<usize> = parsed.titles.iter().map(|(line, _)| *line).collect();
    let skipped = parsed.blank_lines + parsed.problems.len();
    match &out {
        Some(path) if is_npy(path) => {
            let vectors = embed_all(&*embedder, &texts, max_tokens, batch, "texts")?;
            npy::write(path, &vectors)?;
            let (rows, hidden) = vectors.dims2()?;
            eprintln!(
                "wrote {}: {rows} x {hidden} float32, row i = the i-th text read{}",
                path.display(),
                if skipped > 0 {
                    " (blank and skipped lines have no row)"
                } else {
                    ""
                }
            );
        }
        Some(path) => write_with(path, |tmp| {
            let file =
                std::fs::File::create(tmp).with_context(|| format!("writing {}", tmp.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            write_jsonl(&mut writer, &*embedder, &texts, &lines, max_tokens, batch)?;
            writer
                .flush()
                .with_context(|| format!("writing {}", tmp.display()))
        })?,
        None => {
            let mut writer = std::io::BufWriter::new(std::io::stdout().lock());
            write_jsonl(&mut writer, &*embedder, &texts, &lines, max_tokens, batch)?;
            writer.flush()?;
        }
    }
    if skipped > 0 {
        eprintln!(
            "{} blank lines and {} bad rows skipped",
            parsed.blank_lines,
            parsed.problems.len()
        );
    }
    Ok(())
}

/// `--out` names a NumPy file.
fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// The vectors of `texts` as JSONL, written chunk by chunk as they are computed.
fn write_jsonl(
    out: &mut impl Write,
    embedder: &dyn Embedder,
    texts: &[&str],
    lines: &[usize],
    max_tokens: usize,
    batch: usize,
) -> Result<()> {
    embed_chunks(
        embedder,
        texts,
        max_tokens,
        batch,
        "texts",
        |first, vectors| {
            for (row, vector) in vectors.to_vec2::<f32>()?.iter().enumerate() {
                serde_json::to_writer(
                    &mut *out,
                    &Vector {
                        line: lines[first + row],
                        vector,
                    },
                )?;
                out.write_all(b"\n")?;
            }
            Ok(())
        },
    )
}
