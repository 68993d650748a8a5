//! From per-word model output to user-facing entities.
//!
//! Design choices: entities are the strict IOB2 spans of the predicted tags (the same spans the
//! metrics score), reported with **character** offsets into the original string so that `text` is
//! the exact original substring, inner whitespace included. The score is the mean of the per-word
//! probabilities over the span: simple, in `[0, 1]`, and a single weak word lowers it visibly.
//! Mismatched input lengths are not an error: only positions present in `words`, `tags` and
//! `word_scores` alike are used, so a truncated model output degrades instead of panicking.

use crate::tags::spans_from_iob2;
use crate::words::{char_slice, Word};

/// A tagged text as every consumer sees it (`trainer tag`'s JSON lines, the browser's results and
/// its JSONL download): the text, its entities, and whether the model read all of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaggedTitle {
    pub title: String,
    pub entities: Vec<Entity>,
    /// True when the title had more sub-words than the model reads; words past the cut are tagged O.
    pub truncated: bool,
}

/// One entity found in a text.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entity {
    /// Entity type, e.g. `BRAND`.
    pub label: String,
    /// The original characters `start..end`.
    pub text: String,
    /// Character offset of the first char.
    pub start: usize,
    /// Character offset one past the last char.
    pub end: usize,
    /// Mean word probability over the span.
    pub score: f32,
}

/// Entities of `text` given its words, one predicted tag per word and that tag's probability.
pub fn decode_entities(
    text: &str,
    words: &[Word],
    tags: &[String],
    word_scores: &[f32],
) -> Vec<Entity> {
    let n = words.len().min(tags.len()).min(word_scores.len());
    spans_from_iob2(&tags[..n])
        .into_iter()
        .map(|span| {
            let (first, last) = (&words[span.start], &words[span.end - 1]);
            let scores = &word_scores[span.start..span.end];
            let score = scores.iter().sum::<f32>() / scores.len() as f32;
            Entity {
                label: span.label,
                text: char_slice(text, first.start, last.end).to_string(),
                start: first.start,
                end: last.end.max(first.start),
                score,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::split_words;

    fn v(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn entities_keep_original_text_and_char_offsets() {
        let text = "Pépé  Jeans Men Navy   Blue T-shirt";
        let words = split_words(text);
        let tags = v(&[
            "B-BRAND", "I-BRAND", "B-GENDER", "B-COLOR", "I-COLOR", "B-TYPE",
        ]);
        let scores = [0.9, 0.7, 1.0, 0.5, 1.0, 0.8];
        let ents = decode_entities(text, &words, &tags, &scores);
        assert_eq!(ents.len(), 4);
        assert_eq!(ents[0].text, "Pépé  Jeans");
        assert_eq!((ents[0].start, ents[0].end), (0, 11));
        assert!((ents[0].score - 0.8).abs() < 1e-6);
        assert_eq!(ents[2].text, "Navy   Blue");
        assert_eq!(
            (ents[2].label.as_str(), ents[2].start, ents[2].end),
            ("COLOR", 16, 27)
        );
        assert_eq!(ents[3].text, "T-shirt");
    }

    #[test]
    fn strict_and_mismatched_lengths() {
        let text = "😀 Red Bag";
        let words = split_words(text);
        // dangling I- is not an entity; missing last score drops the last word
        let ents = decode_entities(text, &words, &v(&["O", "I-COLOR", "B-TYPE"]), &[1.0, 1.0]);
        assert!(ents.is_empty());
        let ents = decode_entities(
            text,
            &words,
            &v(&["O", "B-COLOR", "B-TYPE", "B-X"]),
            &[1.0; 9],
        );
        assert_eq!(ents.len(), 2);
        assert_eq!(
            (ents[0].start, ents[0].end, ents[0].text.as_str()),
            (2, 5, "Red")
        );
        assert!(decode_entities("", &[], &[], &[]).is_empty());
    }
}
