//! The IOB2 label scheme and its entity spans.
//!
//! Design choice: spans follow seqeval's **strict** IOB2 semantics (the same as `spans` in
//! `quality_ref.py`): an entity starts at `B-X` and continues over following `I-X`; an `I-` tag
//! with no open entity of the same type is not part of any entity. Training data, decoding and
//! metrics all go through [`spans_from_iob2`], so what is scored is exactly what users see.
//! Tags that are not valid IOB2 (see [`check_tag`]) are treated like `O`; readers reject them
//! before they get here.

/// An entity over word indices `start..end` (end exclusive).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Span {
    /// Entity type, e.g. `BRAND`.
    pub label: String,
    /// First word index.
    pub start: usize,
    /// One past the last word index.
    pub end: usize,
}

/// Splits a tag into prefix (`B`/`I`) and type; `None` for `O` and for invalid tags.
pub(crate) fn parts(tag: &str) -> Option<(char, &str)> {
    let (p, ty) = tag.split_once('-')?;
    match p {
        "B" if !ty.is_empty() => Some(('B', ty)),
        "I" if !ty.is_empty() => Some(('I', ty)),
        _ => None,
    }
}

/// Strict IOB2 spans of a tag sequence, in order of position.
pub fn spans_from_iob2(tags: &[String]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut open: Option<(&str, usize)> = None;
    for (i, tag) in tags.iter().enumerate() {
        match parts(tag) {
            Some(('I', ty)) if open.is_some_and(|(t, _)| t == ty) => {}
            p => {
                if let Some((t, s)) = open.take() {
                    out.push(Span {
                        label: t.to_string(),
                        start: s,
                        end: i,
                    });
                }
                if let Some(('B', ty)) = p {
                    open = Some((ty, i));
                }
            }
        }
    }
    if let Some((t, s)) = open {
        out.push(Span {
            label: t.to_string(),
            start: s,
            end: tags.len(),
        });
    }
    out
}

/// IOB2 tags for `n_words` words from spans. Spans are applied in order; a span that is empty,
/// reaches past `n_words` or overlaps an earlier span is ignored so the result always decodes back
/// to well-formed entities (callers that must reject such spans check them first, see `gold`).
pub fn iob2_from_spans(n_words: usize, spans: &[Span]) -> Vec<String> {
    let mut tags = vec!["O".to_string(); n_words];
    for s in spans {
        if s.start >= s.end || s.end > n_words || tags[s.start..s.end].iter().any(|t| t != "O") {
            continue;
        }
        tags[s.start] = format!("B-{}", s.label);
        for t in &mut tags[s.start + 1..s.end] {
            *t = format!("I-{}", s.label);
        }
    }
    tags
}

/// Accepts `O`, `B-X` and `I-X` with a non-empty type `X` without whitespace.
pub fn check_tag(tag: &str) -> Result<(), String> {
    if tag == "O" {
        return Ok(());
    }
    match parts(tag) {
        Some((_, ty)) if !ty.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(format!(
            "invalid IOB2 tag `{tag}`: expected `O`, `B-TYPE` or `I-TYPE`"
        )),
    }
}

/// The tag vocabulary of a model: `O` first, then the sorted `B-`/`I-` tags.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelMap {
    /// Tags by id.
    pub labels: Vec<String>,
}

impl LabelMap {
    /// `O` plus `B-X` and `I-X` for every type (duplicates and empty types dropped).
    pub fn from_entity_types(types: &[&str]) -> Self {
        let mut tags: Vec<String> = types
            .iter()
            .filter(|t| !t.is_empty())
            .flat_map(|t| [format!("B-{t}"), format!("I-{t}")])
            .collect();
        tags.sort();
        tags.dedup();
        let mut labels = vec!["O".to_string()];
        labels.extend(tags);
        LabelMap { labels }
    }

