//! Readers of a user's own labeled titles (`trainer train --data FILE`), in the formats NER data
//! comes in:
//!
//! | format | one record is | fields |
//! |---|---|---|
//! | JSONL, words | a line `{"words": [...], "tags": [...]}` | IOB2 `tags`, one per word; optional `id`, `description`, and `title` with `offsets` (what `trainer label` writes; other fields such as `split` are ignored) |
//! | JSONL, spans | a line `{"text": "...", "spans": [{"start", "end", "label"}]}` | character offsets (Unicode scalar values, as Python's `str` indexes them), end exclusive; optional `id`, `description` |
//! | CoNLL | one token per line, its IOB2 tag in the last column, a blank line between titles | `-DOCSTART-` lines are skipped; columns are separated by tabs or spaces |
//!
//! The format is the content's: a file whose first non-blank line starts with `{` is JSONL (each
//! record's format is its own fields'), any other is CoNLL.
//!
//! Design choices:
//! - A bad record is skipped and reported (file, line, field, what is wrong), and every other
//!   record is kept; only a file with no usable record is an error. That is what the catalog reader
//!   does, and what a user with a large file wants: one typo does not cost the run.
//! - Tags must be well-formed IOB2 (an `I-X` only after `B-X` or `I-X`): a stray `I-X` is how IOB1
//!   data or a hand edit shows, and guessing where its entity starts would change the user's labels
//!   without a word.
//! - A span must start and end on word boundaries ([`split_words`]); a span inside a word cannot be
//!   given as word tags and is reported rather than stretched.
//! - A record without an `id` gets none: the caller names it by its line, and splits it by its text
//!   (so that the same title, given twice, never lands in both training and test).
//! - An empty or missing `description` means none: the record trains tagging only.

use serde_json::{Map, Value};

use crate::csv_table::DecodedText;
use crate::error::DataError;
use crate::record::check_word_offsets;
use crate::tags::{check_tag, parts};
use crate::words::{char_slice, split_words};

/// One labeled title as the user gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledText {
    pub id: Option<String>,
    pub title: String,
    pub words: Vec<String>,
    /// Character offsets of each word in `title`.
    pub offsets: Vec<(usize, usize)>,
    /// One IOB2 tag per word.
    pub tags: Vec<String>,
    /// Empty when the record has none.
    pub description: String,
    /// The record's first line in its file.
    pub line: usize,
}

/// What a labeled file held: its records and the problems of those skipped.
#[derive(Debug, Default)]
pub struct LabeledRead {
    pub records: Vec<LabeledText>,
    pub skipped: Vec<DataError>,
}

/// Reads labeled titles in any of the formats above; an error only when no record is usable.
pub fn read_labeled(source: &str, text: &str) -> Result<LabeledRead, DataError> {
    read_decoded(source, &DecodedText::valid(text))
}

/// [`read_labeled`] from bytes: a line that is not UTF-8 skips only its record (or CoNLL title),
/// reported with the line and the byte column of the first invalid byte.
pub fn read_labeled_bytes(source: &str, bytes: &[u8]) -> Result<LabeledRead, DataError> {
    read_decoded(source, &DecodedText::decode(bytes))
}

fn read_decoded(source: &str, decoded: &DecodedText) -> Result<LabeledRead, DataError> {
    let text: &str = &decoded.text;
    let invalid = |line: usize| {
        decoded.invalid.iter().find(|b| b.line == line).map(|b| {
            DataError::new(
                source,
                line,
                "record",
                format!("not UTF-8 (invalid byte at column {})", b.column),
            )
        })
    };
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let read = match first {
        None => {
            return Err(DataError::new(
                source,
                0,
                "file",
                "no records: the file is empty",
            ))
        }
        Some(l) if l.starts_with('{') => read_labeled_jsonl(source, text, &invalid),
        Some(_) => read_conll(source, text, &invalid),
    };
    if read.records.is_empty() {
        return Err(DataError::nothing_usable(source, "record", &read.skipped));
    }
    Ok(read)
}

