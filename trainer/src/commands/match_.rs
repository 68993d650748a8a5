//! `trainer match`: for each query text, the `--top-k` candidate texts nearest in meaning. Both
//! sides are embedded by the model's encoder (a plain base encoder works; [`ModelDir::embedder`])
//! and ranked by cosine similarity ([`crate::search`]). The candidates' vectors can come from
//! `trainer embed --out FILE.npy` instead (`--candidate-vectors`), so a fixed catalog is embedded
//! once and each search costs only its queries. Output is one JSON object per query on stdout, in
//! input order: `{"query_line", "query", "matches": [{"line", "text", "score"}]}`, best match
//! first; equal scores are ordered by candidate line, so runs agree.
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use multitag_model::DEFAULT_TEXT_TOKENS;
use serde::Serialize;

use crate::args::{DeviceArgs, MatmulArgs};
use crate::embedding::{check_max_tokens, embed_all};
use crate::input::{read_some_texts, FormatArgs};
use crate::model_dir::ModelDir;
use crate::npy;
use crate::search::search;

#[derive(clap::Args)]
pub struct Args {
    /// A trained model, an export, or a base encoder (config.json, model.safetensors,
    /// tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Query texts, one per line (or JSONL/CSV with --column); - for standard input.
    #[arg(long)]
    queries: String,
    /// Candidate texts, in the same format as the queries.
    #[arg(long)]
    candidates: String,
    /// Matches per query.
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    #[command(flatten)]
    format: FormatArgs,
    /// The candidates' vectors, written by `trainer embed --out FILE.npy` from the same
    /// --candidates file and format, with the same model and --max-tokens as
    /// --candidate-tokens: the candidates are then not embedded again.
    #[arg(long)]
    candidate_vectors: Option<PathBuf>,
    /// Cut queries at this many sub-words [default: the model's: 48 for a trained tagger, 128
    /// for a base encoder].
    #[arg(long)]
    query_tokens: Option<usize>,
    /// Cut candidates at this many sub-words.
    #[arg(long, default_value_t = DEFAULT_TEXT_TOKENS)]
    candidate_tokens: usize,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    matmul: MatmulArgs,
}

/// One output line: a query and its matches.
#[derive(Serialize)]
struct QueryMatches<'a> {
    query_line: usize,
    query: &'a str,
    matches: Vec<Candidate<'a>>,
}

#[derive(Serialize)]
struct Candidate<'a> {
    line: usize,
    text: &'a str,
    score: f32,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        queries,
        candidates,
        top_k,
        format,
        candidate_vectors,
        query_tokens,
        candidate_tokens,
        batch,
        device,
        matmul,
    } = args;
    if top_k == 0 {
        bail!("--top-k 0: ask for at least 1 match per query");
    }
    if batch == 0 {
        bail!("--batch 0: at least 1 text per forward pass");
    }
    if queries == "-" && candidates == "-" {
        bail!("--queries and --candidates both read standard input; give one of them a file");
    }
    let dir = ModelDir::read(&model)?;
    let (_, query_input) = read_some_texts(&queries, &format)?;
    let (candidate_source, candidate_input) = read_some_texts(&candidates, &format)?;
    let device = device.device()?;
    let embedder = dir.embedder(&device, matmul.matmul)?;
    let query_tokens = check_max_tokens(
        "--query-tokens",
        query_tokens.unwrap_or(embedder.max_tokens()),
        &dir.config,
    )?;
    let candidate_tokens = check_max_tokens("--candidate-tokens", candidate_tokens, &dir.config)?;
    let query_texts: Vec<&str> = query_input.titles.iter().map(|(_, t)| t.as_str()).collect();
    let candidate_texts: Vec<&str> = candidate_input
        .titles
        .iter()
        .map(|(_, t)| t.as_str())
        .collect();

    let candidate_vectors = match &candidate_vectors {
        Some(path) => {
            let started = Instant::now();
            let n = candidate_texts.len();
            let expected = format!("the {n} candidates of {candidate_source}");
            let vectors = npy::read(path, n, dir.config.hidden_size, &expected)?;
            eprintln!(
                "read {n} candidate vectors from {} in {:.1} s",
                path.display(),
                started.elapsed().as_secs_f64()
            );
            vectors.to_device(&device)?
        }
        None => embed_all(
            &*embedder,
            &candidate_texts,
            candidate_tokens,
            batch,
            "candidates",
        )?,
    };
    let query_vectors = embed_all(&*embedder, &query_texts, query_tokens, batch, "queries")?;

    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    search(
        &query_vectors,
        &candidate_vectors,
        top_k,
        |query, matches| {
            let (query_line, query) = &query_input.titles[query];
            let matches = matches
                .into_iter()
                .map(|m| {
                    let (line, text) = &candidate_input.titles[m.candidate];
                    Candidate {
                        line: *line,
                        text,
                        score: m.score,
                    }
                })
                .collect();
            let record = QueryMatches {
                query_line: *query_line,
                query,
                matches,
            };
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
            Ok(())
        },
    )?;
    out.flush()?;
    eprintln!(
        "matched {} queries against {} candidates (top {top_k}) in {:.1} s",
        query_texts.len(),
        candidate_texts.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