    /// The map for every entity type seen in the sequences. Both `B-X` and `I-X` are included even
    /// if only one was seen, so a model can emit any well-formed tag; invalid tags are ignored.
    pub fn from_tag_sequences<'a>(seqs: impl IntoIterator<Item = &'a [String]>) -> Self {
        let mut types = std::collections::BTreeSet::new();
        for seq in seqs {
            for t in seq {
                if let Some((_, ty)) = parts(t) {
                    if check_tag(t).is_ok() {
                        types.insert(ty.to_string());
                    }
                }
            }
        }
        let refs: Vec<&str> = types.iter().map(String::as_str).collect();
        Self::from_entity_types(&refs)
    }

    /// Id of a tag.
    pub fn id(&self, tag: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == tag)
    }

    /// Tag of an id; ids out of range map to `O` so decoding never panics.
    pub fn tag(&self, id: usize) -> &str {
        self.labels.get(id).map_or("O", String::as_str)
    }

    /// Number of tags including `O`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no tags at all (not even `O`).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Checks the scheme every model's tag list follows: `O` once, and for every entity type
    /// exactly one `B-X` and one `I-X`, and nothing else. A list that breaks it was edited by hand
    /// or written for another scheme, and decoding it would give wrong entities. The order is not
    /// checked: it is the classifier's row order, ours `O` first ([`Self::from_entity_types`]),
    /// other tools' often sorted with `O` last (a Hugging Face model's `id2label`), and a
    /// reordering of a list we wrote is caught by the list's hash instead.
    /// The error describes the first problem, without the file's name (callers add it).
    pub fn check_scheme(&self) -> Result<(), String> {
        if self.labels.is_empty() {
            return Err("the tag list is empty; it needs \"O\" and B-/I- pairs".into());
        }
        let mut seen = std::collections::HashSet::new();
        for tag in &self.labels {
            if !seen.insert(tag.as_str()) {
                return Err(format!("{} appears twice", quoted(tag)));
            }
        }
        if !seen.contains("O") {
            return Err("the tag list has no \"O\"".into());
        }
        for tag in self.labels.iter().filter(|t| *t != "O") {
            let Some((prefix, ty)) = parts(tag).filter(|_| check_tag(tag).is_ok()) else {
                return Err(format!(
                    "{} is not an IOB2 tag (besides \"O\", only `B-TYPE` and `I-TYPE`)",
                    quoted(tag)
                ));
            };
            let partner = format!("{}-{ty}", if prefix == 'B' { 'I' } else { 'B' });
            if !seen.contains(partner.as_str()) {
                return Err(format!(
                    "{} has no {}: every type needs both",
                    quoted(tag),
                    quoted(&partner)
                ));
            }
        }
        Ok(())
    }

    /// Sorted entity types.
    pub fn entity_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .labels
            .iter()
            .filter_map(|l| parts(l))
            .map(|(_, t)| t.to_string())
            .collect();
        types.sort();
        types.dedup();
        types
    }
}

