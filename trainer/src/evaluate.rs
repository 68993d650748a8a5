//! Evaluation as the paper reports it (entity P/R/F1 with seqeval's strict IOB2 semantics, exact
//! match, token accuracy) plus title-to-description retrieval, which shows whether the encoder kept
//! a useful sentence embedding.
//!
//! Every NER figure is given twice: on all held-out items, and on those whose title never occurs
//! (word for word, case aside) among the training and dev items ([`SeenTitles`]), since a catalog
//! repeats titles and a repeated title tests memory, not tagging. Retrieval ranks each title's
//! description among the distinct descriptions, with ties counted against the title
//! ([`multitag_core::retrieval`]).
use anyhow::Result;
use multitag_core::{
    distinct_targets, retrieval, LabeledRecord, NerReport, RetrievalReport, SeenTitles,
};
use multitag_model::{Embedder, Predictor};
use serde::Serialize;

/// The predicted IOB2 tags of each record's words.
pub fn predict_tags(
    predictor: &dyn Predictor,
    records: &[&LabeledRecord],
    batch: usize,
) -> Result<Vec<Vec<String>>> {
    let words: Vec<Vec<&str>> = records
        .iter()
        .map(|r| r.words.iter().map(String::as_str).collect())
        .collect();
    Ok(predictor.predict_tags(&words, batch)?)
}

pub fn evaluate_ner(
    predictor: &dyn Predictor,
    records: &[&LabeledRecord],
    batch: usize,
) -> Result<NerReport> {
    let predicted = predict_tags(predictor, records, batch)?;
    score(records, &predicted, None)
}

/// Scores `predicted` (one tag sequence per record) against the records' tags, on the records at
/// `positions` only when given.
pub fn score(
    records: &[&LabeledRecord],
    predicted: &[Vec<String>],
    positions: Option<&[usize]>,
) -> Result<NerReport> {
    let all: Vec<usize>;
    let positions = match positions {
        Some(p) => p,
        None => {
            all = (0..records.len()).collect();
            &all
        }
    };
    let gold: Vec<Vec<String>> = positions.iter().map(|&i| records[i].tags.clone()).collect();
    let pred: Vec<Vec<String>> = positions.iter().map(|&i| predicted[i].clone()).collect();
    multitag_core::evaluate(&gold, &pred).map_err(anyhow::Error::msg)
}

/// NER on held-out items: all of them, and those whose title was not seen in training.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOutNer {
    pub all: NerReport,
    pub unseen: NerReport,
}

pub fn evaluate_held_out(
    predictor: &dyn Predictor,
    records: &[&LabeledRecord],
    seen: &SeenTitles,
    batch: usize,
) -> Result<HeldOutNer> {
    let predicted = predict_tags(predictor, records, batch)?;
    let unseen = seen.unseen_positions(records);
    Ok(HeldOutNer {
        all: score(records, &predicted, None)?,
        unseen: score(records, &predicted, Some(&unseen))?,
    })
}

/// Each title's own description ranked among the distinct descriptions of `records` (those that
/// have one).
pub fn evaluate_retrieval(
    embedder: &dyn Embedder,
    records: &[&LabeledRecord],
    title_tokens: usize,
    description_tokens: usize,
    batch: usize,
) -> Result<RetrievalReport> {
    let records: Vec<&LabeledRecord> = records
        .iter()
        .copied()
        .filter(|r| !r.description.is_empty())
        .collect();
    if records.is_empty() {
        return Ok(RetrievalReport::default());
    }
    let titles: Vec<&str> = records.iter().map(|r| r.title.as_str()).collect();
    let descriptions: Vec<&str> = records.iter().map(|r| r.description.as_str()).collect();
    let (candidates, targets) = distinct_targets(&descriptions);
    let t = embedder.embed(&titles, title_tokens, batch)?;
    let d = embedder.embed(&candidates, description_tokens, batch)?;
    let similarity = t.matmul(&d.t()?)?.to_vec2::<f32>()?;
    Ok(retrieval(&similarity, &targets))
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub model: String,
    /// None for a base encoder, which has no tags (retrieval only).
    pub test: Option<NerReport>,
    /// The test items whose title does not occur in the training or dev items.
    pub test_unseen: Option<NerReport>,
    pub gold: Option<NerReport>,
    /// The gold items whose title does not occur in the training or dev items.
    pub gold_unseen: Option<NerReport>,
    pub retrieval: RetrievalReport,
}

pub fn print_report(report: &EvalReport) {
    println!("model: {}", report.model);
    println!("| set | items | precision | recall | F1 | exact match | token accuracy |");
    println!("|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("test, unseen titles", report.test_unseen.as_ref()),
        ("test", report.test.as_ref()),
        ("gold, unseen titles", report.gold_unseen.as_ref()),
        ("gold", report.gold.as_ref()),
    ] {
        if let Some(r) = r.filter(|r| r.sequences > 0) {
            println!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.sequences,
                100.0 * r.precision,
                100.0 * r.recall,
                100.0 * r.f1,
                100.0 * r.exact_match,
                100.0 * r.token_accuracy
            );
        }
    }
    println!();
    println!("| type | test P | test R | test F1 | support |");
    println!("|---|---|---|---|---|");
    let per_type = report
        .test
        .as_ref()
        .map(|t| &t.per_type)
        .into_iter()
        .flatten();
    for (label, s) in per_type {
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {} |",
            100.0 * s.precision,
            100.0 * s.recall,
            100.0 * s.f1,
            s.support
        );
    }
    println!();
    if report.retrieval.items == 0 {
        println!("title -> own description: no test item has a description");
        return;
    }
    println!(
        "title -> own description, {} test titles among {} distinct descriptions (ties count \
         against): accuracy@1 {:.2}, MRR {:.4}",
        report.retrieval.items,
        report.retrieval.candidates,
        100.0 * report.retrieval.accuracy_at_1,
        report.retrieval.mrr
    );
}
