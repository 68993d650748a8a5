//! `trainer compare --task relations`: SpERT against SpERT.MT and each of its additions alone,
//! over seeds, on one dataset's test documents, in a table shaped like SpERT's: entity F1 and
//! relation F1 (strict and boundaries), micro and macro, mean ± sd over the seeds, and each
//! variant's paired difference from the first (SpERT) seed by seed. Every run trains from the
//! same base encoder with the same options but the span method, keeps its last epoch (SpERT's
//! recipe) and is scored once on test; its row is appended to `runs.jsonl` as it finishes, so an
//! interrupted comparison resumes where it stopped.
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use multitag_core::mean_std;
use multitag_core::relations::{evaluate, ExtractionReport};
use serde::{Deserialize, Serialize};

use super::data::RelationData;
use super::evaluate::evaluate_unseen;
use super::train::{train_relations, EVAL_BATCH};
use crate::compare::read_runs;
use crate::model_dir::ModelDir;
use crate::output::write_atomic;
use crate::train::TrainOptions;

/// One run: a variant and seed, its test scores and what it cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelationRun {
    pub variant: String,
    pub seed: u64,
    pub test: ExtractionReport,
    /// On the test sentences whose words never occur as a training sentence.
    pub test_unseen: ExtractionReport,
    pub train_seconds: f64,
    pub epochs: usize,
    pub device: String,
    pub encoder: String,
}

/// Trains and scores every variant (a `--span-method` value) for every seed not yet in
/// `out/runs.jsonl`; returns the table of all the runs of those variants and seeds.
pub fn compare(
    base: &ModelDir,
    data: &RelationData,
    template: &TrainOptions,
    variants: &[String],
    seeds: &[u64],
    device: &Device,
    out: &Path,
) -> Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let runs_path = out.join("runs.jsonl");
    let mut runs: Vec<RelationRun> = read_runs(&runs_path)?;
    let encoder = base.path.display().to_string();
    for &seed in seeds {
        for variant in variants {
            if runs.iter().any(|r| r.variant == *variant && r.seed == seed) {
                eprintln!("{variant} seed {seed}: already in {}", runs_path.display());
                continue;
            }
            let opts = TrainOptions {
                span_method: variant.clone(),
                seed,
                ..template.clone()
            };
            eprintln!("== {variant}, seed {seed}");
            let outcome = train_relations(base, data, &opts, device, None, false)?;
            let predicted = outcome.model.predict(&data.test, EVAL_BATCH)?;
            let test =
                evaluate(&data.types, &data.test, &predicted, false).map_err(anyhow::Error::msg)?;
            let test_unseen = evaluate_unseen(&data.types, &data.train, &data.test, &predicted)?;
            let run = RelationRun {
                variant: variant.clone(),
                seed,
                test,
                test_unseen,
                train_seconds: outcome.train_seconds,
                epochs: outcome.history.len(),
                device: format!("{device:?}"),
                encoder: encoder.clone(),
            };
            eprintln!(
                "{variant} seed {seed}: entities F1 {:.2}, relations F1 {:.2} strict / {:.2} \
                 boundaries (micro) | {:.0} s",
                100.0 * run.test.entities.micro.f1,
                100.0 * run.test.relations_strict.micro.f1,
                100.0 * run.test.relations_boundaries.micro.f1,
                run.train_seconds
            );
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&runs_path)
                .with_context(|| format!("opening {}", runs_path.display()))?;
            writeln!(file, "{}", serde_json::to_string(&run)?)?;
            runs.push(run);
        }
    }
    let chosen: Vec<RelationRun> = runs
        .into_iter()
        .filter(|r| variants.contains(&r.variant) && seeds.contains(&r.seed))
        .collect();
    let table = table(&chosen, variants);
    write_atomic(&out.join("compare.md"), table.as_bytes())?;
    Ok(table)
}

/// The table of the runs already in `out/runs.jsonl` (`--summary-only`).
pub fn summary(variants: &[String], seeds: &[u64], out: &Path) -> Result<String> {
    let runs: Vec<RelationRun> = read_runs::<RelationRun>(&out.join("runs.jsonl"))?
        .into_iter()
        .filter(|r| variants.contains(&r.variant) && seeds.contains(&r.seed))
        .collect();
    Ok(table(&runs, variants))
}

