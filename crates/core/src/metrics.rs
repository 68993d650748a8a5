//! Evaluation metrics for tagging and retrieval.
//!
//! Design choices: NER is scored like seqeval in strict IOB2 mode (and like `evaluate` in
//! `quality_ref.py`): micro precision/recall/F1 over exact strict spans, plus exact match (whole tag
//! sequence equal) and word accuracy. Every ratio with a zero denominator is 0, never NaN, so reports
//! always serialize. Mismatched gold/prediction shapes are a caller bug that would silently skew the
//! numbers, so [`evaluate`] returns an error naming the first bad sequence instead of truncating.

use std::collections::{BTreeMap, BTreeSet};

use crate::tags::{spans_from_iob2, Span};

/// Scores of one entity type.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TypeScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold entities.
    pub support: usize,
    /// Predicted entities.
    pub predicted: usize,
    /// Predicted entities that exactly match a gold entity.
    pub correct: usize,
}

impl TypeScores {
    /// Precision, recall and F1 from counts, each 0 when its denominator is 0.
    pub(crate) fn from_counts(correct: usize, predicted: usize, support: usize) -> Self {
        let precision = ratio(correct, predicted);
        let recall = ratio(correct, support);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        TypeScores {
            precision,
            recall,
            f1,
            support,
            predicted,
            correct,
        }
    }
}

/// A full NER evaluation; all values are fractions in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NerReport {
    /// Micro-averaged over all types.
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Fraction of sequences whose whole tag sequence equals gold.
    pub exact_match: f64,
    /// Fraction of word tags equal to gold.
    pub token_accuracy: f64,
    /// Scores by entity type (types present in gold or predictions).
    pub per_type: BTreeMap<String, TypeScores>,
    /// Number of sequences.
    pub sequences: usize,
    /// Number of words.
    pub words: usize,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Scores predicted tag sequences against gold ones.
///
/// Errors (with the offending sequence index) when the number of sequences differs or a predicted
/// sequence has a different length than its gold sequence.
pub fn evaluate(gold: &[Vec<String>], pred: &[Vec<String>]) -> Result<NerReport, String> {
    if gold.len() != pred.len() {
        return Err(format!(
            "{} gold sequences but {} predicted sequences",
            gold.len(),
            pred.len()
        ));
    }
    // per type: (correct, predicted, support)
    let mut counts: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let (mut exact, mut words, mut equal_words) = (0, 0, 0);
    for (i, (g, p)) in gold.iter().zip(pred).enumerate() {
        if g.len() != p.len() {
            return Err(format!(
                "sequence {i}: {} gold tags but {} predicted tags",
                g.len(),
                p.len()
            ));
        }
        let gs: BTreeSet<Span> = spans_from_iob2(g).into_iter().collect();
        let ps: BTreeSet<Span> = spans_from_iob2(p).into_iter().collect();
        for s in &gs {
            counts.entry(s.label.clone()).or_default().2 += 1;
        }
        for s in &ps {
            let c = counts.entry(s.label.clone()).or_default();
            c.1 += 1;
            if gs.contains(s) {
                c.0 += 1;
            }
        }
        exact += usize::from(g == p);
        words += g.len();
        equal_words += g.iter().zip(p).filter(|(a, b)| a == b).count();
    }
    let per_type: BTreeMap<String, TypeScores> = counts
        .iter()
        .map(|(t, &(c, p, s))| (t.clone(), TypeScores::from_counts(c, p, s)))
        .collect();
    let (c, p, s) = counts
        .values()
        .fold((0, 0, 0), |a, v| (a.0 + v.0, a.1 + v.1, a.2 + v.2));
    let micro = TypeScores::from_counts(c, p, s);
    Ok(NerReport {
        precision: micro.precision,
        recall: micro.recall,
        f1: micro.f1,
        exact_match: ratio(exact, gold.len()),
        token_accuracy: ratio(equal_words, words),
        per_type,
        sequences: gold.len(),
        words,
    })
}

/// Query-to-candidate retrieval quality.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetrievalReport {
    /// Fraction of queries whose own candidate ranks first (expected under a random order of
    /// tied candidates).
    pub accuracy_at_1: f64,
    /// Mean reciprocal rank of the own candidate (expected under a random order of ties).
    pub mrr: f64,
    /// Number of queries.
    pub items: usize,
    /// Number of distinct candidates ranked (fewer than `items` when items share a description).
    #[serde(default)]
    pub candidates: usize,
}