/// Text from a file (a tag, a type name), for an error message: quoted, escaped, and cut at 40
/// characters so a hostile file cannot fill the message (or the terminal) with its bytes.
pub(crate) fn quoted(tag: &str) -> String {
    const MAX: usize = 40;
    let mut out: String = tag.chars().take(MAX).flat_map(char::escape_debug).collect();
    if tag.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    format!("`{out}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    fn sp(l: &str, s: usize, e: usize) -> Span {
        Span {
            label: l.into(),
            start: s,
            end: e,
        }
    }

    /// Expected values computed with `spans` from `quality_ref.py` (as sets, here sorted by start).
    #[test]
    fn strict_spans_match_quality_ref() {
        // spans(["B-BRAND","I-BRAND","O","B-TYPE"]) == {("BRAND",0,2),("TYPE",3,4)}
        assert_eq!(
            spans_from_iob2(&v(&["B-BRAND", "I-BRAND", "O", "B-TYPE"])),
            [sp("BRAND", 0, 2), sp("TYPE", 3, 4)]
        );
        // spans(["I-COLOR","I-COLOR","B-COLOR"]) == {("COLOR",2,3)}: dangling I- is no entity
        assert_eq!(
            spans_from_iob2(&v(&["I-COLOR", "I-COLOR", "B-COLOR"])),
            [sp("COLOR", 2, 3)]
        );
        // spans(["B-TYPE","I-COLOR","I-TYPE"]) == {("TYPE",0,1)}
        assert_eq!(
            spans_from_iob2(&v(&["B-TYPE", "I-COLOR", "I-TYPE"])),
            [sp("TYPE", 0, 1)]
        );
        // spans(["B-COLOR","B-COLOR","I-COLOR"]) == {("COLOR",0,1),("COLOR",1,3)}
        assert_eq!(
            spans_from_iob2(&v(&["B-COLOR", "B-COLOR", "I-COLOR"])),
            [sp("COLOR", 0, 1), sp("COLOR", 1, 3)]
        );
        // spans(["O","B-GENDER","I-GENDER"]) == {("GENDER",1,3)}
        assert_eq!(
            spans_from_iob2(&v(&["O", "B-GENDER", "I-GENDER"])),
            [sp("GENDER", 1, 3)]
        );
        assert!(spans_from_iob2(&[]).is_empty());
        // invalid tags behave like O
        assert_eq!(
            spans_from_iob2(&v(&["B-X", "junk", "I-X"])),
            [sp("X", 0, 1)]
        );
    }

    #[test]
    fn iob2_round_trip_and_bad_spans() {
        let tags = v(&["B-BRAND", "I-BRAND", "O", "B-COLOR", "B-COLOR", "I-COLOR"]);
        let spans = spans_from_iob2(&tags);
        assert_eq!(iob2_from_spans(6, &spans), tags);
        let bad = [sp("A", 2, 2), sp("B", 3, 9), sp("C", 0, 2), sp("D", 1, 3)];
        assert_eq!(iob2_from_spans(4, &bad), v(&["B-C", "I-C", "O", "O"]));
    }

    #[test]
    fn check_tag_rules() {
        for ok in ["O", "B-BRAND", "I-X", "B-A-B"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", "B-", "I", "X-BRAND", "o", "B-TWO WORDS", "BRAND"] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_map() {
        let m = LabelMap::from_entity_types(&["TYPE", "BRAND", "BRAND", ""]);
        assert_eq!(m.labels, ["O", "B-BRAND", "B-TYPE", "I-BRAND", "I-TYPE"]);
        assert_eq!(m.id("I-TYPE"), Some(4));
        assert_eq!(m.id("B-COLOR"), None);
        assert_eq!(m.tag(1), "B-BRAND");
        assert_eq!(m.tag(99), "O");
        assert_eq!(m.len(), 5);
        assert!(!m.is_empty());
        assert_eq!(m.entity_types(), ["BRAND", "TYPE"]);
        let seqs = [v(&["O", "I-COLOR"]), v(&["B-TYPE", "bad"])];
        let m2 = LabelMap::from_tag_sequences(seqs.iter().map(|s| s.as_slice()));
        assert_eq!(m2, LabelMap::from_entity_types(&["COLOR", "TYPE"]));
        let json = serde_json::to_string(&m2).unwrap();
        assert_eq!(serde_json::from_str::<LabelMap>(&json).unwrap(), m2);
    }

    #[test]
    fn label_scheme_is_o_and_pairs() {
        let map = |tags: &[&str]| LabelMap { labels: v(tags) };
        assert_eq!(
            LabelMap::from_entity_types(&["TYPE", "BRAND"]).check_scheme(),
            Ok(())
        );
        // The order is the model's (its classifier rows), so any order is accepted.
        assert_eq!(map(&["O", "I-X", "B-X"]).check_scheme(), Ok(()));
        assert_eq!(map(&["B-X", "I-X", "O"]).check_scheme(), Ok(()));
        assert_eq!(map(&["O"]).check_scheme(), Ok(()));
        for (tags, why) in [
            (&[][..], "empty"),
            (&["B-X", "I-X"][..], "no \"O\""),
            (&["O", "B-X", "I-X", "B-X"][..], "`B-X` appears twice"),
            (&["O", "B-X", "I-X", "O"][..], "`O` appears twice"),
            (&["O", "B-X"][..], "`B-X` has no `I-X`"),
            (&["O", "B-X", "I-Y"][..], "`B-X` has no `I-X`"),
            (&["O", "B-X", "I-X", "PER"][..], "`PER` is not an IOB2 tag"),
            (&["O", "B-X", "I-X", "B-TWO WORDS"][..], "not an IOB2 tag"),
        ] {
            let err = map(tags).check_scheme().unwrap_err();
            assert!(err.contains(why), "{tags:?}: {err}");
        }
        // A hostile tag is escaped and cut in the message.
        let long = format!("B-{}\u{7}", "A".repeat(500));
        let err = map(&["O", &long]).check_scheme().unwrap_err();
        assert!(err.len() < 150 && !err.contains('\u{7}'), "{err}");
    }
}