/// The figures of a run, as percentages: (column name, value).
fn figures(run: &RelationRun) -> [(&'static str, f64); 8] {
    let pct = |x: f64| 100.0 * x;
    let (report, unseen) = (&run.test, &run.test_unseen);
    [
        ("entity F1 micro", pct(report.entities.micro.f1)),
        ("entity F1 macro", pct(report.entities.macro_avg.f1)),
        (
            "relation F1 strict micro",
            pct(report.relations_strict.micro.f1),
        ),
        (
            "relation F1 strict macro",
            pct(report.relations_strict.macro_avg.f1),
        ),
        (
            "relation F1 boundaries micro",
            pct(report.relations_boundaries.micro.f1),
        ),
        (
            "relation F1 boundaries macro",
            pct(report.relations_boundaries.macro_avg.f1),
        ),
        ("unseen: entity F1 micro", pct(unseen.entities.micro.f1)),
        (
            "unseen: relation F1 strict micro",
            pct(unseen.relations_strict.micro.f1),
        ),
    ]
}

/// The table: per variant, mean ± sd of each figure over its seeds and the training time; then
/// each variant minus the first, seed by seed (seeds both have), mean ± sd and the values.
pub fn table(runs: &[RelationRun], variants: &[String]) -> String {
    let Some(first) = runs.first() else {
        return "no runs\n".into();
    };
    let names: Vec<&str> = figures(first).iter().map(|(n, _)| *n).collect();
    let of = |variant: &str| -> Vec<&RelationRun> {
        let mut v: Vec<&RelationRun> = runs.iter().filter(|r| r.variant == variant).collect();
        v.sort_by_key(|r| r.seed);
        v
    };
    let mut out = format!(
        "| variant | seeds | {} | train s/run |\n|---|---|{}---|\n",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for variant in variants {
        let rows = of(variant);
        if rows.is_empty() {
            continue;
        }
        let cells: Vec<String> = (0..names.len())
            .map(|k| {
                let values: Vec<f64> = rows.iter().map(|r| figures(r)[k].1).collect();
                let m = mean_std(&values);
                format!("{:.2} ± {:.2}", m.mean, m.std)
            })
            .collect();
        let seconds: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.0}", r.train_seconds))
            .collect();
        out += &format!(
            "| {variant} | {} | {} | {} |\n",
            rows.len(),
            cells.join(" | "),
            seconds.join(", ")
        );
    }
    let Some(reference) = variants.first() else {
        return out;
    };
    let reference_rows = of(reference);
    out += &format!(
        "\nPaired differences against `{reference}` (same seed), points: mean ± sd [per seed]\n\n\
         | variant | {} |\n|---|{}\n",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for variant in &variants[1..] {
        let pairs: Vec<(&RelationRun, &RelationRun)> = of(variant)
            .into_iter()
            .filter_map(|r| Some((r, *reference_rows.iter().find(|b| b.seed == r.seed)?)))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let cells: Vec<String> = (0..names.len())
            .map(|k| {
                let diffs: Vec<f64> = pairs
                    .iter()
                    .map(|(r, b)| figures(r)[k].1 - figures(b)[k].1)
                    .collect();
                let m = mean_std(&diffs);
                let each: Vec<String> = diffs.iter().map(|d| format!("{d:+.2}")).collect();
                format!("{:+.2} ± {:.2} [{}]", m.mean, m.std, each.join(", "))
            })
            .collect();
        out += &format!("| {variant} | {} |\n", cells.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use multitag_core::relations::TaskScores;
    use multitag_core::TypeScores;

    fn run(variant: &str, seed: u64, relation_f1: f64) -> RelationRun {
        let scores = |f1: f64| TaskScores {
            micro: TypeScores {
                f1,
                ..TypeScores::default()
            },
            ..TaskScores::default()
        };
        RelationRun {
            variant: variant.into(),
            seed,
            test: ExtractionReport {
                entities: scores(0.8),
                relations_strict: scores(relation_f1),
                relations_boundaries: scores(relation_f1),
                documents: 3,
            },
            test_unseen: ExtractionReport::default(),
            train_seconds: 10.0,
            epochs: 2,
            device: "Cpu".into(),
            encoder: "m".into(),
        }
    }

    #[test]
    fn the_table_pairs_runs_by_seed() {
        let runs = [
            run("spert", 1, 0.5),
            run("spert", 2, 0.6),
            run("spert-mt", 2, 0.7),
            run("spert-mt", 1, 0.5),
            run("spert-mt", 3, 0.9),
        ];
        let variants = ["spert".to_string(), "spert-mt".to_string()];
        let table = table(&runs, &variants);
        assert!(table.contains("| spert | 2 | 80.00 ± 0.00"), "{table}");
        assert!(table.contains("| spert-mt | 3 |"), "{table}");
        // Seed 3 has no SpERT run: the pairs are seeds 1 and 2, +0 and +10 points.
        assert!(table.contains("+5.00 ± 7.07 [+0.00, +10.00]"), "{table}");
    }
}
