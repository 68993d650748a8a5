//! Candidate spans, training samples (SpERT's negative sampling) and SpERT.MT's IoU targets, over
//! word indices.
//!
//! Spans are enumerated size by size (all one-word spans left to right, then all two-word spans,
//! and so on up to `max_span_words`), the order of SpERT's `create_eval_sample`; a document of `n`
//! words has `k(n + 1) - k(k + 1)/2` candidates with `k = min(n, max_span_words)`. Gold entities
//! longer than `max_span_words` can never be predicted, and so count against recall.
//!
//! A training sample ([`train_sample`], SpERT's `create_train_sample`) is:
//! - entities: every gold entity (positives, in document order, of any length), then up to
//!   `neg_entities` candidate spans that are no gold entity's span (whatever its type), drawn
//!   without replacement;
//! - relations: one positive per ordered pair of argument spans that has gold relations, labelled
//!   with all their types (SpERT's relation classifier is multi-label), in order of first
//!   occurrence; then up to `neg_relations` "strong" negatives, drawn without replacement from the
//!   ordered pairs of gold entities with different spans that have no gold relation in that
//!   direction. As in SpERT, the reverse of a gold pair is a negative, even for a symmetric type
//!   (the reader puts a symmetric relation's earlier argument first, and decoding does the same
//!   to predictions).
//!
//! Relation arguments index the sample's entities; for the positives at its front that is the
//! first gold entity with the argument's span (SpERT's `pos_entity_spans.index`), which is the
//! document's own index unless two gold entities share a span. Grouping positives by span pair
//! rather than by entity gives one sample, not two contradictory ones, when they do.
//!
//! Draws come from the caller's [`SplitMix64`] (a partial Fisher-Yates shuffle, so the drawn items
//! come out in random order, like Python's `random.sample`): one seed gives one sample. SpERT draws
//! new negatives each time a document is visited; a caller does the same by seeding per epoch and
//! document.
//!
//! SpERT.MT's boundary targets: a span's IoU with an entity is the number of shared words over the
//! number of words in either ([`iou`]); its target ([`iou_target`]) is its best IoU with any gold
//! entity and that entity's type (the first such entity on ties), or 0 and no type when it shares
//! no word with any. Every entity sample carries its target; a gold span's is 1 and its own type.

use std::collections::HashSet;

use super::document::{Document, EntityMention, WordSpan};
use crate::split::SplitMix64;

/// SpERT's defaults (`--max_span_size`, `--neg_entity_count`, `--neg_relation_count`).
pub const MAX_SPAN_WORDS: usize = 10;
pub const NEG_ENTITIES: usize = 100;
pub const NEG_RELATIONS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SamplingConfig {
    /// Longest candidate span, in words.
    pub max_span_words: usize,
    /// Most negative entity spans per sample.
    pub neg_entities: usize,
    /// Most negative relation pairs per sample.
    pub neg_relations: usize,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            max_span_words: MAX_SPAN_WORDS,
            neg_entities: NEG_ENTITIES,
            neg_relations: NEG_RELATIONS,
        }
    }
}

/// The number of candidate spans of a document of `words` words.
pub fn span_count(words: usize, max_span_words: usize) -> usize {
    let k = words.min(max_span_words);
    k * (words + 1) - k * (k + 1) / 2
}

/// Every span of 1 to `max_span_words` words, size by size, each size left to right.
pub fn enumerate_spans(words: usize, max_span_words: usize) -> Vec<WordSpan> {
    (1..=words.min(max_span_words))
        .flat_map(|size| (0..=words - size).map(move |i| WordSpan::new(i, i + size)))
        .collect()
}

/// Shared words over words in either span; 0 for disjoint spans.
pub fn iou(a: WordSpan, b: WordSpan) -> f32 {
    let inter = a.end.min(b.end).saturating_sub(a.start.max(b.start));
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f32 / union as f32
    }
}

/// A span's best IoU with a gold entity, and that entity's type (`None` when it overlaps none).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IouTarget {
    pub iou: f32,
    pub ty: Option<usize>,
}

/// The IoU target of `span` against the gold entities (the first best on ties).
pub fn iou_target(span: WordSpan, gold: &[EntityMention]) -> IouTarget {
    let mut best = IouTarget { iou: 0.0, ty: None };
    for e in gold {
        let x = iou(span, e.span());
        if x > best.iou {
            best = IouTarget {
                iou: x,
                ty: Some(e.ty),
            };
        }
    }
    best
}

/// An entity candidate to train on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EntitySample {
    pub span: WordSpan,
    /// The gold type; `None` for a negative (the model's class 0).
    pub ty: Option<usize>,
    /// SpERT.MT's boundary target.
    pub target: IouTarget,
}

/// A relation candidate to train on: a pair of the sample's entities.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelationSample {
    /// Index into [`TrainSample::entities`].
    pub head: usize,
    pub tail: usize,
    /// The gold relation types of the pair, ascending; empty for a negative.
    pub types: Vec<usize>,
}

