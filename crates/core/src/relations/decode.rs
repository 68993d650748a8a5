//! From the model's scores to entities and relations, as SpERT's `prediction.py` does it.
//!
//! Inference runs in two steps, and this module supplies the glue around each:
//! 1. The model scores every candidate span ([`enumerate_spans`](super::sampling::enumerate_spans))
//!    with softmax probabilities over `1 + entity types` classes, class 0 being "no entity".
//!    [`span_classes`] takes each span's most probable class (the first on ties, as `argmax` does).
//!    With SpERT.MT's boundary scores (its IoU head: each span's predicted IoU with the gold entity
//!    it overlaps), [`entity_classes`] then resolves overlapping spans of the same predicted type
//!    to the one whose boundaries score best (see there).
//! 2. [`relation_candidates`] lists the ordered pairs of spans classified as entities (every pair
//!    of two different spans, head-major in span order); the model scores each with one sigmoid
//!    per relation type (no "none" class). [`decode`] keeps every (pair, type) whose score is at
//!    least the threshold (SpERT's `rel_filter_threshold`, default 0.4; a score of exactly 0 is
//!    never kept, as SpERT's `nonzero` test implies).
//!
//! What [`decode`] returns: the entities in span order, each with its class probability; the
//! relations in pair order then type order, each with its score, the arguments carrying their
//! predicted types. A symmetric relation's arguments are put in the reader's order (the earlier
//! start first), and a relation already produced in that form is dropped, keeping the first.
//!
//! Overlapping spans: SpERT keeps them. Every span classified as an entity is an entity, so nested
//! and overlapping predictions stand side by side (ADE's gold has nested entities). Only with
//! `no_overlapping` (SpERT's `--no_overlapping`, off by default) does [`remove_overlapping`] drop
//! every entity that shares a word with another entity, both of them, and every relation whose
//! head and tail share a word. Relations whose arguments were dropped as entities are kept: that
//! is what SpERT's `remove_overlapping` does, and the scores match SpERT's only if we do it too.

use std::collections::HashSet;

use super::document::{EntityMention, RelationTriple, TypeSet, WordSpan};