/// The distinct texts of `texts`, in first-seen order, and each text's index among them: the
/// candidates of a retrieval over `texts` and each query's target. Items that share a text (two
/// products with the same description) share one candidate, so finding either is correct, and a
/// duplicate never competes with its twin.
pub fn distinct_targets<'a>(texts: &[&'a str]) -> (Vec<&'a str>, Vec<usize>) {
    let mut index: std::collections::HashMap<&str, usize> = Default::default();
    let mut distinct = Vec::new();
    let targets = texts
        .iter()
        .map(|&t| {
            *index.entry(t).or_insert_with(|| {
                distinct.push(t);
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, targets)
}

/// Row `q` holds query `q`'s similarity to every candidate; its correct candidate is
/// `targets[q]`.
///
/// Ties count against the query: with `g` candidates scoring strictly higher than the own one and
/// `t` other candidates scoring the same, the own candidate's rank is taken uniformly from
/// `g + 1 ..= g + t + 1` (a random order of the tied ones), and accuracy@1 and the reciprocal rank
/// are their expectations. So an encoder that maps every text to one vector scores chance
/// (accuracy@1 of 1 / candidates), not 100%. NaN candidates never outrank; a query whose own score
/// is missing or NaN counts as a miss with reciprocal rank 0.
pub fn retrieval(similarity: &[Vec<f32>], targets: &[usize]) -> RetrievalReport {
    let mut hits = 0.0f64;
    let mut rr_sum = 0.0f64;
    for (row, &target) in similarity.iter().zip(targets) {
        let Some(&own) = row.get(target).filter(|x| !x.is_nan()) else {
            continue;
        };
        let greater = row.iter().filter(|&&x| x > own).count();
        let tied = row.iter().filter(|&&x| x == own).count() - 1;
        let first = greater + 1;
        let ranks = first..=first + tied;
        if greater == 0 {
            hits += 1.0 / (tied + 1) as f64;
        }
        rr_sum += ranks.map(|r| 1.0 / r as f64).sum::<f64>() / (tied + 1) as f64;
    }
    let n = similarity.len().min(targets.len());
    RetrievalReport {
        accuracy_at_1: if n == 0 { 0.0 } else { hits / n as f64 },
        mrr: if n == 0 { 0.0 } else { rr_sum / n as f64 },
        items: n,
        candidates: similarity.first().map_or(0, Vec::len),
    }
}

/// Mean and sample standard deviation of repeated runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeanStd {
    pub mean: f64,
    /// Sample standard deviation (n - 1 denominator); 0 for fewer than two values.
    pub std: f64,
    pub n: usize,
}

/// Mean and sample standard deviation (0 for `n < 2`; mean 0 for no values).
pub fn mean_std(xs: &[f64]) -> MeanStd {
    let n = xs.len();
    if n == 0 {
        return MeanStd {
            mean: 0.0,
            std: 0.0,
            n,
        };
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let std = if n < 2 {
        0.0
    } else {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    };
    MeanStd { mean, std, n }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn hand_computed_ner_scores() {
        let gold = vec![
            v(&["B-BRAND", "I-BRAND", "B-COLOR", "B-TYPE"]),
            v(&["B-BRAND", "O", "B-TYPE", "I-TYPE"]),
        ];
        let pred = vec![
            // BRAND ok, COLOR ok, TYPE missed
            v(&["B-BRAND", "I-BRAND", "B-COLOR", "O"]),
            // BRAND ok; I-TYPE dangling -> TYPE(2,4) not predicted; spurious COLOR
            v(&["B-BRAND", "B-COLOR", "I-TYPE", "I-TYPE"]),
        ];
        let r = evaluate(&gold, &pred).unwrap();
        // gold 5 entities, predicted 4, correct 3
        assert!(close(r.precision, 3.0 / 4.0));
        assert!(close(r.recall, 3.0 / 5.0));
        assert!(close(r.f1, 2.0 * 0.75 * 0.6 / 1.35));
        assert!(close(r.exact_match, 0.0));
        assert!(close(r.token_accuracy, 5.0 / 8.0));
        assert_eq!((r.sequences, r.words), (2, 8));
        let b = &r.per_type["BRAND"];
        assert_eq!((b.support, b.predicted, b.correct), (2, 2, 2));
        let c = &r.per_type["COLOR"];
        assert_eq!((c.support, c.predicted, c.correct), (1, 2, 1));
        assert!(close(c.precision, 0.5) && close(c.recall, 1.0) && close(c.f1, 2.0 / 3.0));
        let t = &r.per_type["TYPE"];
        assert_eq!((t.support, t.predicted, t.correct), (2, 0, 0));
        assert!(close(t.precision, 0.0) && close(t.f1, 0.0));
    }

    #[test]
    fn perfect_empty_and_mismatched() {
        let gold = vec![v(&["B-X", "I-X", "O"]), v(&[])];
        let r = evaluate(&gold, &gold).unwrap();
        assert!(close(r.f1, 1.0) && close(r.exact_match, 1.0) && close(r.token_accuracy, 1.0));
        let r = evaluate(&[], &[]).unwrap();
        assert_eq!(r, NerReport::default());
        assert!(evaluate(&gold, &gold[..1])
            .unwrap_err()
            .contains("2 gold sequences"));
        let short = vec![v(&["B-X"]), v(&[])];
        assert!(evaluate(&gold, &short)
            .unwrap_err()
            .starts_with("sequence 0"));
    }

    #[test]
    fn retrieval_ranks() {
        let sim = vec![
            vec![0.9, 0.1, 0.2], // rank 1
            vec![0.8, 0.5, 0.4], // one greater -> rank 2
            vec![0.7, 0.9, 0.1], // rank 3
        ];
        let r = retrieval(&sim, &[0, 1, 2]);
        assert_eq!((r.items, r.candidates), (3, 3));
        assert!(close(r.accuracy_at_1, 1.0 / 3.0));
        assert!(close(r.mrr, (1.0 + 0.5 + 1.0 / 3.0) / 3.0));
        let odd = vec![vec![f32::NAN, 0.0], vec![f32::NAN, 0.2], vec![0.3]];
        let r = retrieval(&odd, &[0, 1, 2]);
        // row 0: own NaN -> miss; row 1: NaN candidate ignored -> rank 1; row 2: no target
        assert!(close(r.accuracy_at_1, 1.0 / 3.0) && close(r.mrr, 1.0 / 3.0));
        assert_eq!(retrieval(&[], &[]), RetrievalReport::default());
    }

    #[test]
    fn ties_count_against_the_query() {
        // One tie with a higher one above: rank 2 or 3, each half the time.
        let r = retrieval(&[vec![0.5, 0.9, 0.5]], &[0]);
        assert!(close(r.accuracy_at_1, 0.0) && close(r.mrr, (0.5 + 1.0 / 3.0) / 2.0));
        // A tie for first: first half the time.
        let r = retrieval(&[vec![0.5, 0.5, 0.1]], &[0]);
        assert!(close(r.accuracy_at_1, 0.5) && close(r.mrr, (1.0 + 0.5) / 2.0));
    }

    #[test]
    fn a_collapsed_embedding_scores_chance() {
        // Every text mapped to one vector: every similarity equal.
        let n = 50;
        let sim = vec![vec![1.0f32; n]; n];
        let targets: Vec<usize> = (0..n).collect();
        let r = retrieval(&sim, &targets);
        assert!(close(r.accuracy_at_1, 1.0 / n as f64), "{r:?}");
        let harmonic: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
        assert!(close(r.mrr, harmonic / n as f64), "{r:?}");
    }

    #[test]
    fn shared_descriptions_share_a_candidate() {
        let (distinct, targets) = distinct_targets(&["red", "blue", "red", "green"]);
        assert_eq!(distinct, ["red", "blue", "green"]);
        assert_eq!(targets, [0, 1, 0, 2]);
        // Both items described "red" find it first; neither competes with its twin.
        let sim = vec![
            vec![0.9, 0.1, 0.2],
            vec![0.1, 0.8, 0.3],
            vec![0.7, 0.2, 0.1],
            vec![0.1, 0.2, 0.6],
        ];
        let r = retrieval(&sim, &targets);
        assert_eq!((r.items, r.candidates), (4, 3));
        assert!(close(r.accuracy_at_1, 1.0));
    }

    #[test]
    fn mean_and_sample_std() {
        let m = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!(close(m.mean, 2.5) && close(m.std, (5.0f64 / 3.0).sqrt()) && m.n == 4);
        let one = mean_std(&[7.0]);
        assert!(close(one.mean, 7.0) && close(one.std, 0.0));
        assert_eq!(mean_std(&[]).n, 0);
    }
}
