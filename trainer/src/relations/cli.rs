//! The relation task's side of `trainer train`, `eval` and `tag` (`--task relations`, or a model
//! directory whose training.json says `task: relations`).
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::Device;
use multitag_core::relations::{evaluate, Document, ExtractionReport, TaskScores, TypeSet};
use multitag_model::tasks::relations::SpanExtractor;
use multitag_model::DenseCompute;

use super::data::{read_part, RelationFiles};
use super::evaluate::evaluate_unseen;
use super::model::{load_extractor_with, predict_documents};
use super::train::{train_relations, EVAL_BATCH};
use crate::args::BackendArgs;
use crate::model_dir::ModelDir;
use crate::output::write_json;
use crate::train::TrainOptions;
use multitag_core::TitleInput;

/// `trainer train --task relations`: trains on the training documents, logs dev each epoch, and
/// keeps the last epoch's model in `out`.
pub fn train(
    base: &ModelDir,
    files: &RelationFiles,
    opts: &TrainOptions,
    device: &Device,
    out: &Path,
    resume: bool,
) -> Result<()> {
    let data = files.read(true, false)?;
    let outcome = train_relations(base, &data, opts, device, Some(out), resume)?;
    let last = outcome.history.last().and_then(|h| h.dev.as_ref());
    match last {
        Some(dev) => eprintln!(
            "dev: entities F1 {:.2}, relations F1 {:.2} (strict, micro)",
            100.0 * dev.entities.micro.f1,
            100.0 * dev.relations_strict.micro.f1
        ),
        None => eprintln!("no dev documents: the last epoch's model is kept"),
    }
    eprintln!(
        "model in {} ({:.0} s of training)",
        out.display(),
        outcome.train_seconds
    );
    Ok(())
}

/// Where a relation model runs: the device of its float weights, how an export's encoder
/// multiplies (`--matmul`), and the encoder's backend (`--backend`; the span and pair heads stay on
/// the CPU).
pub struct Run<'a> {
    pub device: &'a Device,
    pub compute: DenseCompute,
    pub backend: BackendArgs,
}

impl Run<'_> {
    fn extractor(&self, dir: &ModelDir) -> Result<SpanExtractor> {
        let mut extractor = load_extractor_with(dir, self.device, self.compute)?;
        self.backend.apply_to(dir, &mut extractor.model.encoder)?;
        Ok(extractor)
    }
}

/// `trainer eval` of a relation model: SpERT's evaluator on the test documents (read with the
/// model's types), printed and optionally written as JSON.
pub fn eval(
    dir: &ModelDir,
    files: &RelationFiles,
    on: &Run,
    json: Option<&Path>,
    limit: Option<usize>,
) -> Result<ExtractionReport> {
    let extractor = on.extractor(dir)?;
    let Some(test) = files.test_file()? else {
        bail!("no test documents: --test FILE, or --data DIR with *_test.json");
    };
    let mut documents = read_part(&test, extractor.types())?;
    if let Some(limit) = limit {
        documents.truncate(limit);
    }
    let predicted = predict_documents(
        &extractor.model,
        &extractor.tokenizer,
        &extractor.config,
        on.device,
        &documents,
        EVAL_BATCH,
    )?;
    let report =
        evaluate(extractor.types(), &documents, &predicted, false).map_err(anyhow::Error::msg)?;
    print_report(&test.display().to_string(), &report);
    let unseen = match trained_on(dir, extractor.types())? {
        Some(train) => {
            let unseen = evaluate_unseen(extractor.types(), &train, &documents, &predicted)?;
            print_report("test sentences never seen in training", &unseen);
            // Another fold's test set, or the training file itself, scores memory: say so where
            // the scores are read. (CoNLL04's own test set repeats 6% of it from training.)
            let seen = report.documents - unseen.documents;
            if 2 * seen > report.documents {
                eprintln!(
                    "warning: {seen} of {} test sentences occur word for word in this model's \
                     training documents (another fold's test set?): the scores above measure \
                     memory; only the unseen ones test the model",
                    report.documents
                );
            }
            Some(unseen)
        }
        None => None,
    };
    if let Some(path) = json {
        let value = serde_json::json!({
            "model": dir.path.display().to_string(),
            "test_file": test.display().to_string(),
            "test": &report,
            "test_unseen": unseen,
        });
        write_json(path, &value)?;
    }
    Ok(report)
}

/// The training documents training.json names (`data.train`), when that file is still there;
/// without them (or without training.json: an export) the unseen-sentence figures are left out,
/// with a note.
fn trained_on(dir: &ModelDir, types: &TypeSet) -> Result<Option<Vec<Document>>> {
    let path = dir.path.join("training.json");
    if !path.is_file() {
        eprintln!(
            "{}: no training.json (an exported model?): no unseen-sentence figures",
            dir.path.display()
        );
        return Ok(None);
    }
    let training: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let Some(train) = training["data"]["train"].as_str().map(PathBuf::from) else {
        eprintln!(
            "{}: no `data.train`: no unseen-sentence figures",
            path.display()
        );
        return Ok(None);
    };
    if !train.is_file() {
        eprintln!(
            "{}: the training file it names, {}, is not there: no unseen-sentence figures",
            path.display(),
            train.display()
        );
        return Ok(None);
    }
    Ok(Some(read_part(&train, types)?))
}

/// SpERT's three settings, micro and macro, as its evaluator prints them.
pub fn print_report(source: &str, report: &ExtractionReport) {
    println!("{source}: {} documents", report.documents);
    println!("| setting | micro P | micro R | micro F1 | macro P | macro R | macro F1 |");
    println!("|---|---|---|---|---|---|---|");
    let row = |name: &str, s: &TaskScores| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            100.0 * s.micro.precision,
            100.0 * s.micro.recall,
            100.0 * s.micro.f1,
            100.0 * s.macro_avg.precision,
            100.0 * s.macro_avg.recall,
            100.0 * s.macro_avg.f1
        )
    };
    row("entities", &report.entities);
    row("relations (strict)", &report.relations_strict);
    row("relations (boundaries)", &report.relations_boundaries);
}

/// `trainer tag` with a relation model: each text's entities (character offsets into it) and
/// relations (indices into its entities), one JSON line per input line.
pub fn tag(dir: &ModelDir, parsed: &TitleInput, batch: usize, on: &Run) -> Result<()> {
    let extractor = on.extractor(dir)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut entities, mut relations) = (0, 0);
    for chunk in parsed.titles.chunks(batch.max(1) * 8) {
        let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
        for ((line, _), found) in chunk.iter().zip(extractor.extract_texts(&texts, batch)?) {
            entities += found.entities.len();
            relations += found.relations.len();
            writeln!(out, "{}", found.json_line(*line))?;
        }
    }
    out.flush()?;
    eprintln!(
        "{} texts: {entities} entities, {relations} relations ({} blank lines and {} bad rows \
         skipped)",
        parsed.titles.len(),
        parsed.blank_lines,
        parsed.problems.len()
    );
    Ok(())
}
