//! `trainer compare`: the paper's Table 1 with our numbers. Every variant is trained with the same
//! seeds on the same split; results are appended to runs.jsonl as they finish (so an interrupted
//! comparison resumes where it stopped) and summarised as mean ± std with per-seed paired
//! differences against the baseline.
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use multitag_core::{
    mean_std, LabelMap, LabeledRecord, NerReport, RetrievalReport, SeenTitles, Split,
};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::evaluate::{evaluate_retrieval, predict_tags, score};
use crate::model_dir::ModelDir;
use crate::output::write_atomic;
use multitag_model::TripletForm;

use crate::binder::BinderOutcome;
use crate::train::{Objective, Task, TrainOptions, TrainOutcome, TrainRun};
use multitag_core::binder::TypeDescription;
use multitag_model::tasks::binder::TypeVectors;
use multitag_model::tasks::tagging::TaggingSource;
use multitag_model::Predictor;

/// Parses `baseline`, `triplet-bpr:1`, `triplet-sigmoid:0.3`, `infonce:0.1` into options; a
/// `+distill:W` suffix (`infonce:0.1+distill:1`) adds the distillation term at weight W, and
/// `+layers:K` K tagging layers of the tagger's own, `+frozen:N` the embeddings and N bottom
/// layers frozen. `binder` is BINDER with its published recipe (20 epochs
/// of batch 8, learning rate 3e-5 decaying linearly from the first step, no weight decay,
/// patience 5; `binder+epochs:N` for fewer), the types described by the command's `--types`.
pub fn parse_variant(spec: &str, template: &TrainOptions) -> Result<TrainOptions> {
    let mut opts = template.clone();
    opts.distill = 0.0;
    opts.tagging_layers = 0;
    opts.frozen_layers = None;
    let mut parts = spec.split('+');
    let objective = parts.next().unwrap_or_default();
    let (kind, weight) = match objective.split_once(':') {
        Some((k, w)) => (
            k,
            Some(
                w.parse::<f64>()
                    .with_context(|| format!("variant `{spec}`: bad lambda `{w}`"))?,
            ),
        ),
        None => (objective, None),
    };
    match kind {
        "baseline" => {
            opts.objective = Objective::None;
            opts.lambda = 0.0;
        }
        "triplet-bpr" | "triplet" => {
            opts.objective = Objective::Triplet;
            opts.triplet_form = TripletForm::Bpr;
        }
        "triplet-sigmoid" => {
            opts.objective = Objective::Triplet;
            opts.triplet_form = TripletForm::Sigmoid;
        }
        "infonce" => opts.objective = Objective::Infonce,
        "binder" if weight.is_none() => {
            opts.task = Task::Binder;
            opts.objective = Objective::None;
            opts.lambda = 0.0;
            (opts.epochs, opts.batch_size, opts.lr) = (20, 8, 3e-5);
            (opts.warmup, opts.weight_decay, opts.patience) = (0.0, 0.0, 5);
        }
        other => bail!(
            "unknown variant `{other}` (baseline, triplet-bpr:L, triplet-sigmoid:L, infonce:L, \
             binder)"
        ),
    }
    if let Some(w) = weight {
        opts.lambda = w;
    }
    for extra in parts {
        let bad = || {
            format!(
                "variant `{spec}`: unknown `+{extra}` (+distill:W, +layers:K, +frozen:N; \
                 binder+epochs:N)"
            )
        };
        let (key, value) = extra.split_once(':').with_context(bad)?;
        let count = |what: &str| {
            value
                .parse::<usize>()
                .with_context(|| format!("variant `{spec}`: bad number of {what} `{value}`"))
        };
        match key {
            "distill" => {
                opts.distill = value.parse::<f64>().with_context(|| {
                    format!("variant `{spec}`: bad distillation weight `{value}`")
                })?
            }
            "layers" => opts.tagging_layers = count("tagging layers")?,
            "frozen" => opts.frozen_layers = Some(count("frozen layers")?),
            // Only BINDER's recipe fixes its epochs (and names them); the others take --epochs.
            "epochs" if opts.task == Task::Binder => opts.epochs = count("epochs")?,
            _ => bail!(bad()),
        }
    }
    Ok(opts)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub variant: String,
    pub seed: u64,
    pub test: NerReport,
    /// Scored from the saved predictions when the table is made (like `gold` and `gold_unseen`).
    #[serde(default)]
    pub test_unseen: Option<NerReport>,
    pub gold: Option<NerReport>,
    #[serde(default)]
    pub gold_unseen: Option<NerReport>,
    pub retrieval: RetrievalReport,
    /// Retrieval over the match set (another catalog, never trained on), when one is given.
    #[serde(default)]
    pub match_set: Option<RetrievalReport>,
    pub train_seconds: f64,
    pub epochs: usize,
}

