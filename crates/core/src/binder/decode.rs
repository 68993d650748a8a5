//! BINDER's candidate spans and its decoding of scored spans, over word indices.
//!
//! Candidates ([`candidate_spans`]): every word span `[s, e)` of a sentence, in order of `(start,
//! end)`, whose sub-word width (from the first sub-word of word `s` to the last of word `e - 1`)
//! is at most a cap. This is the reference's rule: its start and end masks allow only a word's
//! first sub-word as a span start and its last as a span end, and it drops spans of more than
//! `max_span_length` sub-words (30 by default). As sub-word ranges are in order, the width grows
//! with `e`, so enumeration stops at the first span past the cap.
//!
//! Decoding ([`decode`]) gets the spans the model kept (those whose score for a type beats that
//! type's `[CLS]` threshold) and applies the overlap rule:
//! - [`Overlaps::Nested`]: every span is kept.
//! - [`Overlaps::Flat`]: greedy by score, highest first, across types. A span is kept when it
//!   overlaps no span kept so far; spans that only touch (one ends where the other starts) do not
//!   overlap, and a span equals itself, so the same span predicted with a second type is dropped
//!   (the higher score's type stays). Ties in score go to the earlier start, then the earlier
//!   end, then the lower type index, which makes the result independent of the input's order.
//!
//! A NaN score ranks below every number (so it is kept, in flat mode, only where nothing else
//! overlaps it); nothing here panics on one.

use std::cmp::Ordering;
use std::ops::Range;

use crate::relations::WordSpan;

/// Every word span `[s, e)` (`e > s`) of a sentence whose words cover `word_subwords[w]` (sub-word
/// ranges, in order, non-empty), in order of `(start, end)`, whose sub-word width
/// `word_subwords[e-1].end - word_subwords[s].start` is at most `max_subwords` (`None`: no cap).
///
/// A sentence of `n` words has `n(n + 1)/2` spans without a cap.
pub fn candidate_spans(
    word_subwords: &[Range<usize>],
    max_subwords: Option<usize>,
) -> Vec<WordSpan> {
    let n = word_subwords.len();
    let mut spans = Vec::new();
    for s in 0..n {
        let first = word_subwords[s].start;
        for e in s + 1..=n {
            let width = word_subwords[e - 1].end.saturating_sub(first);
            if max_subwords.is_some_and(|cap| width > cap) {
                break;
            }
            spans.push(WordSpan::new(s, e));
        }
    }
    spans
}

/// A span the model predicted as an entity of type `type_index` (the types file's order), with
/// its score (the span's similarity to the type, or anything that orders predictions the same).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredSpan {
    pub span: WordSpan,
    pub type_index: usize,
    pub score: f32,
}

/// Whether predicted entities may overlap (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlaps {
    /// No two entities share a word: overlaps are removed greedily by score, across types.
    Flat,
    /// Every predicted span is kept (nested datasets: GENIA, ACE).
    Nested,
}

/// The entities among `spans` under the overlap rule (see the module doc), sorted by `(start,
/// end, type_index)`.
pub fn decode(spans: Vec<ScoredSpan>, overlaps: Overlaps) -> Vec<ScoredSpan> {
    let mut kept = match overlaps {
        Overlaps::Nested => spans,
        Overlaps::Flat => {
            let mut by_score = spans;
            by_score.sort_by(|a, b| {
                higher_first(a.score, b.score)
                    .then(a.span.start.cmp(&b.span.start))
                    .then(a.span.end.cmp(&b.span.end))
                    .then(a.type_index.cmp(&b.type_index))
            });
            let mut kept: Vec<ScoredSpan> = Vec::new();
            for candidate in by_score {
                if !kept.iter().any(|k| k.span.overlaps(&candidate.span)) {
                    kept.push(candidate);
                }
            }
            kept
        }
    };
    kept.sort_by_key(|s| (s.span.start, s.span.end, s.type_index));
    kept
}

