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
    /// How sure the model is: a token tagger's mean word probability over the span; BINDER's
    /// span score (a scaled cosine, kept when above its type's `[CLS]` score).
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

    /// Property: for random awkward strings with random IOB2 tags (well-formed or not) and random
    /// scores, some lists shorter or longer than the words, every entity slices its text out of the
    /// string, lies on word boundaries, is non-empty, and no two entities overlap.
    #[test]
    fn random_tags_on_awkward_text_slice_exactly() {
        const TAGS: &[&str] = &[
            "O", "B-BRAND", "I-BRAND", "B-COLOR", "I-COLOR", "I-TYPE", "B-",
        ];
        let mut rng = crate::split::SplitMix64::new(0x5eed_0002);
        let mut entities_seen = 0;
        for case in 0..20_000 {
            let text = crate::words::awkward::text(&mut rng, 14);
            let chars: Vec<char> = text.chars().collect();
            let words = split_words(&text);
            // Mostly one tag and score per word; sometimes a truncated or overlong model output.
            let jitter = |rng: &mut crate::split::SplitMix64| match rng.below(8) {
                0 => words.len().saturating_sub(1 + rng.below(3) as usize),
                1 => words.len() + 1 + rng.below(3) as usize,
                _ => words.len(),
            };
            let n_tags = jitter(&mut rng);
            let n_scores = jitter(&mut rng);
            let tags: Vec<String> = (0..n_tags)
                .map(|_| TAGS[rng.below(TAGS.len() as u64) as usize].to_string())
                .collect();
            let scores: Vec<f32> = (0..n_scores)
                .map(|_| rng.below(1001) as f32 / 1000.0)
                .collect();
            let ents = decode_entities(&text, &words, &tags, &scores);
            let mut last_end = 0;
            for e in &ents {
                assert!(
                    e.start >= last_end && e.start < e.end && e.end <= chars.len(),
                    "case {case}: bad span {e:?} in {text:?} (words {words:?}, tags {tags:?})"
                );
                let sliced: String = chars[e.start..e.end].iter().collect();
                assert_eq!(sliced, e.text, "case {case}: in {text:?}");
                assert!(
                    words.iter().any(|w| w.start == e.start)
                        && words.iter().any(|w| w.end == e.end),
                    "case {case}: {e:?} is not on word boundaries of {text:?}"
                );
                assert!(
                    !e.text.starts_with(char::is_whitespace)
                        && !e.text.ends_with(char::is_whitespace),
                    "case {case}: {e:?} has surrounding whitespace, in {text:?}"
                );
                assert!((0.0..=1.0).contains(&e.score), "case {case}: {e:?}");
                last_end = e.end;
            }
            entities_seen += ents.len();
        }
        assert!(entities_seen > 10_000, "only {entities_seen} entities");
    }
}