pub struct Comparison<'a> {
    pub base: &'a ModelDir,
    pub dataset: &'a Dataset,
    pub gold: Option<&'a [LabeledRecord]>,
    pub labels: &'a LabelMap,
    pub device: &'a Device,
    pub out: &'a Path,
    /// Cap on the test items of the retrieval measure (a reduced CPU budget); `None` uses the
    /// whole 30% split. NER is always scored on the whole split.
    pub eval_limit: Option<usize>,
    /// Titles with descriptions from another catalog, never trained on: each run (and the
    /// pretrained encoder) also ranks every one's own description among theirs.
    pub match_set: Option<&'a [LabeledRecord]>,
    /// Train nothing: tabulate the runs already in `runs.jsonl` (for example merged from
    /// several processes or machines).
    pub summary_only: bool,
    /// For `binder` variants: the entity types described in words, and the file they came from.
    pub types: Option<(&'a [TypeDescription], &'a str)>,
}

/// A variant's trained model, best epoch on dev.
enum Trained {
    Tagger(Box<TrainOutcome>),
    Binder(Box<(BinderOutcome, TypeVectors)>),
}

impl Trained {
    fn predictor(&self) -> Box<dyn Predictor + '_> {
        match self {
            Trained::Tagger(outcome) => Box::new(outcome.model.view()),
            Trained::Binder(b) => Box::new(b.0.model.view(&b.1)),
        }
    }

    fn train_seconds(&self) -> f64 {
        match self {
            Trained::Tagger(outcome) => outcome.train_seconds,
            Trained::Binder(b) => b.0.train_seconds,
        }
    }

    fn epochs(&self) -> usize {
        match self {
            Trained::Tagger(outcome) => outcome.history.len(),
            Trained::Binder(b) => b.0.epochs,
        }
    }
}

