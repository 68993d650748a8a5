//! Word segmentation that IOB2 tags are defined over.
//!
//! Design choices:
//! - Offsets are **character** offsets (Unicode scalar values, like Python `str` indices), end
//!   exclusive, so labels written by Python tools and by this crate agree on positions.
//! - The unit of segmentation is the extended grapheme cluster, not the `char`. A cluster is
//!   *alphanumeric* if its first char is alphanumeric, *whitespace* if its first char is whitespace,
//!   and a *symbol* otherwise. Working on clusters keeps combining marks, Devanagari viramas and
//!   nuktas, variation selectors and emoji ZWJ sequences attached to the char they modify; a per-char
//!   rule would cut "नमस्ते" at the virama and an emoji family into five words.
//! - Whitespace separates words. The symbols `-` `'` `.` `’` stay inside a word when both
//!   neighbouring clusters are alphanumeric ("T-shirt", "Boy's", "2.5", "Gold-Plated", "U.S.Polo");
//!   every other symbol (including emoji, `&`, `/`, `,`, brackets, and a trailing `.`) is a word of
//!   its own, so punctuation never hides inside an entity boundary.

use unicode_segmentation::UnicodeSegmentation;

/// One word of a text with its character span.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Word {
    /// The characters `start..end` of the text.
    pub text: String,
    /// Character offset of the first char.
    pub start: usize,
    /// Character offset one past the last char.
    pub end: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Alnum,
    Space,
    Symbol,
}

fn kind(cluster: &str) -> Kind {
    match cluster.chars().next() {
        Some(c) if c.is_alphanumeric() => Kind::Alnum,
        Some(c) if c.is_whitespace() => Kind::Space,
        _ => Kind::Symbol,
    }
}

/// Symbols that may join two alphanumeric runs into one word.
fn is_joiner(cluster: &str) -> bool {
    matches!(cluster, "-" | "'" | "." | "’")
}

/// Splits `text` into words (see the module documentation for the rules).
///
/// Always holds: `words[i].text` equals the characters `start..end` of `text`, spans are increasing
/// and never overlap, and no word is empty or contains whitespace.
pub fn split_words(text: &str) -> Vec<Word> {
    // (cluster, char offset, char length)
    let mut clusters: Vec<(&str, usize, usize)> = Vec::new();
    let mut offset = 0;
    for g in text.graphemes(true) {
        let len = g.chars().count();
        clusters.push((g, offset, len));
        offset += len;
    }
    let kinds: Vec<Kind> = clusters.iter().map(|c| kind(c.0)).collect();

    let mut words = Vec::new();
    // The word being built: (text, start char offset).
    let mut current: Option<(String, usize)> = None;
    for (i, &(g, start, len)) in clusters.iter().enumerate() {
        match kinds[i] {
            Kind::Space => {
                if let Some((t, s)) = current.take() {
                    words.push(Word {
                        text: t,
                        start: s,
                        end: start,
                    });
                }
            }
            Kind::Alnum => match current.as_mut() {
                Some((t, _)) => t.push_str(g),
                None => current = Some((g.to_string(), start)),
            },
            Kind::Symbol => {
                let inside = current.is_some()
                    && is_joiner(g)
                    && i > 0
                    && kinds[i - 1] == Kind::Alnum
                    && kinds.get(i + 1) == Some(&Kind::Alnum);
                if inside {
                    if let Some((t, _)) = current.as_mut() {
                        t.push_str(g);
                    }
                } else {
                    if let Some((t, s)) = current.take() {
                        words.push(Word {
                            text: t,
                            start: s,
                            end: start,
                        });
                    }
                    words.push(Word {
                        text: g.to_string(),
                        start,
                        end: start + len,
                    });
                }
            }
        }
    }
    if let Some((t, s)) = current.take() {
        words.push(Word {
            text: t,
            start: s,
            end: offset,
        });
    }
    words
}