/// What one document gives one training step.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainSample {
    /// Positives (the gold entities) first, then negatives.
    pub entities: Vec<EntitySample>,
    /// Positives first, then negatives.
    pub relations: Vec<RelationSample>,
}

/// Up to `count` of `items`, drawn without replacement, in draw order.
fn draw<T>(mut items: Vec<T>, count: usize, rng: &mut SplitMix64) -> Vec<T> {
    let count = count.min(items.len());
    for i in 0..count {
        let j = i + rng.below((items.len() - i) as u64) as usize;
        items.swap(i, j);
    }
    items.truncate(count);
    items
}

/// Up to `count` candidate spans that are no gold entity's span.
pub fn negative_spans(
    doc: &Document,
    max_span_words: usize,
    count: usize,
    rng: &mut SplitMix64,
) -> Vec<WordSpan> {
    let gold: HashSet<WordSpan> = doc.entities.iter().map(EntityMention::span).collect();
    let candidates = enumerate_spans(doc.tokens.len(), max_span_words)
        .into_iter()
        .filter(|s| !gold.contains(s))
        .collect();
    draw(candidates, count, rng)
}

/// The index of the first gold entity with each entity's span.
fn first_with_span(doc: &Document) -> Vec<usize> {
    let spans: Vec<WordSpan> = doc.entities.iter().map(EntityMention::span).collect();
    spans
        .iter()
        .map(|s| spans.iter().position(|t| t == s).unwrap_or_default())
        .collect()
}

/// The positive relation samples: one per ordered pair of argument spans, with all its types.
pub fn positive_pairs(doc: &Document) -> Vec<RelationSample> {
    let first = first_with_span(doc);
    let mut out: Vec<RelationSample> = Vec::new();
    for r in &doc.relations {
        let (head, tail) = (first[r.head], first[r.tail]);
        match out.iter_mut().find(|s| (s.head, s.tail) == (head, tail)) {
            Some(s) => {
                if let Err(at) = s.types.binary_search(&r.ty) {
                    s.types.insert(at, r.ty);
                }
            }
            None => out.push(RelationSample {
                head,
                tail,
                types: vec![r.ty],
            }),
        }
    }
    out
}

/// Up to `count` ordered pairs `(head, tail)` of gold entities (first of their span) with
/// different spans and no gold relation from head to tail.
pub fn negative_pairs(doc: &Document, count: usize, rng: &mut SplitMix64) -> Vec<(usize, usize)> {
    let first = first_with_span(doc);
    let related: HashSet<(usize, usize)> = positive_pairs(doc)
        .iter()
        .map(|s| (s.head, s.tail))
        .collect();
    let distinct: Vec<usize> = (0..first.len()).filter(|&i| first[i] == i).collect();
    let candidates = distinct
        .iter()
        .flat_map(|&h| distinct.iter().map(move |&t| (h, t)))
        .filter(|&(h, t)| h != t && !related.contains(&(h, t)))
        .collect();
    draw(candidates, count, rng)
}