impl Comparison<'_> {
    pub fn run(&self, variants: &[TrainOptions], seeds: &[u64]) -> Result<String> {
        std::fs::create_dir_all(self.out.join("predictions"))?;
        let runs_path = self.out.join("runs.jsonl");
        let mut done: Vec<RunResult> = read_runs(&runs_path)?;
        let test: Vec<&LabeledRecord> = self.dataset.split(Split::Test);
        let retrieval_items = &test[..self.eval_limit.unwrap_or(test.len()).min(test.len())];
        let pretrained =
            self.pretrained_retrieval(retrieval_items, &variants[0], "pretrained_retrieval")?;
        let match_set: Option<Vec<&LabeledRecord>> = self.match_set.map(|m| m.iter().collect());
        let match_pretrained = match &match_set {
            Some(items) => {
                Some(self.pretrained_retrieval(items, &variants[0], "pretrained_match_set")?)
            }
            None => None,
        };
        let seen = self.dataset.seen_titles();
        for seed in seeds {
            for variant in variants {
                let name = variant.variant_name();
                if done.iter().any(|r| r.variant == name && r.seed == *seed) {
                    eprintln!("{name} seed {seed}: already in {}", runs_path.display());
                    continue;
                }
                if self.summary_only {
                    eprintln!("{name} seed {seed}: not run (--summary-only)");
                    continue;
                }
                eprintln!("== {name}, seed {seed}");
                let mut opts = variant.clone();
                opts.seed = *seed;
                let trained = self.train(&opts)?;
                let predictor = trained.predictor();
                let predictor = predictor.as_ref();
                let predicted = predict_tags(predictor, &test, 64)?;
                let by_id: HashMap<&str, &Vec<String>> = test
                    .iter()
                    .map(|r| r.id.as_str())
                    .zip(predicted.iter())
                    .collect();
                write_atomic(
                    &predictions_path(self.out, &name, *seed),
                    serde_json::to_string(&by_id)?.as_bytes(),
                )?;
                let gold_tags: Vec<Vec<String>> = test.iter().map(|r| r.tags.clone()).collect();
                let retrieval_items =
                    &test[..self.eval_limit.unwrap_or(test.len()).min(test.len())];
                let result = RunResult {
                    variant: name.clone(),
                    seed: *seed,
                    test: multitag_core::evaluate(&gold_tags, &predicted)
                        .map_err(anyhow::Error::msg)?,
                    test_unseen: None,
                    gold: None,
                    gold_unseen: None,
                    retrieval: evaluate_retrieval(
                        predictor,
                        retrieval_items,
                        opts.title_tokens,
                        opts.description_tokens,
                        64,
                    )?,
                    match_set: match &match_set {
                        Some(items) => Some(evaluate_retrieval(
                            predictor,
                            items,
                            opts.title_tokens,
                            opts.description_tokens,
                            64,
                        )?),
                        None => None,
                    },
                    train_seconds: trained.train_seconds(),
                    epochs: trained.epochs(),
                };
                let gold = self.held_out_scores(&result, &seen)?.gold;
                eprintln!(
                    "{name} seed {seed}: test F1 {:.2} EM {:.2}{}{}{} | {:.0} s",
                    100.0 * result.test.f1,
                    100.0 * result.test.exact_match,
                    gold.map(|g| format!(" | gold F1 {:.2}", 100.0 * g.f1))
                        .unwrap_or_default(),
                    if result.retrieval.items > 0 {
                        format!(" | R@1 {:.2}", 100.0 * result.retrieval.accuracy_at_1)
                    } else {
                        String::new()
                    },
                    result
                        .match_set
                        .as_ref()
                        .map(|m| format!(" (match set {:.2})", 100.0 * m.accuracy_at_1))
                        .unwrap_or_default(),
                    result.train_seconds
                );
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&runs_path)?;
                writeln!(file, "{}", serde_json::to_string(&result)?)?;
                done.push(result);
            }
        }
        for run in &mut done {
            let scores = self.held_out_scores(run, &seen)?;
            run.test_unseen = Some(scores.test_unseen);
            run.gold = scores.gold;
            run.gold_unseen = scores.gold_unseen;
        }
        let names: Vec<String> = variants.iter().map(|v| v.variant_name()).collect();
        let table = summarise(
            &done,
            &names,
            seeds,
            &Pretrained {
                split: &pretrained,
                match_set: match_pretrained.as_ref(),
            },
            test.len(),
            retrieval_items.len(),
        );
        write_atomic(&self.out.join("compare.md"), table.as_bytes())?;
        Ok(table)
    }

    fn train(&self, opts: &TrainOptions) -> Result<Trained> {
        if opts.task != Task::Binder {
            return Ok(Trained::Tagger(Box::new(
                TrainRun {
                    base: self.base,
                    dataset: self.dataset,
                    labels: self.labels,
                    options: opts,
                    device: self.device,
                    out: None,
                    resume: false,
                }
                .run()?,
            )));
        }
        let Some((types, source)) = self.types else {
            bail!("the `binder` variant needs --types FILE: each entity type described in words");
        };
        let outcome = crate::binder::train_binder(
            self.base,
            self.dataset,
            types.to_vec(),
            source,
            opts,
            self.device,
            None,
            false,
        )?;
        let vectors = outcome.model.type_vectors()?;
        Ok(Trained::Binder(Box::new((outcome, vectors))))
    }

    /// The scores of a run that come from its saved test-split predictions: the test items whose
    /// titles were not seen in training, and the gold set (gold items are test items), so that
    /// these can be scored, or corrected, after the models are gone.
    fn held_out_scores(&self, run: &RunResult, seen: &SeenTitles) -> Result<HeldOutScores> {
        let path = predictions_path(self.out, &run.variant, run.seed);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let by_id: HashMap<String, Vec<String>> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a map of id to tags", path.display()))?;
        let score = |records: &[&LabeledRecord]| -> Result<(NerReport, NerReport)> {
            let predicted = records
                .iter()
                .map(|r| {
                    by_id.get(&r.id).cloned().with_context(|| {
                        format!(
                            "{}: no prediction for item {} (not a test item?)",
                            path.display(),
                            r.id
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let unseen = seen.unseen_positions(records);
            Ok((
                score(records, &predicted, None)?,
                score(records, &predicted, Some(&unseen))?,
            ))
        };
        let (_, test_unseen) = score(&self.dataset.split(Split::Test))?;
        let (gold, gold_unseen) = match self.gold {
            Some(gold) => {
                let (all, unseen) = score(&gold.iter().collect::<Vec<_>>())?;
                (Some(all), Some(unseen))
            }
            None => (None, None),
        };
        Ok(HeldOutScores {
            test_unseen,
            gold,
            gold_unseen,
        })
    }

    /// The base encoder's retrieval over `test`, cached in `<out>/<name>.json`.
    fn pretrained_retrieval(
        &self,
        test: &[&LabeledRecord],
        opts: &TrainOptions,
        name: &str,
    ) -> Result<RetrievalReport> {
        let path: PathBuf = self.out.join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(report) = serde_json::from_str::<RetrievalReport>(&text) {
                // A report without `candidates` predates ties counted against the title.
                if report.items == test.len() && report.candidates > 0 {
                    return Ok(report);
                }
            }
        }
        let encoder = self
            .base
            .embedder(self.device, multitag_model::DenseCompute::F32)?;
        let report = evaluate_retrieval(
            encoder.as_ref(),
            test,
            opts.title_tokens,
            opts.description_tokens,
            64,
        )?;
        write_atomic(&path, serde_json::to_string(&report)?.as_bytes())?;
        Ok(report)
    }
}

struct HeldOutScores {
    test_unseen: NerReport,
    gold: Option<NerReport>,
    gold_unseen: Option<NerReport>,
}

fn predictions_path(out: &Path, variant: &str, seed: u64) -> PathBuf {
    let slug: String = variant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.join("predictions")
        .join(format!("{slug}-seed{seed}.json"))
}

/// The runs of a comparison's `runs.jsonl` (none when the file is not there yet), each line one
/// run; a line that does not parse is an error naming the file and line.
pub fn read_runs<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: unreadable run", path.display(), i + 1))
        })
        .collect()
}