/// SpERT's default `rel_filter_threshold`.
pub const REL_THRESHOLD: f32 = 0.4;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecodeConfig {
    /// A relation is kept when its score is at least this.
    pub rel_threshold: f32,
    /// Drop overlapping entities and relations between overlapping arguments (see the module doc).
    pub no_overlapping: bool,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            rel_threshold: REL_THRESHOLD,
            no_overlapping: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoredEntity {
    pub entity: EntityMention,
    /// The probability of its class.
    pub score: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoredRelation {
    pub relation: RelationTriple,
    /// The sigmoid score of its type.
    pub score: f32,
}

/// The predictions for one document.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Decoded {
    pub entities: Vec<ScoredEntity>,
    pub relations: Vec<ScoredRelation>,
}

/// Each span's class (0: no entity) from row-major scores of `classes` columns; the first maximum
/// wins. A trailing partial row is ignored.
pub fn span_classes(entity_scores: &[f32], classes: usize) -> Vec<usize> {
    if classes == 0 {
        return Vec::new();
    }
    entity_scores
        .chunks_exact(classes)
        .map(|row| (1..classes).fold(0, |best, c| if row[c] > row[best] { c } else { best }))
        .collect()
}

/// Each span's class as [`span_classes`]; with `boundary` (one score per span, higher for better
/// boundaries), spans classified as the same type that overlap are resolved greedily: in order of
/// boundary score (span order on ties), a span stays an entity unless it overlaps one already kept
/// of its type. Why same-type only: a near miss ("John" beside "John Smith") is classified as the
/// entity it misses, so a boundary error shows as two overlapping spans of one type; spans of
/// different types that overlap are nested entities (ADE's gold has them) and are all kept, as
/// SpERT keeps them.
pub fn entity_classes(
    spans: &[WordSpan],
    entity_scores: &[f32],
    classes: usize,
    boundary: Option<&[f32]>,
) -> Result<Vec<usize>, String> {
    let mut class = span_classes(entity_scores, classes);
    if class.len() != spans.len() {
        return Err(format!(
            "{} entity scores for {} spans of {classes} classes",
            entity_scores.len(),
            spans.len()
        ));
    }
    let Some(boundary) = boundary else {
        return Ok(class);
    };
    if boundary.len() != spans.len() {
        return Err(format!(
            "{} boundary scores for {} spans",
            boundary.len(),
            spans.len()
        ));
    }
    let mut order: Vec<usize> = (0..spans.len()).filter(|&i| class[i] != 0).collect();
    order.sort_by(|&a, &b| boundary[b].total_cmp(&boundary[a]));
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for i in order {
        if kept
            .iter()
            .any(|&k| class[k] == class[i] && spans[k].overlaps(&spans[i]))
        {
            class[i] = 0;
        } else {
            kept.push(i);
        }
    }
    Ok(class)
}

/// The ordered pairs `(head, tail)` of different spans classified as entities, head-major.
pub fn relation_candidates(span_classes: &[usize]) -> Vec<(usize, usize)> {
    let entities: Vec<usize> = (0..span_classes.len())
        .filter(|&i| span_classes[i] != 0)
        .collect();
    entities
        .iter()
        .flat_map(|&h| entities.iter().map(move |&t| (h, t)))
        .filter(|(h, t)| h != t)
        .collect()
}

/// Entities and relations from the scores (see the module doc). `entity_scores` has one row of
/// `1 + types.entities.len()` probabilities per span, `boundary` (when the model has an IoU head)
/// one score per span ([`entity_classes`]); `rel_scores` one row of `types.relations.len()`
/// scores per pair, and `pairs` must pair spans classified as entities. Errors name the first
/// shape mismatch or bad pair.
pub fn decode(
    spans: &[WordSpan],
    entity_scores: &[f32],
    boundary: Option<&[f32]>,
    pairs: &[(usize, usize)],
    rel_scores: &[f32],
    types: &TypeSet,
    config: &DecodeConfig,
) -> Result<Decoded, String> {
    let classes = 1 + types.entities.len();
    let rel_types = types.relations.len();
    if entity_scores.len() != spans.len() * classes {
        return Err(format!(
            "{} entity scores for {} spans of {classes} classes",
            entity_scores.len(),
            spans.len()
        ));
    }
    let class = entity_classes(spans, entity_scores, classes, boundary)?;
    if rel_scores.len() != pairs.len() * rel_types {
        return Err(format!(
            "{} relation scores for {} pairs of {rel_types} types",
            rel_scores.len(),
            pairs.len()
        ));
    }
    let mention = |i: usize| EntityMention {
        ty: class[i] - 1,
        start: spans[i].start,
        end: spans[i].end,
    };
    let mut out = Decoded::default();
    for (i, &c) in class.iter().enumerate() {
        if c != 0 {
            out.entities.push(ScoredEntity {
                entity: mention(i),
                score: entity_scores[i * classes + c],
            });
        }
    }
    let mut seen = HashSet::new();
    for (p, &(h, t)) in pairs.iter().enumerate() {
        let entity = |i: usize| i < spans.len() && class[i] != 0;
        if !entity(h) || !entity(t) || h == t {
            return Err(format!(
                "pair {p} ({h}, {t}) is not two different spans classified as entities"
            ));
        }
        for (ty, &score) in rel_scores[p * rel_types..(p + 1) * rel_types]
            .iter()
            .enumerate()
        {
            if !(score >= config.rel_threshold && score != 0.0) {
                continue;
            }
            let relation = RelationTriple {
                head: mention(h),
                tail: mention(t),
                ty,
            }
            .canonical(types.relations[ty].symmetric);
            if seen.insert(relation) {
                out.relations.push(ScoredRelation { relation, score });
            }
        }
    }
    if config.no_overlapping {
        retain_non_overlapping(
            &mut out.entities,
            &mut out.relations,
            |e| &e.entity,
            |r| &r.relation,
        );
    }
    Ok(out)
}

/// SpERT's `remove_overlapping` (see the module doc); evaluation applies it to gold entities too.
pub fn remove_overlapping(entities: &mut Vec<EntityMention>, relations: &mut Vec<RelationTriple>) {
    retain_non_overlapping(entities, relations, |e| e, |r| r);
}

/// Two mentions overlap when they share a word and are not equal (SpERT compares the tuples, so
/// an entity listed twice does not overlap itself).
fn overlap(a: &EntityMention, b: &EntityMention) -> bool {
    a != b && a.span().overlaps(&b.span())
}

fn retain_non_overlapping<E, R>(
    entities: &mut Vec<E>,
    relations: &mut Vec<R>,
    entity: impl Fn(&E) -> &EntityMention,
    relation: impl Fn(&R) -> &RelationTriple,
) {
    let all: Vec<EntityMention> = entities.iter().map(&entity).copied().collect();
    entities.retain(|e| !all.iter().any(|o| overlap(entity(e), o)));
    relations.retain(|r| !overlap(&relation(r).head, &relation(r).tail));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relations::document::tests::types as conll_types;
    use crate::relations::sampling::enumerate_spans;

    /// Types Loc, Org, Peop, Other; relations Work_For, Near (symmetric).
    fn types() -> TypeSet {
        conll_types()
    }

    const LOC: usize = 0;
    const ORG: usize = 1;
    const PEOP: usize = 2;

    fn e(ty: usize, start: usize, end: usize) -> EntityMention {
        EntityMention { ty, start, end }
    }

    fn row(class: usize, p: f32) -> [f32; 5] {
        let mut r = [(1.0 - p) / 4.0; 5];
        r[class] = p;
        r
    }

    /// Spans of 4 words up to 2 words: (0,1) (1,2) (2,3) (3,4) (0,2) (1,3) (2,4).
    fn scores() -> (Vec<WordSpan>, Vec<f32>) {
        let spans = enumerate_spans(4, 2);
        let rows = [
            row(1 + PEOP, 0.8),
            row(0, 0.9),
            row(1 + ORG, 0.6),
            [0.3, 0.3, 0.2, 0.1, 0.1], // a tie between "none" and Loc: none
            row(0, 0.7),
            row(0, 0.5),
            row(1 + ORG, 0.7),
        ];
        (spans, rows.concat())
    }

    #[test]
    fn classes_and_candidates() {
        let (_, s) = scores();
        let classes = span_classes(&s, 5);
        assert_eq!(classes, [3, 0, 2, 0, 0, 0, 2]);
        assert_eq!(
            relation_candidates(&classes),
            [(0, 2), (0, 6), (2, 0), (2, 6), (6, 0), (6, 2)]
        );
        assert!(relation_candidates(&[0, 1, 0]).is_empty());
    }

    /// Rows of (Work_For, Near) for the six candidate pairs.
    const REL: [f32; 12] = [
        0.1, 0.0, // (0,1) Peop -> (2,3) Org
        0.9, 0.45, // (0,1) Peop -> (2,4) Org
        0.4, 0.0, // (2,3) Org -> (0,1) Peop: exactly at the threshold
        0.8, 0.2, // (2,3) Org -> (2,4) Org: overlapping arguments
        0.1, 0.5, // (2,4) Org -> (0,1) Peop: Near again, turned around
        0.39, 0.0, // (2,4) Org -> (2,3) Org: below the threshold
    ];

    #[test]
    fn decoding_follows_spert() {
        let (spans, s) = scores();
        let pairs = relation_candidates(&span_classes(&s, 5));
        let d = decode(
            &spans,
            &s,
            None,
            &pairs,
            &REL,
            &types(),
            &DecodeConfig::default(),
        )
        .unwrap();
        let ents: Vec<(EntityMention, f32)> =
            d.entities.iter().map(|x| (x.entity, x.score)).collect();
        assert_eq!(
            ents,
            [
                (e(PEOP, 0, 1), 0.8),
                (e(ORG, 2, 3), 0.6),
                (e(ORG, 2, 4), 0.7)
            ]
        );
        let rel = |h, t, ty, score| ScoredRelation {
            relation: RelationTriple {
                head: h,
                tail: t,
                ty,
            },
            score,
        };
        let (p, o23, o24) = (e(PEOP, 0, 1), e(ORG, 2, 3), e(ORG, 2, 4));
        // Near (2,4)->(0,1) becomes (0,1)->(2,4), already produced with 0.45: dropped.
        assert_eq!(
            d.relations,
            [
                rel(p, o24, 0, 0.9),
                rel(p, o24, 1, 0.45),
                rel(o23, p, 0, 0.4),
                rel(o23, o24, 0, 0.8)
            ]
        );

        let config = DecodeConfig {
            no_overlapping: true,
            ..DecodeConfig::default()
        };
        let d2 = decode(&spans, &s, None, &pairs, &REL, &types(), &config).unwrap();
        // (2,3) and (2,4) overlap: both go; so does the relation between them, but not the
        // relations that use them (SpERT's behaviour).
        assert_eq!(d2.entities, d.entities[..1]);
        assert_eq!(d2.relations, d.relations[..3]);
    }

    /// Boundary scores resolve the two overlapping Org spans (2,3) and (2,4) to the better scored
    /// one, and nothing else: the Peop span overlaps neither, and spans of other types that
    /// overlap (here (0,2) made Loc) are kept.
    #[test]
    fn boundary_scores_resolve_same_type_overlaps() {
        let (spans, mut s) = scores();
        s[4 * 5..5 * 5].copy_from_slice(&row(1 + LOC, 0.9)); // (0,2) Loc, over the Peop (0,1)
        let plain = entity_classes(&spans, &s, 5, None).unwrap();
        assert_eq!(plain, [3, 0, 2, 0, 1, 0, 2]);
        let prefer_long = [0.9, 0.0, 0.4, 0.0, 0.2, 0.0, 0.8];
        assert_eq!(
            entity_classes(&spans, &s, 5, Some(&prefer_long)).unwrap(),
            [3, 0, 0, 0, 1, 0, 2]
        );
        let prefer_short = [0.9, 0.0, 0.8, 0.0, 0.2, 0.0, 0.4];
        let classes = entity_classes(&spans, &s, 5, Some(&prefer_short)).unwrap();
        assert_eq!(classes, [3, 0, 2, 0, 1, 0, 0]);
        // Decoding agrees, and pairs only the kept spans.
        let pairs = relation_candidates(&classes);
        let rel = vec![0.0; pairs.len() * 2];
        let d = decode(
            &spans,
            &s,
            Some(&prefer_short),
            &pairs,
            &rel,
            &types(),
            &DecodeConfig::default(),
        )
        .unwrap();
        let ents: Vec<EntityMention> = d.entities.iter().map(|x| x.entity).collect();
        assert_eq!(ents, [e(PEOP, 0, 1), e(ORG, 2, 3), e(LOC, 0, 2)]);
        assert!(entity_classes(&spans, &s, 5, Some(&[0.5])).is_err());
    }

    #[test]
    fn remove_overlapping_on_plain_mentions() {
        let mut ents = vec![
            e(LOC, 0, 2),
            e(LOC, 0, 2),
            e(ORG, 1, 3),
            e(PEOP, 4, 5),
            e(ORG, 5, 6),
        ];
        let mut rels = vec![
            RelationTriple {
                head: e(LOC, 0, 2),
                tail: e(ORG, 1, 3),
                ty: 0,
            },
            RelationTriple {
                head: e(PEOP, 4, 5),
                tail: e(ORG, 5, 6),
                ty: 0,
            },
        ];
        remove_overlapping(&mut ents, &mut rels);
        assert_eq!(ents, [e(PEOP, 4, 5), e(ORG, 5, 6)]);
        assert_eq!(rels.len(), 1);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let (spans, s) = scores();
        let t = types();
        let c = DecodeConfig::default();
        assert!(decode(&spans, &s[1..], None, &[], &[], &t, &c)
            .unwrap_err()
            .contains("entity scores"));
        assert!(decode(&spans, &s, None, &[(0, 6)], &[0.5], &t, &c)
            .unwrap_err()
            .contains("relation scores"));
        let e = decode(&spans, &s, None, &[(0, 1)], &[0.5, 0.5], &t, &c).unwrap_err();
        assert!(e.contains("pair 0 (0, 1)"), "{e}");
        assert!(decode(&spans, &s, None, &[(0, 0)], &[0.5, 0.5], &t, &c).is_err());
        assert!(decode(&spans, &s, None, &[(0, 99)], &[0.5, 0.5], &t, &c).is_err());
    }
}