/// The problem of a line that was not UTF-8, if it was not.
type InvalidLine<'a> = &'a dyn Fn(usize) -> Option<DataError>;

/// JSONL in either record format; duplicate ids are reported and the later record skipped.
fn read_labeled_jsonl(source: &str, text: &str, invalid: InvalidLine) -> LabeledRead {
    let mut read = LabeledRead::default();
    let mut ids = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(e) = invalid(line_no) {
            read.skipped.push(e);
            continue;
        }
        let err = |field: &str, message: String| DataError::new(source, line_no, field, message);
        let record = match serde_json::from_str::<Value>(line) {
            Err(e) => Err(err("record", format!("invalid JSON: {e}"))),
            Ok(Value::Object(obj)) => json_record(&obj, line_no, &err),
            Ok(_) => Err(err("record", "expected a JSON object".into())),
        };
        match record {
            Ok(r) => {
                if let Some(id) = &r.id {
                    if let Some(first) = ids.insert(id.clone(), line_no) {
                        read.skipped.push(err(
                            "id",
                            format!("id {id:?} was already used on line {first}"),
                        ));
                        continue;
                    }
                }
                read.records.push(r);
            }
            Err(e) => read.skipped.push(e),
        }
    }
    read
}

type ErrFn<'a> = &'a dyn Fn(&str, String) -> DataError;

fn json_record(
    obj: &Map<String, Value>,
    line: usize,
    err: ErrFn,
) -> Result<LabeledText, DataError> {
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(err("id", "expected a non-empty string or a number".into())),
    };
    let description = match obj.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(err("description", "expected a string".into())),
    };
    let (title, words, offsets, tags) = if obj.contains_key("text") {
        spans_record(obj, err)?
    } else if obj.contains_key("words") {
        words_record(obj, err)?
    } else {
        return Err(err(
            "record",
            "expected `words` and `tags`, or `text` and `spans`".into(),
        ));
    };
    check_iob2(&tags).map_err(|m| err("tags", m))?;
    Ok(LabeledText {
        id,
        title,
        words,
        offsets,
        tags,
        description,
        line,
    })
}

type Parsed = (String, Vec<String>, Vec<(usize, usize)>, Vec<String>);

fn get<T: serde::de::DeserializeOwned>(
    obj: &Map<String, Value>,
    name: &str,
    err: ErrFn,
) -> Result<T, DataError> {
    let v = obj
        .get(name)
        .ok_or_else(|| err(name, "missing field".into()))?;
    serde_json::from_value(v.clone()).map_err(|e| err(name, format!("wrong type: {e}")))
}

/// `words` + `tags`, with `title` and `offsets` when given (else the words joined by spaces).
fn words_record(obj: &Map<String, Value>, err: ErrFn) -> Result<Parsed, DataError> {
    let words: Vec<String> = get(obj, "words", err)?;
    let tags: Vec<String> = get(obj, "tags", err)?;
    if words.is_empty() {
        return Err(err("words", "no words".into()));
    }
    if tags.len() != words.len() {
        return Err(err(
            "tags",
            format!("{} tags for {} words", tags.len(), words.len()),
        ));
    }
    if let Some(i) = words
        .iter()
        .position(|w| w.is_empty() || w.chars().any(char::is_whitespace))
    {
        return Err(err(
            "words",
            format!("word {i} is empty or holds whitespace"),
        ));
    }
    let (title, offsets) = match (obj.get("title"), obj.get("offsets")) {
        (Some(_), Some(_)) => {
            let title: String = get(obj, "title", err)?;
            let offsets: Vec<(usize, usize)> = get(obj, "offsets", err)?;
            check_word_offsets(&title, &words, &offsets).map_err(|m| err("offsets", m))?;
            (title, offsets)
        }
        (None, None) => joined(&words),
        (Some(_), None) => return Err(err("offsets", "`title` given without `offsets`".into())),
        (None, Some(_)) => return Err(err("title", "`offsets` given without `title`".into())),
    };
    Ok((title, words, offsets, tags))
}