fn pct(xs: &[f64]) -> String {
    let s = mean_std(&xs.iter().map(|x| 100.0 * x).collect::<Vec<_>>());
    format!("{:.2} ± {:.2}", s.mean, s.std)
}

/// The pretrained encoder's retrieval: on the test split, and on the match set when there is one.
pub struct Pretrained<'a> {
    pub split: &'a RetrievalReport,
    pub match_set: Option<&'a RetrievalReport>,
}

/// One column of the report: its heading, the measure of a run (`None` where the run has none),
/// and whether the paired differences show it too.
struct Column {
    head: &'static str,
    measure: fn(&RunResult) -> Option<f64>,
    paired: bool,
}

/// The columns a set of runs has measures for: the gold set's only when there is one, retrieval's
/// only when the test items have descriptions (sentence datasets such as BC5CDR have none).
fn columns(with_gold: bool, with_retrieval: bool, with_match_set: bool) -> Vec<Column> {
    let column = |head, measure, paired| Column {
        head,
        measure,
        paired,
    };
    let mut columns = vec![
        column(
            "unseen test F1",
            (|r| r.test_unseen.as_ref().map(|t| t.f1)) as fn(&RunResult) -> Option<f64>,
            true,
        ),
        column(
            "unseen test exact match",
            |r| r.test_unseen.as_ref().map(|t| t.exact_match),
            false,
        ),
        column("test F1", |r| Some(r.test.f1), true),
        column("test exact match", |r| Some(r.test.exact_match), true),
    ];
    if with_gold {
        columns.extend([
            column(
                "unseen gold F1",
                (|r| r.gold_unseen.as_ref().map(|g| g.f1)) as fn(&RunResult) -> Option<f64>,
                true,
            ),
            column("gold F1", |r| r.gold.as_ref().map(|g| g.f1), true),
            column(
                "gold exact match",
                |r| r.gold.as_ref().map(|g| g.exact_match),
                false,
            ),
        ]);
    }
    if with_retrieval {
        columns.push(column("R@1", |r| Some(r.retrieval.accuracy_at_1), true));
    }
    if with_match_set {
        columns.push(column(
            "match-set R@1",
            |r| r.match_set.as_ref().map(|m| m.accuracy_at_1),
            true,
        ));
    }
    columns
}

