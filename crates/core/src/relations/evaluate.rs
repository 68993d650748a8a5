//! SpERT's evaluation of joint entity and relation extraction.
//!
//! Three settings, each scored per type, micro- and macro-averaged (all values fractions in
//! `[0, 1]`; SpERT prints percentages):
//! - entities: a predicted entity is correct when its span and its type equal a gold entity's;
//! - relations, strict ("with NEC", named entity classification): the relation type and both
//!   arguments' spans and types are correct; the figure SpERT reports for CoNLL04 and ADE;
//! - relations, boundaries ("without NEC"): the relation type and both arguments' spans are
//!   correct, argument types are ignored; the figure SpERT reports for SciERC.
//!
//! How SpERT counts, and so how this module does:
//! - Per document, gold and predictions are sets: an item listed twice counts once. Within the
//!   boundaries setting the sets are taken after the argument types are dropped, so two gold
//!   relations that differ only in argument types are one.
//! - Symmetric relations are compared with the earlier-starting argument as head (both gold and
//!   predictions are put in that order, see [`RelationTriple::canonical`]), so either direction
//!   matches; asymmetric ones must have head and tail right.
//! - Per type: precision = correct / predicted, recall = correct / gold, F1 their harmonic mean,
//!   each 0 when its denominator is 0 (sklearn's `zero_division=0`). Micro: the same over the
//!   summed counts. Macro: the mean over types of each per-type precision, recall and F1 (sklearn's
//!   `average='macro'`, not the F1 of the mean precision and recall), over the types SpERT passes
//!   as labels: those with at least one gold or predicted item in the evaluated data. A type that
//!   is only predicted lowers the macro scores; one absent from both is not averaged (and not in
//!   `per_type`). The macro row's counts are the totals.
//! - With `no_overlapping`, [`remove_overlapping`] is applied to gold and predictions alike
//!   (SpERT's `--no_overlapping`); predictions already decoded with it are unchanged by it.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

use super::decode::{remove_overlapping, Decoded};
use super::document::{Document, EntityMention, RelationTriple, TypeSet, WordSpan};
use crate::metrics::TypeScores;

/// One setting's scores.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskScores {
    pub micro: TypeScores,
    /// Means of the per-type scores; the counts are totals.
    #[serde(rename = "macro")]
    pub macro_avg: TypeScores,
    /// By type name: the types with gold or predicted items.
    pub per_type: BTreeMap<String, TypeScores>,
}

/// SpERT's three settings over a set of documents.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExtractionReport {
    pub entities: TaskScores,
    /// With NEC: relation type, argument spans and argument types.
    pub relations_strict: TaskScores,
    /// Without NEC: relation type and argument spans.
    pub relations_boundaries: TaskScores,
    pub documents: usize,
}

/// A relation with argument types dropped (the boundaries setting).
type Boundaries = (WordSpan, WordSpan, usize);

/// Counts per type (correct, predicted, gold) over documents of gold and predicted item sets.
struct Counts(Vec<[usize; 3]>);

impl Counts {
    fn add<T: Eq + Hash>(&mut self, gold: Vec<T>, pred: Vec<T>, ty: impl Fn(&T) -> usize) {
        let gold: HashSet<T> = gold.into_iter().collect();
        let pred: HashSet<T> = pred.into_iter().collect();
        for g in &gold {
            self.0[ty(g)][2] += 1;
            if pred.contains(g) {
                self.0[ty(g)][0] += 1;
            }
        }
        for p in &pred {
            self.0[ty(p)][1] += 1;
        }
    }