/// The words joined by single spaces, and their offsets in that text.
fn joined(words: &[String]) -> (String, Vec<(usize, usize)>) {
    let mut title = String::new();
    let mut offsets = Vec::with_capacity(words.len());
    let mut at = 0;
    for w in words {
        if !title.is_empty() {
            title.push(' ');
            at += 1;
        }
        let n = w.chars().count();
        offsets.push((at, at + n));
        title.push_str(w);
        at += n;
    }
    (title, offsets)
}

#[derive(serde::Deserialize)]
struct SpanField {
    start: usize,
    end: usize,
    label: String,
}

/// `text` + character-offset `spans`, turned into IOB2 tags over the text's words.
fn spans_record(obj: &Map<String, Value>, err: ErrFn) -> Result<Parsed, DataError> {
    let text: String = get(obj, "text", err)?;
    let spans: Vec<SpanField> = match obj.get("spans") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) => get(obj, "spans", err)?,
    };
    let words = split_words(&text);
    if words.is_empty() {
        return Err(err("text", "no words".into()));
    }
    let mut tags = vec!["O".to_string(); words.len()];
    let chars = text.chars().count();
    for (k, s) in spans.iter().enumerate() {
        let bad = |m: String| err("spans", format!("span {k} ({}..{}): {m}", s.start, s.end));
        if s.start >= s.end || s.end > chars {
            return Err(bad(format!(
                "empty, reversed or past the end of the text ({chars} chars)"
            )));
        }
        if s.label.is_empty() || s.label.chars().any(char::is_whitespace) {
            return Err(bad("the label is empty or holds whitespace".into()));
        }
        let first = words.iter().position(|w| w.start == s.start);
        let last = words.iter().position(|w| w.end == s.end);
        let (Some(first), Some(last)) = (first, last) else {
            return Err(bad(format!(
                "{:?} does not start and end on word boundaries",
                char_slice(&text, s.start, s.end)
            )));
        };
        if tags[first..=last].iter().any(|t| t != "O") {
            return Err(bad("overlaps another span".into()));
        }
        tags[first] = format!("B-{}", s.label);
        for t in &mut tags[first + 1..=last] {
            *t = format!("I-{}", s.label);
        }
    }
    let offsets = words.iter().map(|w| (w.start, w.end)).collect();
    let words = words.into_iter().map(|w| w.text).collect();
    Ok((text, words, offsets, tags))
}

/// Every tag well-formed, and every `I-X` continuing an entity of type `X`.
fn check_iob2(tags: &[String]) -> Result<(), String> {
    let mut previous: Option<&str> = None;
    for (i, tag) in tags.iter().enumerate() {
        check_tag(tag).map_err(|m| format!("tag {i}: {m}"))?;
        let ty = parts(tag).map(|(_, ty)| ty);
        if tag.starts_with("I-") && previous != ty {
            return Err(format!(
                "tag {i}: {tag} does not continue a B-/I- of its type (IOB2 starts every entity \
                 with B-; IOB1 data must be converted)"
            ));
        }
        previous = ty;
    }
    Ok(())
}

