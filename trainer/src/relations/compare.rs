//! `trainer compare --task relations`: SpERT against SpERT.MT and each of its additions alone,
//! over seeds, on one dataset's test documents, in a table shaped like SpERT's: entity F1 and
//! relation F1 (strict and boundaries), micro and macro, mean ± sd over the seeds, and each
//! variant's paired difference from the first (SpERT) seed by seed. Every run trains from the
//! same base encoder with the same options but the span method, keeps its last epoch (SpERT's
//! recipe) and is scored once on test; its row is appended to `runs.jsonl` as it finishes, so an
//! interrupted comparison resumes where it stopped.
//!
//! With cross-validation folds (`--folds`, SpERT's ADE protocol) every variant and seed trains
//! once per fold; a seed's figures are the mean over the folds (as SpERT averages ADE's ten), and
//! the spread and the paired differences are over seeds, as without folds. A seed counts only
//! once it has every fold.
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use multitag_core::mean_std;
use multitag_core::relations::{evaluate, ExtractionReport};
use serde::{Deserialize, Serialize};

use super::data::{RelationData, RelationFiles};
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
    /// The cross-validation fold trained and scored; none for a dataset without folds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<usize>,
    pub test: ExtractionReport,
    /// On the test sentences whose words never occur as a training sentence.
    pub test_unseen: ExtractionReport,
    pub train_seconds: f64,
    pub epochs: usize,
    pub device: String,
    pub encoder: String,
}

/// What a comparison covers: each variant (a `--span-method` value) at each seed, in each fold
/// (`[None]` for a dataset without folds).
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    pub variants: &'a [String],
    pub seeds: &'a [u64],
    pub folds: &'a [Option<usize>],
}

/// Trains and scores every run of `grid` not yet in `out/runs.jsonl`; returns the table of all
/// the runs of `grid`.
pub fn compare(
    base: &ModelDir,
    files: &RelationFiles,
    template: &TrainOptions,
    grid: Grid,
    device: &Device,
    out: &Path,
) -> Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let runs_path = out.join("runs.jsonl");
    let mut runs: Vec<RelationRun> = read_runs(&runs_path)?;
    let done = |runs: &[RelationRun], variant: &str, seed: u64, fold: Option<usize>| {
        runs.iter()
            .any(|r| r.variant == variant && r.seed == seed && r.fold == fold)
    };
    for &seed in grid.seeds {
        for &fold in grid.folds {
            let todo: Vec<&String> = grid
                .variants
                .iter()
                .filter(|v| !done(&runs, v, seed, fold))
                .collect();
            if todo.is_empty() {
                eprintln!(
                    "seed {seed}{}: every variant already in {}",
                    fold_name(fold),
                    runs_path.display()
                );
                continue;
            }
            let data = RelationFiles {
                fold,
                ..files.clone()
            }
            .read(true, true)?;
            for variant in todo {
                let opts = TrainOptions {
                    span_method: variant.clone(),
                    seed,
                    ..template.clone()
                };
                let run = train_and_score(base, &data, &opts, fold, device)?;
                append_run(&runs_path, &run)?;
                runs.push(run);
            }
        }
    }
    let table = table(&runs, grid);
    write_atomic(&out.join("compare.md"), table.as_bytes())?;
    Ok(table)
}

/// ", fold K" for a fold, nothing without one: for progress lines.
fn fold_name(fold: Option<usize>) -> String {
    fold.map(|k| format!(", fold {k}")).unwrap_or_default()
}

/// One run: `opts` (its variant and seed) trained on `data`'s training documents, scored once on
/// its test documents.
fn train_and_score(
    base: &ModelDir,
    data: &RelationData,
    opts: &TrainOptions,
    fold: Option<usize>,
    device: &Device,
) -> Result<RelationRun> {
    let (variant, seed) = (&opts.span_method, opts.seed);
    eprintln!("== {variant}, seed {seed}{}", fold_name(fold));
    let outcome = train_relations(base, data, opts, device, None, false)?;
    let predicted = outcome.model.predict(&data.test, EVAL_BATCH)?;
    let test = evaluate(&data.types, &data.test, &predicted, false).map_err(anyhow::Error::msg)?;
    let test_unseen = evaluate_unseen(&data.types, &data.train, &data.test, &predicted)?;
    let run = RelationRun {
        variant: variant.clone(),
        seed,
        fold,
        test,
        test_unseen,
        train_seconds: outcome.train_seconds,
        epochs: outcome.history.len(),
        device: format!("{device:?}"),
        encoder: base.path.display().to_string(),
    };
    eprintln!(
        "{variant} seed {seed}{}: entities F1 {:.2}, relations F1 {:.2} strict / {:.2} \
         boundaries (micro) | {:.0} s",
        fold_name(fold),
        100.0 * run.test.entities.micro.f1,
        100.0 * run.test.relations_strict.micro.f1,
        100.0 * run.test.relations_boundaries.micro.f1,
        run.train_seconds
    );
    Ok(run)
}

