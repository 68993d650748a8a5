//! `trainer label`: writes the labeled catalog as JSONL; reports label coverage and gold agreement.
//! It also writes every skipped catalog row (damaged CSV, invalid UTF-8, empty title, ...) as JSONL
//! to `--skipped`, the one place the full list goes (see `crate::data`).
use std::path::PathBuf;

use anyhow::Result;
use multitag_core::coverage;

use crate::args::{gold_or_default, DataArgs, LabeledArgs};
use crate::data::{load_dataset_listing_skipped, load_gold};
use crate::output::write_atomic;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value = "runs/labeled.jsonl")]
    out: PathBuf,
    /// Hand-checked gold labels [default: data/gold/myntra_gold.jsonl].
    #[arg(long)]
    gold: Option<PathBuf>,
    /// Where to list every skipped catalog row, as JSONL [default: beside --out, e.g.
    /// runs/labeled.skipped.jsonl].
    #[arg(long)]
    skipped: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        data,
        out,
        gold,
        skipped,
    } = args;
    let gold = gold_or_default(gold, &data, &LabeledArgs::default());
    let skipped = skipped.unwrap_or_else(|| out.with_extension("skipped.jsonl"));
    let dataset = load_dataset_listing_skipped(
        &data.catalog(),
        &data.columns(),
        data.split_seed,
        Some(&skipped),
    )?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_atomic(&out, multitag_core::to_jsonl(&dataset.records).as_bytes())?;
    eprintln!(
        "wrote {} labeled records to {} ({} catalog rows or damaged lines skipped, listed in {})",
        dataset.records.len(),
        out.display(),
        dataset.skipped_rows,
        skipped.display()
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