/// Token-per-line IOB2: the token first, the tag last, a blank line between titles.
fn read_conll(source: &str, text: &str, invalid: InvalidLine) -> LabeledRead {
    let mut read = LabeledRead::default();
    // The current title: its first line, words and tags, and its first problem.
    let mut start = 0;
    let mut words: Vec<String> = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    let mut problem: Option<DataError> = None;
    let finish = |start: usize,
                  words: &mut Vec<String>,
                  tags: &mut Vec<String>,
                  problem: &mut Option<DataError>,
                  read: &mut LabeledRead| {
        if let Some(p) = problem.take() {
            read.skipped.push(p);
        } else if !words.is_empty() {
            match check_iob2(tags) {
                Ok(()) => {
                    let (title, offsets) = joined(words);
                    read.records.push(LabeledText {
                        id: None,
                        title,
                        words: std::mem::take(words),
                        offsets,
                        tags: std::mem::take(tags),
                        description: String::new(),
                        line: start,
                    });
                }
                Err(m) => read.skipped.push(DataError::new(source, start, "tag", m)),
            }
        }
        words.clear();
        tags.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.is_empty() {
            finish(start, &mut words, &mut tags, &mut problem, &mut read);
            continue;
        }
        if columns[0] == "-DOCSTART-" {
            continue;
        }
        if words.is_empty() && problem.is_none() {
            start = line_no;
        }
        if problem.is_some() {
            continue;
        }
        if let Some(e) = invalid(line_no) {
            problem = Some(e);
            continue;
        }
        if columns.len() < 2 {
            problem = Some(DataError::new(
                source,
                line_no,
                "tag",
                format!(
                    "one column; expected the token and its tag (title from line {start} skipped)"
                ),
            ));
            continue;
        }
        let tag = columns[columns.len() - 1];
        if let Err(m) = check_tag(tag) {
            problem = Some(DataError::new(
                source,
                line_no,
                "tag",
                format!("{m} (title from line {start} skipped)"),
            ));
            continue;
        }
        words.push(columns[0].to_string());
        tags.push(tag.to_string());
    }
    finish(start, &mut words, &mut tags, &mut problem, &mut read);
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_records_with_and_without_titles() {
        let text = r#"{"words": ["Nike", "Red", "Shoes"], "tags": ["B-BRAND", "B-COLOR", "O"], "description": "Fast."}
{"id": 7, "title": "Puma  Cap", "words": ["Puma", "Cap"], "offsets": [[0, 4], [6, 9]], "tags": ["B-BRAND", "O"], "split": "test"}"#;
        let read = read_labeled("a.jsonl", text).unwrap();
        assert!(read.skipped.is_empty(), "{:?}", read.skipped);
        let [a, b] = &read.records[..] else { panic!() };
        assert_eq!(
            (a.id.as_deref(), a.title.as_str(), a.line),
            (None, "Nike Red Shoes", 1)
        );
        assert_eq!(a.offsets, [(0, 4), (5, 8), (9, 14)]);
        assert_eq!(a.description, "Fast.");
        assert_eq!(
            (b.id.as_deref(), b.title.as_str()),
            (Some("7"), "Puma  Cap")
        );
        assert_eq!(b.description, "");
    }

    #[test]
    fn spans_become_word_tags() {
        let text = r#"{"text": "  Levi's Slim-Fit Blue Jeans 💙", "spans": [{"start": 2, "end": 8, "label": "BRAND"}, {"start": 18, "end": 28, "label": "TYPE"}]}"#;
        let read = read_labeled("s.jsonl", text).unwrap();
        let r = &read.records[0];
        assert_eq!(r.words, ["Levi's", "Slim-Fit", "Blue", "Jeans", "💙"]);
        assert_eq!(r.tags, ["B-BRAND", "O", "B-TYPE", "I-TYPE", "O"]);
        assert_eq!(r.title, "  Levi's Slim-Fit Blue Jeans 💙");
        assert_eq!(
            char_slice(&r.title, r.offsets[2].0, r.offsets[3].1),
            "Blue Jeans"
        );
    }

    #[test]
    fn bad_records_are_reported_and_the_others_kept() {
        let good = r#"{"words": ["A"], "tags": ["B-X"]}"#;
        let lines = [
            good,
            r#"{"words": ["A", "B"], "tags": ["B-X"]}"#,
            r#"{"words": ["A", "B"], "tags": ["O", "I-X"]}"#,
            r#"{"text": "Blue Jeans", "spans": [{"start": 1, "end": 4, "label": "C"}]}"#,
            r#"{"text": "Blue Jeans", "spans": [{"start": 0, "end": 10, "label": "C"}, {"start": 5, "end": 10, "label": "T"}]}"#,
            r#"{"id": "x", "words": ["A"], "tags": ["O"]}"#,
            r#"{"id": "x", "words": ["B"], "tags": ["O"]}"#,
            "{oops",
            r#"{"title": "A", "words": ["A"], "tags": ["O"]}"#,
            r#"{"words": ["A"], "tags": ["B-X"], "description": 3}"#,
            good,
        ];
        let read = read_labeled("b.jsonl", &lines.join("\n")).unwrap();
        assert_eq!(read.records.len(), 3);
        let at: Vec<(usize, &str)> = read
            .skipped
            .iter()
            .map(|e| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (2, "tags"),
                (3, "tags"),
                (4, "spans"),
                (5, "spans"),
                (7, "id"),
                (8, "record"),
                (9, "offsets"),
                (10, "description")
            ]
        );
        assert!(
            read.skipped[1].message.contains("IOB1"),
            "{}",
            read.skipped[1]
        );
        assert!(read.skipped[2].message.contains("word boundaries"));
        assert!(read.skipped[3].message.contains("overlaps"));
    }

    #[test]
    fn conll_titles_between_blank_lines() {
        let text = "-DOCSTART- -X- O O\n\nNike\tNNP\tB-BRAND\nAir I-BRAND\nshoes O\n\n\n\
                    Red B-COLOR\nbad\nCap O\n\nPuma B-BRAND\nhat X-TYPE\n\nblue I-COLOR\n\nCap O";
        let read = read_labeled("c.conll", text).unwrap();
        let titles: Vec<(&str, usize)> = read
            .records
            .iter()
            .map(|r| (r.title.as_str(), r.line))
            .collect();
        assert_eq!(titles, [("Nike Air shoes", 3), ("Cap", 17)]);
        assert_eq!(read.records[0].tags, ["B-BRAND", "I-BRAND", "O"]);
        let at: Vec<(usize, &str)> = read
            .skipped
            .iter()
            .map(|e| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(at, [(9, "tag"), (13, "tag"), (15, "tag")]);
        assert!(
            read.skipped[0].message.contains("line 8"),
            "{}",
            read.skipped[0]
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_costs_only_its_record() {
        let mut bytes = b"{\"words\": [\"A\"], \"tags\": [\"O\"]}\n".to_vec();
        bytes.extend(b"{\"words\": [\"\xff\"], \"tags\": [\"O\"]}\n");
        bytes.extend(b"{\"words\": [\"C\"], \"tags\": [\"O\"]}\n");
        let read = read_labeled_bytes("u.jsonl", &bytes).unwrap();
        assert_eq!(read.records.len(), 2);
        assert_eq!(
            read.skipped[0].to_string(),
            "u.jsonl:2: field `record`: not UTF-8 (invalid byte at column 13)"
        );
        let read = read_labeled_bytes("u.conll", b"A O\nB O\n\nC\xff O\nD O\n\nE O").unwrap();
        let titles: Vec<&str> = read.records.iter().map(|r| r.title.as_str()).collect();
        assert_eq!(titles, ["A B", "E"]);
        assert_eq!((read.skipped[0].line, read.skipped.len()), (4, 1));
    }

    #[test]
    fn a_file_without_a_usable_record_is_an_error() {
        let e = read_labeled("e.jsonl", "  \n").unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
        let e = read_labeled("e.jsonl", "{\"words\": [], \"tags\": []}").unwrap_err();
        assert!(e.message.contains("no usable record (1 skipped)"), "{e}");
        assert!(e.message.contains("e.jsonl:1: field `words`"), "{e}");
    }
}