/// Descending order of score, every NaN after every number (and NaNs equal to each other).
fn higher_first(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => b.total_cmp(&a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(start: usize, end: usize) -> WordSpan {
        WordSpan::new(start, end)
    }

    fn sc(start: usize, end: usize, type_index: usize, score: f32) -> ScoredSpan {
        ScoredSpan {
            span: ws(start, end),
            type_index,
            score,
        }
    }

    /// (start, end, type) of each span, in order.
    fn keys(spans: &[ScoredSpan]) -> Vec<(usize, usize, usize)> {
        spans
            .iter()
            .map(|s| (s.span.start, s.span.end, s.type_index))
            .collect()
    }

    #[test]
    fn candidates_without_a_cap_are_every_span_in_order() {
        let words = [0..1, 1..2, 2..3];
        let spans = candidate_spans(&words, None);
        assert_eq!(
            spans,
            [ws(0, 1), ws(0, 2), ws(0, 3), ws(1, 2), ws(1, 3), ws(2, 3)]
        );
        let ten: Vec<Range<usize>> = (0..10).map(|i| i + 1..i + 2).collect();
        assert_eq!(candidate_spans(&ten, None).len(), 55);
        assert!(candidate_spans(&[], None).is_empty());
        assert!(candidate_spans(&[], Some(3)).is_empty());
    }

    #[test]
    fn the_cap_counts_sub_words_not_words() {
        // "[CLS] Smith ##ville Co ." : word 0 is two sub-words (1..3), the others one each.
        let words = [1..3, 3..4, 4..5];
        assert_eq!(
            candidate_spans(&words, Some(2)),
            [ws(0, 1), ws(1, 2), ws(1, 3), ws(2, 3)]
        );
        assert_eq!(
            candidate_spans(&words, Some(3)),
            [ws(0, 1), ws(0, 2), ws(1, 2), ws(1, 3), ws(2, 3)]
        );
        assert_eq!(
            candidate_spans(&words, Some(4)),
            candidate_spans(&words, None)
        );
        // A word wider than the cap is no candidate, but the words after it still are.
        let words = [0..1, 1..5, 5..6];
        assert_eq!(candidate_spans(&words, Some(2)), [ws(0, 1), ws(2, 3)]);
        assert!(candidate_spans(&words, Some(0)).is_empty());
    }

    #[test]
    fn flat_keeps_the_best_of_nested_and_crossing_spans() {
        // Nested: the outer span scores higher and wins; the inner one is dropped.
        let nested = vec![sc(1, 2, 0, 0.5), sc(0, 3, 1, 0.9)];
        assert_eq!(keys(&decode(nested.clone(), Overlaps::Flat)), [(0, 3, 1)]);
        // The other way round the inner wins, and the outer is dropped.
        let inner_best = vec![sc(1, 2, 0, 0.9), sc(0, 3, 1, 0.5)];
        assert_eq!(keys(&decode(inner_best, Overlaps::Flat)), [(1, 2, 0)]);
        // Crossing: [0, 2) and [1, 3) share word 1.
        let crossing = vec![sc(0, 2, 0, 0.4), sc(1, 3, 0, 0.6), sc(3, 4, 1, 0.1)];
        assert_eq!(
            keys(&decode(crossing, Overlaps::Flat)),
            [(1, 3, 0), (3, 4, 1)]
        );
        // Greedy, not best total: the middle span wins and drops both neighbours.
        let chain = vec![sc(0, 2, 0, 0.5), sc(1, 3, 0, 0.6), sc(2, 4, 0, 0.5)];
        assert_eq!(keys(&decode(chain, Overlaps::Flat)), [(1, 3, 0)]);
    }

    #[test]
    fn flat_keeps_touching_spans() {
        let touching = vec![sc(2, 4, 1, 0.3), sc(0, 2, 0, 0.8), sc(4, 5, 0, 0.1)];
        let out = decode(touching, Overlaps::Flat);
        assert_eq!(keys(&out), [(0, 2, 0), (2, 4, 1), (4, 5, 0)]);
        assert_eq!(out[1].score, 0.3);
    }

    #[test]
    fn flat_keeps_one_type_per_span() {
        let two_types = vec![sc(0, 2, 0, 0.2), sc(0, 2, 1, 0.7), sc(0, 2, 2, 0.4)];
        let out = decode(two_types, Overlaps::Flat);
        assert_eq!(out, [sc(0, 2, 1, 0.7)]);
    }

    #[test]
    fn flat_ties_go_to_the_earlier_start_then_end_then_type() {
        let crossing = vec![sc(1, 3, 0, 0.5), sc(0, 2, 0, 0.5)];
        assert_eq!(keys(&decode(crossing, Overlaps::Flat)), [(0, 2, 0)]);
        let nested = vec![sc(0, 3, 0, 0.5), sc(0, 2, 0, 0.5)];
        assert_eq!(keys(&decode(nested, Overlaps::Flat)), [(0, 2, 0)]);
        let same_span = vec![sc(0, 2, 3, 0.5), sc(0, 2, 1, 0.5)];
        assert_eq!(keys(&decode(same_span, Overlaps::Flat)), [(0, 2, 1)]);
        // The input's order does not matter.
        let spans = vec![
            sc(0, 2, 0, 0.5),
            sc(1, 3, 1, 0.5),
            sc(2, 4, 0, 0.9),
            sc(0, 1, 2, 0.5),
        ];
        let mut reversed = spans.clone();
        reversed.reverse();
        let out = decode(spans, Overlaps::Flat);
        assert_eq!(keys(&out), [(0, 1, 2), (2, 4, 0)]);
        assert_eq!(decode(reversed, Overlaps::Flat), out);
    }

    /// The reference's `remove_overlaps` (microsoft/binder `src/utils.py`) as written there: kept
    /// predictions sorted by start, each new one inserted only if it ends before its successor
    /// starts and starts after its predecessor ends; with the type index as the last sort key.
    fn reference_remove_overlaps(mut preds: Vec<ScoredSpan>) -> Vec<ScoredSpan> {
        preds.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.span.start.cmp(&b.span.start))
                .then(a.span.end.cmp(&b.span.end))
                .then(a.type_index.cmp(&b.type_index))
        });
        let mut kept: Vec<ScoredSpan> = Vec::new();
        for p in preds {
            let i = kept.partition_point(|k| k.span.start < p.span.start);
            let fits_next = kept.get(i).is_none_or(|n| p.span.end <= n.span.start);
            let fits_prev = i == 0 || p.span.start >= kept[i - 1].span.end;
            if fits_next && fits_prev {
                kept.insert(i, p);
            }
        }
        kept
    }

    #[test]
    fn flat_is_the_references_remove_overlaps() {
        let mut rng = crate::SplitMix64::new(7);
        for _ in 0..500 {
            let words = 1 + (rng.next_u64() % 8) as usize;
            let spans = candidate_spans(&(0..words).map(|w| w..w + 1).collect::<Vec<_>>(), None);
            let mut predicted = Vec::new();
            for span in spans {
                for type_index in 0..3 {
                    if rng.next_u64().is_multiple_of(4) {
                        // Few distinct scores, so that ties are common.
                        let score = (rng.next_u64() % 5) as f32 / 4.0;
                        predicted.push(ScoredSpan {
                            span,
                            type_index,
                            score,
                        });
                    }
                }
            }
            let ours = decode(predicted.clone(), Overlaps::Flat);
            let mut reference = reference_remove_overlaps(predicted);
            reference.sort_by_key(|s| (s.span.start, s.span.end, s.type_index));
            assert_eq!(ours, reference);
        }
    }

    #[test]
    fn nested_keeps_everything_in_order() {
        let spans = vec![
            sc(1, 3, 0, 0.5),
            sc(0, 3, 1, 0.9),
            sc(0, 3, 0, 0.2),
            sc(1, 2, 1, f32::NAN),
            sc(1, 3, 0, 0.1),
        ];
        let out = decode(spans, Overlaps::Nested);
        assert_eq!(
            keys(&out),
            [(0, 3, 0), (0, 3, 1), (1, 2, 1), (1, 3, 0), (1, 3, 0)]
        );
        assert_eq!((out[3].score, out[4].score), (0.5, 0.1), "a stable sort");
        assert!(decode(Vec::new(), Overlaps::Nested).is_empty());
        assert!(decode(Vec::new(), Overlaps::Flat).is_empty());
    }

    #[test]
    fn nan_scores_rank_lowest() {
        let spans = vec![
            sc(0, 2, 0, f32::NAN),
            sc(1, 3, 1, f32::NEG_INFINITY),
            sc(4, 5, 0, -f32::NAN),
            sc(3, 5, 1, f32::NAN),
        ];
        let out = decode(spans, Overlaps::Flat);
        // -inf beats NaN at [0, 2); of the two NaNs sharing word 4, the earlier start wins.
        assert_eq!(keys(&out), [(1, 3, 1), (3, 5, 1)]);
        assert!(out[1].score.is_nan());
        assert_eq!(higher_first(1.0, f32::NAN), Ordering::Less);
        assert_eq!(higher_first(-f32::NAN, f32::NAN), Ordering::Equal);
        assert_eq!(higher_first(f32::INFINITY, 2.0), Ordering::Less);
    }

    #[test]
    fn overlaps_reads_and_writes_in_lowercase() {
        assert_eq!(serde_json::to_string(&Overlaps::Flat).unwrap(), "\"flat\"");
        let nested: Overlaps = serde_json::from_str("\"nested\"").unwrap();
        assert_eq!(nested, Overlaps::Nested);
        assert!(serde_json::from_str::<Overlaps>("\"Flat\"").is_err());
    }
}