/// The characters `start..end` of `text` (clamped to the text), as used for [`Word`] offsets.
pub fn char_slice(text: &str, start: usize, end: usize) -> &str {
    let byte = |n: usize| text.char_indices().nth(n).map_or(text.len(), |(b, _)| b);
    if start >= end {
        return "";
    }
    let (b0, b1) = (byte(start), byte(end));
    &text[b0..b1.max(b0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(t: &str) -> Vec<String> {
        split_words(t).into_iter().map(|w| w.text).collect()
    }

    fn check_invariants(t: &str) {
        let chars: Vec<char> = t.chars().collect();
        let mut last_end = 0;
        for w in split_words(t) {
            let s: String = chars[w.start..w.end].iter().collect();
            assert_eq!(s, w.text, "in {t:?}");
            assert!(w.start >= last_end && w.start < w.end);
            assert!(!w.text.chars().any(char::is_whitespace));
            assert_eq!(char_slice(t, w.start, w.end), w.text);
            last_end = w.end;
        }
    }

    #[test]
    fn ascii_rules() {
        assert_eq!(
            texts("DKNY Unisex Black & Grey T-shirt"),
            ["DKNY", "Unisex", "Black", "&", "Grey", "T-shirt"]
        );
        assert_eq!(
            texts("Boy's 2.5 Gold-Plated"),
            ["Boy's", "2.5", "Gold-Plated"]
        );
        assert_eq!(texts("U.S. Polo Assn."), ["U.S", ".", "Polo", "Assn", "."]);
        assert_eq!(
            texts("Boys' (Pack of 2), -x- a--b"),
            ["Boys", "'", "(", "Pack", "of", "2", ")", ",", "-", "x", "-", "a", "-", "-", "b"]
        );
        assert_eq!(texts("Story@home 100%"), ["Story", "@", "home", "100", "%"]);
        assert_eq!(
            texts("a_b a/b Men’s"),
            ["a", "_", "b", "a", "/", "b", "Men’s"]
        );
        let w = split_words("  Navy  Blue ");
        assert_eq!((w[0].start, w[0].end, w[1].start, w[1].end), (2, 6, 8, 12));
        assert!(split_words("").is_empty());
        assert!(split_words(" \t\n ").is_empty());
    }

    #[test]
    fn emoji_offsets() {
        let t = "Love 💖 Mug👍🏽 👨‍👩‍👧!";
        assert_eq!(texts(t), ["Love", "💖", "Mug", "👍🏽", "👨‍👩‍👧", "!"]);
        let w = split_words(t);
        assert_eq!((w[1].start, w[1].end), (5, 6));
        assert_eq!((w[2].start, w[2].end), (7, 10));
        // thumbs up + skin tone modifier = 2 chars, family = 5 chars
        assert_eq!((w[3].start, w[3].end), (10, 12));
        assert_eq!((w[4].start, w[4].end), (13, 18));
        check_invariants(t);
    }

    #[test]
    fn devanagari_stays_whole() {
        let t = "Biba नमस्ते कुर्ता-सेट Kurta";
        assert_eq!(texts(t), ["Biba", "नमस्ते", "कुर्ता-सेट", "Kurta"]);
        let w = split_words(t);
        assert_eq!((w[1].start, w[1].end), (5, 11));
        check_invariants(t);
    }

    #[test]
    fn cjk_and_combining_marks() {
        let t = "优衣库 T恤，男装 Cafe\u{301}-Noir";
        assert_eq!(
            texts(t),
            ["优衣库", "T恤", "，", "男装", "Cafe\u{301}-Noir"]
        );
        let w = split_words(t);
        assert_eq!((w[0].start, w[0].end), (0, 3));
        assert_eq!((w[2].start, w[2].end), (6, 7));
        assert_eq!((w[4].start, w[4].end), (10, 20));
        check_invariants(t);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for t in [
            "\u{301}abc",
            "\u{200d}\u{200d}",
            "a\u{0}b",
            "\u{feff}Brand",
            "-",
            "'s",
            "x.",
            "\r\n",
        ] {
            check_invariants(t);
        }
        assert_eq!(texts("\u{301}abc").concat(), "\u{301}abc");
    }

    #[test]
    fn char_slice_clamps() {
        assert_eq!(char_slice("héllo", 1, 3), "él");
        assert_eq!(char_slice("héllo", 3, 99), "lo");
        assert_eq!(char_slice("héllo", 4, 2), "");
    }
}