    fn scores<'a>(&self, names: impl Iterator<Item = &'a str>) -> TaskScores {
        let mut out = TaskScores::default();
        let mut total = [0; 3];
        let mut used = Vec::new();
        for (name, &[c, p, g]) in names.zip(&self.0) {
            if p + g == 0 {
                continue;
            }
            let s = TypeScores::from_counts(c, p, g);
            out.per_type.insert(name.to_string(), s.clone());
            used.push(s);
            total = [total[0] + c, total[1] + p, total[2] + g];
        }
        out.micro = TypeScores::from_counts(total[0], total[1], total[2]);
        let mean = |f: fn(&TypeScores) -> f64| {
            if used.is_empty() {
                0.0
            } else {
                used.iter().map(f).sum::<f64>() / used.len() as f64
            }
        };
        out.macro_avg = TypeScores {
            precision: mean(|s| s.precision),
            recall: mean(|s| s.recall),
            f1: mean(|s| s.f1),
            correct: total[0],
            predicted: total[1],
            support: total[2],
        };
        out
    }
}

/// Entities and canonical relations, checked against the type set.
fn checked(
    entities: Vec<EntityMention>,
    relations: Vec<RelationTriple>,
    types: &TypeSet,
    no_overlapping: bool,
    what: &str,
) -> Result<(Vec<EntityMention>, Vec<RelationTriple>), String> {
    let bad_entity = |e: &EntityMention| e.ty >= types.entities.len();
    if let Some(e) = entities.iter().find(|e| bad_entity(e)) {
        return Err(format!(
            "{what}: entity type {} is not in the type set",
            e.ty
        ));
    }
    if let Some(r) = relations
        .iter()
        .find(|r| r.ty >= types.relations.len() || bad_entity(&r.head) || bad_entity(&r.tail))
    {
        return Err(format!(
            "{what}: relation {r:?} has a type not in the type set"
        ));
    }
    let mut relations: Vec<RelationTriple> = relations
        .into_iter()
        .map(|r| r.canonical(types.relations[r.ty].symmetric))
        .collect();
    let mut entities = entities;
    if no_overlapping {
        remove_overlapping(&mut entities, &mut relations);
    }
    Ok((entities, relations))
}