/// Appends `run` to `runs.jsonl` as one line, so that an interrupted comparison keeps it.
fn append_run(path: &Path, run: &RelationRun) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(run)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The table of the runs already in `out/runs.jsonl` (`--summary-only`).
pub fn summary(grid: Grid, out: &Path) -> Result<String> {
    let runs: Vec<RelationRun> = read_runs(&out.join("runs.jsonl"))?;
    Ok(table(&runs, grid))
}

/// How many figures a run has (the table's columns).
const FIGURES: usize = 8;

/// The figures of a run, as percentages: (column name, value).
fn figures(run: &RelationRun) -> [(&'static str, f64); FIGURES] {
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

/// A variant at one seed: its figures (the mean over the folds) and its training time (the sum).
struct Trial<'a> {
    variant: &'a str,
    seed: u64,
    figures: [f64; FIGURES],
    train_seconds: f64,
}

/// The trials of `runs` in `grid`; a trial missing some of the grid's folds is left out and
/// named in the notes.
fn trials<'a>(runs: &[RelationRun], grid: Grid<'a>) -> (Vec<Trial<'a>>, Vec<String>) {
    let Grid {
        variants,
        seeds,
        folds,
    } = grid;
    let (mut trials, mut notes) = (Vec::new(), Vec::new());
    for variant in variants {
        for &seed in seeds {
            let mut found: Vec<&RelationRun> = Vec::new();
            for &fold in folds {
                // A rerun of the same fold (merged runs.jsonl files) counts once: the first.
                if let Some(run) = runs
                    .iter()
                    .find(|r| r.variant == *variant && r.seed == seed && r.fold == fold)
                {
                    found.push(run);
                }
            }
            if found.is_empty() {
                continue;
            }
            if found.len() < folds.len() {
                notes.push(format!(
                    "{variant} seed {seed}: {} of {} folds so far, left out",
                    found.len(),
                    folds.len()
                ));
                continue;
            }
            let per_run: Vec<[(&str, f64); FIGURES]> = found.iter().map(|r| figures(r)).collect();
            let figures = std::array::from_fn(|k| {
                per_run.iter().map(|f| f[k].1).sum::<f64>() / per_run.len() as f64
            });
            trials.push(Trial {
                variant,
                seed,
                figures,
                train_seconds: found.iter().map(|r| r.train_seconds).sum(),
            });
        }
    }
    (trials, notes)
}