/// One training sample of `doc` (see the module doc); draws entities, then relations.
pub fn train_sample(doc: &Document, config: &SamplingConfig, rng: &mut SplitMix64) -> TrainSample {
    let sample = |span: WordSpan, ty: Option<usize>| EntitySample {
        span,
        ty,
        target: iou_target(span, &doc.entities),
    };
    let mut entities: Vec<EntitySample> = doc
        .entities
        .iter()
        .map(|e| sample(e.span(), Some(e.ty)))
        .collect();
    let negatives = negative_spans(doc, config.max_span_words, config.neg_entities, rng);
    entities.extend(negatives.into_iter().map(|s| sample(s, None)));
    let mut relations = positive_pairs(doc);
    let negatives = negative_pairs(doc, config.neg_relations, rng);
    relations.extend(negatives.into_iter().map(|(head, tail)| RelationSample {
        head,
        tail,
        types: Vec::new(),
    }));
    TrainSample {
        entities,
        relations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relations::document::RelationMention;

    fn doc(
        words: usize,
        entities: &[(usize, usize, usize)],
        relations: &[(usize, usize, usize)],
    ) -> Document {
        Document {
            index: 0,
            tokens: (0..words).map(|i| format!("w{i}")).collect(),
            entities: entities
                .iter()
                .map(|&(ty, start, end)| EntityMention { ty, start, end })
                .collect(),
            relations: relations
                .iter()
                .map(|&(ty, head, tail)| RelationMention { ty, head, tail })
                .collect(),
        }
    }

    #[test]
    fn spans_are_enumerated_size_by_size() {
        let spans: Vec<(usize, usize)> = enumerate_spans(3, 2)
            .iter()
            .map(|s| (s.start, s.end))
            .collect();
        assert_eq!(spans, [(0, 1), (1, 2), (2, 3), (0, 2), (1, 3)]);
        assert_eq!(span_count(5, 10), 15);
        assert_eq!(span_count(12, 10), 75); // 12 + 11 + ... + 3
        assert_eq!((span_count(0, 10), span_count(4, 0)), (0, 0));
        for words in 0..15 {
            for max in 0..12 {
                assert_eq!(enumerate_spans(words, max).len(), span_count(words, max));
            }
        }
    }

    #[test]
    fn iou_and_targets() {
        let s = WordSpan::new;
        assert_eq!(iou(s(0, 2), s(1, 3)), 1.0 / 3.0);
        assert_eq!(iou(s(0, 4), s(1, 2)), 0.25);
        assert_eq!((iou(s(0, 2), s(2, 4)), iou(s(1, 3), s(1, 3))), (0.0, 1.0));
        let gold = [
            EntityMention {
                ty: 2,
                start: 0,
                end: 2,
            },
            EntityMention {
                ty: 1,
                start: 3,
                end: 5,
            },
            EntityMention {
                ty: 0,
                start: 2,
                end: 4,
            },
        ];
        // (1, 3) against (0, 2): 1/3, against (2, 4): 1/3; the first wins.
        assert_eq!(
            iou_target(s(1, 3), &gold),
            IouTarget {
                iou: 1.0 / 3.0,
                ty: Some(2)
            }
        );
        assert_eq!(
            iou_target(s(3, 4), &gold),
            IouTarget {
                iou: 0.5,
                ty: Some(1)
            }
        );
        assert_eq!(iou_target(s(6, 7), &gold), IouTarget { iou: 0.0, ty: None });
    }

    #[test]
    fn negative_spans_are_bounded_deterministic_and_never_gold() {
        let d = doc(8, &[(0, 0, 2), (1, 3, 4), (2, 3, 4)], &[]);
        let all = span_count(8, 3) - 2;
        let draw_with = |seed, count| negative_spans(&d, 3, count, &mut SplitMix64::new(seed));
        let a = draw_with(7, 10);
        assert_eq!(a.len(), 10);
        assert_eq!(a, draw_with(7, 10));
        assert_ne!(a, draw_with(8, 10));
        let every = draw_with(7, 1000);
        assert_eq!(every.len(), all);
        let distinct: HashSet<WordSpan> = every.iter().copied().collect();
        assert_eq!(distinct.len(), all);
        assert!(every.iter().all(|s| s.len() <= 3 && s.end <= 8));
        assert!(!every.contains(&WordSpan::new(0, 2)) && !every.contains(&WordSpan::new(3, 4)));
    }

    #[test]
    fn relation_pairs() {
        // Entities 0 and 3 share a span; 0 -> 1 has two types.
        let d = doc(
            6,
            &[(0, 0, 1), (1, 2, 3), (2, 4, 6), (1, 0, 1)],
            &[(0, 0, 1), (1, 0, 1), (0, 1, 2), (1, 3, 1)],
        );
        let pos = positive_pairs(&d);
        let pos: Vec<(usize, usize, Vec<usize>)> =
            pos.into_iter().map(|s| (s.head, s.tail, s.types)).collect();
        assert_eq!(pos, [(0, 1, vec![0, 1]), (1, 2, vec![0])]);
        // Ordered pairs of the 3 distinct spans: 6, less the 2 related.
        let mut neg = negative_pairs(&d, 100, &mut SplitMix64::new(1));
        neg.sort();
        assert_eq!(neg, [(0, 2), (1, 0), (2, 0), (2, 1)]);
        let few = negative_pairs(&d, 3, &mut SplitMix64::new(1));
        assert_eq!(few.len(), 3);
        assert_eq!(few, negative_pairs(&d, 3, &mut SplitMix64::new(1)));
        assert!(
            negative_pairs(&doc(3, &[(0, 0, 1)], &[]), 100, &mut SplitMix64::new(1)).is_empty()
        );
    }

    #[test]
    fn a_train_sample_puts_positives_first() {
        let d = doc(5, &[(0, 0, 2), (1, 3, 4)], &[(0, 0, 1)]);
        let config = SamplingConfig {
            max_span_words: 2,
            neg_entities: 4,
            neg_relations: 5,
        };
        let s = train_sample(&d, &config, &mut SplitMix64::new(3));
        assert_eq!(s.entities.len(), 2 + 4);
        assert_eq!(
            s.entities[0],
            EntitySample {
                span: WordSpan::new(0, 2),
                ty: Some(0),
                target: IouTarget {
                    iou: 1.0,
                    ty: Some(0)
                },
            }
        );
        for e in &s.entities[2..] {
            assert_eq!(e.ty, None);
            assert_eq!(e.target, iou_target(e.span, &d.entities));
        }
        let r: Vec<(usize, usize, usize)> = s
            .relations
            .iter()
            .map(|r| (r.head, r.tail, r.types.len()))
            .collect();
        assert_eq!(r, [(0, 1, 1), (1, 0, 0)]);
        assert_eq!(s, train_sample(&d, &config, &mut SplitMix64::new(3)));
        assert_eq!(SamplingConfig::default().neg_entities, 100);
    }
}