/// Scores predictions against gold documents, one prediction per document, in order. Errors when
/// the counts differ, a gold relation indexes past its entities, or a type is not in `types`.
pub fn evaluate(
    types: &TypeSet,
    gold: &[Document],
    predicted: &[Decoded],
    no_overlapping: bool,
) -> Result<ExtractionReport, String> {
    if gold.len() != predicted.len() {
        return Err(format!(
            "{} predictions for {} documents",
            predicted.len(),
            gold.len()
        ));
    }
    let mut entities = Counts(vec![[0; 3]; types.entities.len()]);
    let mut strict = Counts(vec![[0; 3]; types.relations.len()]);
    let mut boundaries = Counts(vec![[0; 3]; types.relations.len()]);
    for (k, (g, p)) in gold.iter().zip(predicted).enumerate() {
        let n = g.entities.len();
        if let Some(r) = g.relations.iter().find(|r| r.head >= n || r.tail >= n) {
            return Err(format!(
                "gold document {k}: relation {r:?} indexes past its {n} entities"
            ));
        }
        let gold = checked(
            g.entities.clone(),
            g.triples(),
            types,
            no_overlapping,
            &format!("gold document {k}"),
        )?;
        let pred = checked(
            p.entities.iter().map(|e| e.entity).collect(),
            p.relations.iter().map(|r| r.relation).collect(),
            types,
            no_overlapping,
            &format!("prediction {k}"),
        )?;
        let drop_types = |rs: &[RelationTriple]| -> Vec<Boundaries> {
            rs.iter()
                .map(|r| (r.head.span(), r.tail.span(), r.ty))
                .collect()
        };
        boundaries.add(drop_types(&gold.1), drop_types(&pred.1), |b| b.2);
        entities.add(gold.0, pred.0, |e| e.ty);
        strict.add(gold.1, pred.1, |r| r.ty);
    }
    let entity_names = || types.entities.iter().map(|t| t.name.as_str());
    let relation_names = || types.relations.iter().map(|t| t.name.as_str());
    Ok(ExtractionReport {
        entities: entities.scores(entity_names()),
        relations_strict: strict.scores(relation_names()),
        relations_boundaries: boundaries.scores(relation_names()),
        documents: gold.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relations::decode::{ScoredEntity, ScoredRelation};
    use crate::relations::document::tests::types;
    use crate::relations::document::RelationMention;

    const LOC: usize = 0;
    const ORG: usize = 1;
    const PEOP: usize = 2;
    const WORK: usize = 0;
    const NEAR: usize = 1; // symmetric

    fn e(ty: usize, start: usize, end: usize) -> EntityMention {
        EntityMention { ty, start, end }
    }

    fn gold(entities: &[EntityMention], relations: &[(usize, usize, usize)]) -> Document {
        Document {
            index: 0,
            tokens: vec!["w".into(); 10],
            entities: entities.to_vec(),
            relations: relations
                .iter()
                .map(|&(ty, head, tail)| RelationMention { ty, head, tail })
                .collect(),
        }
    }

    fn pred(
        entities: &[EntityMention],
        relations: &[(EntityMention, EntityMention, usize)],
    ) -> Decoded {
        Decoded {
            entities: entities
                .iter()
                .map(|&entity| ScoredEntity { entity, score: 1.0 })
                .collect(),
            relations: relations
                .iter()
                .map(|&(head, tail, ty)| ScoredRelation {
                    relation: RelationTriple { head, tail, ty },
                    score: 1.0,
                })
                .collect(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn prf(s: &TypeScores) -> [f64; 3] {
        [s.precision, s.recall, s.f1]
    }

    fn assert_prf(s: &TypeScores, expected: [f64; 3]) {
        assert!(
            prf(s).iter().zip(expected).all(|(&a, b)| close(a, b)),
            "{:?} != {expected:?}",
            prf(s)
        );
    }

    #[test]
    fn entity_scores_micro_and_macro() {
        let g = [
            gold(&[e(LOC, 0, 1), e(ORG, 2, 4), e(PEOP, 5, 6)], &[]),
            gold(&[e(LOC, 0, 2), e(LOC, 0, 2)], &[]), // listed twice: counts once
        ];
        let p = [
            // right, wrong boundary, right, spurious
            pred(
                &[e(LOC, 0, 1), e(ORG, 2, 3), e(PEOP, 5, 6), e(LOC, 7, 8)],
                &[],
            ),
            pred(&[e(ORG, 0, 2)], &[]), // wrong type
        ];
        let r = evaluate(&types(), &g, &p, false).unwrap();
        let s = &r.entities;
        // Loc: 1 of 2 predicted, 1 of 2 gold; Org: 0 of 2, 0 of 1; Peop: 1 of 1, 1 of 1.
        assert_prf(&s.per_type["Loc"], [0.5, 0.5, 0.5]);
        assert_prf(&s.per_type["Org"], [0.0, 0.0, 0.0]);
        assert_prf(&s.per_type["Peop"], [1.0, 1.0, 1.0]);
        assert!(!s.per_type.contains_key("Other"));
        assert_eq!(
            (s.micro.correct, s.micro.predicted, s.micro.support),
            (2, 5, 4)
        );
        // Micro: P 2/5, R 2/4, F1 = 2 * 0.4 * 0.5 / 0.9 = 4/9. Macro: means over the 3 types.
        assert_prf(&s.micro, [0.4, 0.5, 4.0 / 9.0]);
        assert_prf(&s.macro_avg, [0.5, 0.5, 0.5]);
        assert_eq!(r.documents, 2);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["entities"]["macro"]["support"], 4);
    }

    #[test]
    fn relation_scores_strict_and_boundaries() {
        let (a, b, c) = (e(PEOP, 0, 1), e(ORG, 2, 4), e(LOC, 5, 6));
        let (d, f) = (e(PEOP, 0, 1), e(ORG, 3, 4));
        let g = [
            // Work(a, b); Near(c, a), which the reader would have turned into Near(a, c).
            gold(&[a, b, c], &[(WORK, 0, 1), (NEAR, 2, 0)]),
            gold(&[d, f], &[(WORK, 0, 1)]),
        ];
        let p = [
            // Both right; Near given the other way round.
            pred(&[a, b, c], &[(a, b, WORK), (c, a, NEAR)]),
            // Work with the tail typed Loc: right in boundaries only; Near(d, f) spurious.
            pred(&[d, e(LOC, 3, 4)], &[(d, e(LOC, 3, 4), WORK), (d, f, NEAR)]),
        ];
        let r = evaluate(&types(), &g, &p, false).unwrap();
        // Strict: Work 1 of 2 predicted, 1 of 2 gold; Near 1 of 2 predicted, 1 of 1 gold.
        let s = &r.relations_strict;
        assert_prf(&s.per_type["Work_For"], [0.5, 0.5, 0.5]);
        assert_prf(&s.per_type["Near"], [0.5, 1.0, 2.0 / 3.0]);
        assert_prf(&s.micro, [0.5, 2.0 / 3.0, 4.0 / 7.0]);
        assert_prf(&s.macro_avg, [0.5, 0.75, (0.5 + 2.0 / 3.0) / 2.0]);
        // Boundaries: Work 2 of 2, 2 of 2; Near as before.
        let s = &r.relations_boundaries;
        assert_prf(&s.per_type["Work_For"], [1.0, 1.0, 1.0]);
        assert_prf(&s.micro, [0.75, 1.0, 6.0 / 7.0]);
        assert_prf(&s.macro_avg, [0.75, 1.0, (1.0 + 2.0 / 3.0) / 2.0]);
    }

    #[test]
    fn an_asymmetric_relation_turned_around_is_wrong() {
        let (a, b) = (e(PEOP, 0, 1), e(ORG, 2, 3));
        let g = [gold(&[a, b], &[(WORK, 0, 1)])];
        let p = [pred(&[a, b], &[(b, a, WORK)])];
        let r = evaluate(&types(), &g, &p, false).unwrap();
        assert_eq!(r.relations_strict.micro.correct, 0);
        assert_prf(&r.entities.micro, [1.0, 1.0, 1.0]);
    }

    #[test]
    fn only_predicted_types_count_in_macro_and_empty_input_scores_zero() {
        let g = [gold(&[e(LOC, 0, 1)], &[])];
        let p = [pred(&[e(LOC, 0, 1), e(ORG, 3, 4)], &[])];
        let r = evaluate(&types(), &g, &p, false).unwrap();
        assert_prf(&r.entities.macro_avg, [0.5, 0.5, 0.5]);
        assert_prf(&r.entities.micro, [0.5, 1.0, 2.0 / 3.0]);
        assert_eq!(r.relations_strict, TaskScores::default());
        let r = evaluate(&types(), &[], &[], false).unwrap();
        assert_eq!(r, ExtractionReport::default());
    }

    #[test]
    fn no_overlapping_filters_gold_too() {
        let g = [gold(&[e(LOC, 0, 2), e(ORG, 1, 3), e(PEOP, 5, 6)], &[])];
        let p = [pred(&[e(PEOP, 5, 6)], &[])];
        assert_eq!(
            evaluate(&types(), &g, &p, false)
                .unwrap()
                .entities
                .micro
                .support,
            3
        );
        let r = evaluate(&types(), &g, &p, true).unwrap();
        assert_prf(&r.entities.micro, [1.0, 1.0, 1.0]);
    }

    #[test]
    fn mismatches_are_errors() {
        let t = types();
        assert!(evaluate(&t, &[gold(&[], &[])], &[], false)
            .unwrap_err()
            .contains("0 predictions"));
        let bad = [pred(&[e(9, 0, 1)], &[])];
        assert!(evaluate(&t, &[gold(&[], &[])], &bad, false)
            .unwrap_err()
            .contains("prediction 0"));
        let bad_gold = [gold(&[e(LOC, 0, 1)], &[(WORK, 0, 3)])];
        assert!(evaluate(&t, &bad_gold, &[Decoded::default()], false).is_err());
    }
}
