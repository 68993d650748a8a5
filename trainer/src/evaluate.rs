//! Evaluation as the paper reports it (entity P/R/F1 with seqeval's strict IOB2 semantics, exact
//! match, token accuracy) plus title-to-description retrieval, which shows whether the encoder kept
//! a useful sentence embedding.
use anyhow::Result;
use multitag_core::{retrieval, LabeledRecord, NerReport, RetrievalReport};
use multitag_model::Predictor;
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
    let gold: Vec<Vec<String>> = records.iter().map(|r| r.tags.clone()).collect();
    multitag_core::evaluate(&gold, &predicted).map_err(anyhow::Error::msg)
}

/// Each title's own description ranked among all the descriptions of `records`.
pub fn evaluate_retrieval(
    predictor: &dyn Predictor,
    records: &[&LabeledRecord],
    title_tokens: usize,
    description_tokens: usize,
    batch: usize,
) -> Result<RetrievalReport> {
    let titles: Vec<&str> = records.iter().map(|r| r.title.as_str()).collect();
    let descriptions: Vec<&str> = records.iter().map(|r| r.description.as_str()).collect();
    let t = predictor.embed(&titles, title_tokens, batch)?;
    let d = predictor.embed(&descriptions, description_tokens, batch)?;
    let similarity = t.matmul(&d.t()?)?.to_vec2::<f32>()?;
    Ok(retrieval(&similarity))
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub model: String,
    pub test: NerReport,
    pub gold: Option<NerReport>,
    pub retrieval: RetrievalReport,
}

pub fn print_report(report: &EvalReport) {
    println!("model: {}", report.model);
    println!("| set | items | precision | recall | F1 | exact match | token accuracy |");
    println!("|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("test split", Some(&report.test)),
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
    for (label, s) in &report.test.per_type {
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {} |",
            100.0 * s.precision,
            100.0 * s.recall,
            100.0 * s.f1,
            s.support
        );
    }
    println!();
    println!(
        "title -> own description over {} test items: accuracy@1 {:.2}, MRR {:.4}",
        report.retrieval.items,
        100.0 * report.retrieval.accuracy_at_1,
        report.retrieval.mrr
    );
}