/// The markdown report: one row per variant, then paired differences against the baseline.
pub fn summarise(
    runs: &[RunResult],
    variants: &[String],
    seeds: &[u64],
    pretrained: &Pretrained,
    test_items: usize,
    retrieval_items: usize,
) -> String {
    let mut out = String::new();
    let by_variant: BTreeMap<&str, Vec<&RunResult>> = variants
        .iter()
        .map(|v| {
            let mut rs: Vec<&RunResult> = runs
                .iter()
                .filter(|r| &r.variant == v && seeds.contains(&r.seed))
                .collect();
            rs.sort_by_key(|r| r.seed);
            (v.as_str(), rs)
        })
        .collect();
    let items = |of: fn(&RunResult) -> Option<&NerReport>| {
        runs.iter().find_map(of).map_or(0, |r| r.sequences)
    };
    let unseen_items = items(|r| r.test_unseen.as_ref());
    let gold_items = items(|r| r.gold.as_ref());
    let gold_unseen_items = items(|r| r.gold_unseen.as_ref());
    out.push_str(&format!(
        "Test split: {test_items} items, {unseen_items} of them with a title that occurs in no \
         training or dev item (\"unseen\")"
    ));
    if gold_items > 0 {
        out.push_str(&format!(
            "; gold set: {gold_items} items, {gold_unseen_items} unseen"
        ));
    }
    out.push('.');
    let with_retrieval = pretrained.split.items > 0;
    if with_retrieval {
        out.push_str(&format!(
            " Retrieval: each of the first {retrieval_items} test titles' own description among \
             their distinct descriptions, ties counted against the title. Pretrained encoder (no \
             fine-tuning): R@1 {:.2}, MRR {:.4}.",
            100.0 * pretrained.split.accuracy_at_1,
            pretrained.split.mrr
        ));
    }
    out.push_str("\n\n");
    if let Some(m) = pretrained.match_set {
        out.push_str(&format!(
            "Match set (another catalog, never trained on): each of {} titles' own description \
             among {} distinct descriptions, ties counted against the title. Pretrained encoder: \
             R@1 {:.2}, MRR {:.4}.\n\n",
            m.items,
            m.candidates,
            100.0 * m.accuracy_at_1,
            m.mrr
        ));
    }
    if with_retrieval && runs.iter().any(|r| r.retrieval.candidates == 0) {
        out.push_str(
            "Some runs' retrieval was measured before ties were counted against the title (and \
             before shared descriptions were merged); run them again for comparable R@1.\n\n",
        );
    }
    let columns = columns(
        gold_items > 0,
        with_retrieval,
        pretrained.match_set.is_some(),
    );
    let heads: Vec<&str> = columns.iter().map(|c| c.head).collect();
    let mrr_head = if with_retrieval { " MRR |" } else { "" };
    out.push_str(&format!(
        "| variant | seeds | {} |{mrr_head} train s/run |\n|---|---|{}{}---|\n",
        heads.join(" | "),
        "---|".repeat(columns.len()),
        if with_retrieval { "---|" } else { "" },
    ));
    for v in variants {
        let rs = &by_variant[v.as_str()];
        if rs.is_empty() {
            continue;
        }
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                let xs: Vec<f64> = rs.iter().filter_map(|r| (c.measure)(r)).collect();
                if xs.is_empty() {
                    "-".into()
                } else {
                    pct(&xs)
                }
            })
            .collect();
        let mean_of =
            |f: fn(&RunResult) -> f64| mean_std(&rs.iter().map(|r| f(r)).collect::<Vec<_>>()).mean;
        let mrr = if with_retrieval {
            format!(" {:.4} |", mean_of(|r| r.retrieval.mrr))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {v} | {} | {} |{mrr} {:.0} |\n",
            rs.len(),
            cells.join(" | "),
            mean_of(|r| r.train_seconds),
        ));
    }
    let Some(baseline) = by_variant.get("baseline") else {
        return out;
    };
    let paired: Vec<&Column> = columns.iter().filter(|c| c.paired).collect();
    out.push_str("\nPaired differences against the baseline (same seed), in points: mean ± sd [per seed]\n\n");
    out.push_str(&format!(
        "| variant | {} |\n|---|{}\n",
        paired
            .iter()
            .map(|c| c.head)
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(paired.len())
    ));
    for v in variants.iter().filter(|v| v.as_str() != "baseline") {
        let rs = &by_variant[v.as_str()];
        if rs.is_empty() {
            continue;
        }
        let cells: Vec<String> = paired
            .iter()
            .map(|c| {
                let diffs: Vec<f64> = rs
                    .iter()
                    .filter_map(|r| {
                        let b = baseline.iter().find(|b| b.seed == r.seed)?;
                        Some(100.0 * ((c.measure)(r)? - (c.measure)(b)?))
                    })
                    .collect();
                if diffs.is_empty() {
                    return "-".into();
                }
                let s = mean_std(&diffs);
                let each: Vec<String> = diffs.iter().map(|d| format!("{d:+.2}")).collect();
                format!("{:+.2} ± {:.2} [{}]", s.mean, s.std, each.join(", "))
            })
            .collect();
        out.push_str(&format!("| {v} | {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::options_from;

    fn template() -> TrainOptions {
        let mut options = options_from(&[]);
        options.distill = 3.0;
        options
    }

    #[test]
    fn variants_name_their_objective_distillation_and_layers_and_frozen_layers() -> Result<()> {
        let plain = parse_variant("infonce:0.1", &template())?;
        assert_eq!(plain.objective, Objective::Infonce);
        assert_eq!((plain.lambda, plain.distill), (0.1, 0.0));
        let distilled = parse_variant("infonce:0.1+distill:2", &template())?;
        assert_eq!((distilled.lambda, distilled.distill), (0.1, 2.0));
        assert_eq!(distilled.variant_name(), "infonce τ=0.05 λ=0.1 + distill 2");
        let baseline = parse_variant("baseline+distill:1", &template())?;
        assert_eq!(baseline.variant_name(), "baseline + distill 1");
        let layered = parse_variant("infonce:0.1+distill:1+layers:1", &template())?;
        assert_eq!((layered.distill, layered.tagging_layers), (1.0, 1));
        assert_eq!(
            layered.variant_name(),
            "infonce τ=0.05 λ=0.1 + distill 1 + 1 tagging layers"
        );
        let frozen = parse_variant("infonce:0.1+layers:1+frozen:2", &template())?;
        assert_eq!(frozen.frozen_layers, Some(2));
        assert_eq!(
            frozen.variant_name(),
            "infonce τ=0.05 λ=0.1 + 1 tagging layers + 2 frozen layers"
        );
        for bad in [
            "infonce:0.1+frozen:x",
            "infonce:x",
            "infonce:0.1+keep:1",
            "infonce:0.1+distill:y",
            "infonce:0.1+layers:-1",
            "infonce:0.1+distill",
            "crf:1",
            "baseline+epochs:2",
            "binder:0.5",
        ] {
            assert!(parse_variant(bad, &template()).is_err(), "{bad}");
        }
        Ok(())
    }

    /// `binder` brings BINDER's recipe whatever the tagging template says; `+epochs:N` a budget,
    /// which its name records.
    #[test]
    fn the_binder_variant_takes_its_recipe() -> Result<()> {
        let binder = parse_variant("binder", &template())?;
        assert_eq!(binder.task, Task::Binder);
        assert_eq!(
            (binder.epochs, binder.batch_size, binder.lr, binder.warmup),
            (20, 8, 3e-5, 0.0)
        );
        assert_eq!((binder.weight_decay, binder.patience), (0.0, 5));
        assert_eq!(binder.variant_name(), "binder (20 epochs)");
        let short = parse_variant("binder+epochs:4", &template())?;
        assert_eq!(short.variant_name(), "binder (4 epochs)");
        Ok(())
    }

    fn run(variant: &str, seed: u64, f1: f64, gold: bool, r1: Option<f64>) -> RunResult {
        let report = |f1| NerReport {
            f1,
            sequences: 10,
            ..Default::default()
        };
        RunResult {
            variant: variant.into(),
            seed,
            test: report(f1),
            test_unseen: Some(report(f1)),
            gold: gold.then(|| report(f1 - 0.1)),
            gold_unseen: gold.then(|| report(f1 - 0.1)),
            retrieval: RetrievalReport {
                accuracy_at_1: r1.unwrap_or(0.0),
                mrr: r1.unwrap_or(0.0),
                items: if r1.is_some() { 10 } else { 0 },
                candidates: if r1.is_some() { 10 } else { 0 },
            },
            match_set: None,
            train_seconds: 1.0,
            epochs: 1,
        }
    }

    /// A sentence dataset (no gold set, no descriptions) gets no gold or retrieval columns; the
    /// catalog gets both; paired differences are per seed.
    #[test]
    fn the_report_has_the_columns_its_runs_measured() {
        let names = ["baseline".to_string(), "binder (3 epochs)".to_string()];
        let sentences = [
            run("baseline", 1, 0.80, false, None),
            run("baseline", 2, 0.82, false, None),
            run("binder (3 epochs)", 1, 0.85, false, None),
            run("binder (3 epochs)", 2, 0.83, false, None),
        ];
        let none = RetrievalReport::default();
        let pretrained = Pretrained {
            split: &none,
            match_set: None,
        };
        let table = summarise(&sentences, &names, &[1, 2], &pretrained, 10, 10);
        assert!(!table.contains("R@1") && !table.contains("gold") && !table.contains("MRR"));
        assert!(
            table.contains("| binder (3 epochs) | 2 | 84.00 ± 1.41 |"),
            "{table}"
        );
        assert!(table.contains("+3.00 ± 2.83 [+5.00, +1.00]"), "{table}");
        let catalog = [
            run("baseline", 1, 0.80, true, Some(0.2)),
            run("binder (3 epochs)", 1, 0.85, true, Some(0.1)),
        ];
        let split = RetrievalReport {
            accuracy_at_1: 0.3,
            mrr: 0.4,
            items: 10,
            candidates: 10,
        };
        let pretrained = Pretrained {
            split: &split,
            match_set: None,
        };
        let table = summarise(&catalog, &names, &[1], &pretrained, 10, 10);
        assert!(
            table.contains("| gold F1 |") && table.contains("| R@1 | MRR |"),
            "{table}"
        );
        assert!(table.contains("gold set: 10 items"), "{table}");
        assert!(table.contains("| -10.00 ± 0.00 [-10.00] |"), "{table}");
    }
}