/// The table: per variant, mean ± sd of each figure over its seeds and the training time; then
/// each variant minus the first, seed by seed (seeds both have), mean ± sd and the values. With
/// folds, a seed's figure is its mean over the folds and its time their sum.
pub fn table(runs: &[RelationRun], grid: Grid) -> String {
    let (trials, notes) = trials(runs, grid);
    let (variants, folds) = (grid.variants, grid.folds);
    let Some(first) = runs.first() else {
        return "no runs\n".into();
    };
    let names: Vec<&str> = figures(first).iter().map(|(n, _)| *n).collect();
    let of =
        |variant: &str| -> Vec<&Trial> { trials.iter().filter(|t| t.variant == variant).collect() };
    let fold_numbers: Vec<String> = folds.iter().flatten().map(|k| k.to_string()).collect();
    let (mut out, seconds_column) = if fold_numbers.is_empty() {
        (String::new(), "train s/run".to_string())
    } else {
        (
            format!(
                "Each seed's figures: the mean over folds {} (cross-validation).\n\n",
                fold_numbers.join(", ")
            ),
            format!("train s/seed ({} folds)", fold_numbers.len()),
        )
    };
    out += &format!(
        "| variant | seeds | {} | {seconds_column} |\n|---|---|{}---|\n",
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
                let values: Vec<f64> = rows.iter().map(|t| t.figures[k]).collect();
                let m = mean_std(&values);
                format!("{:.2} ± {:.2}", m.mean, m.std)
            })
            .collect();
        let seconds: Vec<String> = rows
            .iter()
            .map(|t| format!("{:.0}", t.train_seconds))
            .collect();
        out += &format!(
            "| {variant} | {} | {} | {} |\n",
            rows.len(),
            cells.join(" | "),
            seconds.join(", ")
        );
    }
    for note in &notes {
        out += &format!("\n{note}");
    }
    if !notes.is_empty() {
        out += "\n";
    }
    // Differences need a second variant.
    let [reference, others @ ..] = variants else {
        return out;
    };
    if others.is_empty() {
        return out;
    }
    let reference_rows = of(reference);
    out += &format!(
        "\nPaired differences against `{reference}` (same seed), points: mean ± sd [per seed]\n\n\
         | variant | {} |\n|---|{}\n",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for variant in others {
        let pairs: Vec<(&Trial, &Trial)> = of(variant)
            .into_iter()
            .filter_map(|t| Some((t, *reference_rows.iter().find(|b| b.seed == t.seed)?)))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let cells: Vec<String> = (0..names.len())
            .map(|k| {
                let diffs: Vec<f64> = pairs
                    .iter()
                    .map(|(t, b)| t.figures[k] - b.figures[k])
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
        in_fold(variant, seed, None, relation_f1)
    }

    fn in_fold(variant: &str, seed: u64, fold: Option<usize>, relation_f1: f64) -> RelationRun {
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
            fold,
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
        let grid = Grid {
            variants: &variants,
            seeds: &[1, 2, 3],
            folds: &[None],
        };
        let table = table(&runs, grid);
        assert!(table.contains("| spert | 2 | 80.00 ± 0.00"), "{table}");
        assert!(table.contains("| spert-mt | 3 |"), "{table}");
        // Seed 3 has no SpERT run: the pairs are seeds 1 and 2, +0 and +10 points.
        assert!(table.contains("+5.00 ± 7.07 [+0.00, +10.00]"), "{table}");
        let alone = Grid {
            variants: &variants[..1],
            ..grid
        };
        assert!(!super::table(&runs, alone).contains("Paired"));
    }

    #[test]
    fn with_folds_a_seed_is_its_mean_over_every_fold() {
        let folds = [Some(0), Some(1)];
        let runs = [
            in_fold("spert", 1, Some(0), 0.5),
            in_fold("spert", 1, Some(1), 0.7),
            in_fold("spert", 2, Some(0), 0.4),
            in_fold("spert", 2, Some(1), 0.6),
            // A fold of another comparison, not asked for: ignored.
            in_fold("spert", 2, Some(2), 0.0),
            in_fold("spert-mt", 1, Some(1), 0.8),
            in_fold("spert-mt", 1, Some(0), 0.8),
            // Seed 2 has one fold of two so far: left out, and said.
            in_fold("spert-mt", 2, Some(0), 0.9),
        ];
        let variants = ["spert".to_string(), "spert-mt".to_string()];
        let grid = Grid {
            variants: &variants,
            seeds: &[1, 2],
            folds: &folds,
        };
        let table = table(&runs, grid);
        // spert: seeds at 60 and 50 (means over the folds), 40 s each (two runs of 10 s).
        assert!(table.contains("mean over folds 0, 1"), "{table}");
        assert!(table.contains("train s/seed (2 folds)"), "{table}");
        assert!(
            table.contains("| spert | 2 | 80.00 ± 0.00 | 0.00 ± 0.00 | 55.00 ± 7.07"),
            "{table}"
        );
        assert!(table.contains("| 20, 20 |"), "{table}");
        assert!(table.contains("| spert-mt | 1 |"), "{table}");
        assert!(
            table.contains("spert-mt seed 2: 1 of 2 folds so far, left out"),
            "{table}"
        );
        // Paired on seed 1 only: 80 - 60.
        assert!(table.contains("+20.00 ± 0.00 [+20.00]"), "{table}");
    }
}
