//! The labeled-catalog JSONL exchanged between `trainer label` and the other tools.
//!
//! Design choices: one self-contained JSON object per line, so a file can be streamed, diffed and
//! grepped, and every record carries its own words, character offsets and split (consumers never
//! re-derive them and cannot disagree about segmentation). The reader validates every record
//! field by field and reports the first problem with line and field name, because a silently
//! misaligned tag sequence would corrupt training without any visible symptom.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::catalog::CatalogItem;
use crate::error::DataError;
use crate::split::Split;
use crate::tags::check_tag;
use crate::words::{split_words, Word};

/// One labeled title.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabeledRecord {
    pub id: String,
    pub title: String,
    pub description: String,
    /// Words of the title (see `words::split_words`).
    pub words: Vec<String>,
    /// Character offsets `(start, end)` of each word in the title.
    pub offsets: Vec<(usize, usize)>,
    /// One IOB2 tag per word.
    pub tags: Vec<String>,
    pub split: Split,
}

impl LabeledRecord {
    /// A record for a catalog item with tags aligned to `split_words(&item.title)`.
    pub fn new(item: &CatalogItem, tags: Vec<String>, split: Split) -> Self {
        let ws = split_words(&item.title);
        LabeledRecord {
            id: item.id.clone(),
            title: item.title.clone(),
            description: item.description.clone(),
            words: ws.iter().map(|w| w.text.clone()).collect(),
            offsets: ws.iter().map(|w| (w.start, w.end)).collect(),
            tags,
            split,
        }
    }

    /// The words with their offsets (pairs missing from either list are dropped).
    pub fn word_spans(&self) -> Vec<Word> {
        self.words
            .iter()
            .zip(&self.offsets)
            .map(|(t, &(start, end))| Word {
                text: t.clone(),
                start,
                end,
            })
            .collect()
    }

    /// Checks the invariants [`read_jsonl`] relies on; the error is `(field, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_string(), m));
        if self.id.trim().is_empty() {
            return bad("id", "empty id".into());
        }
        let n = self.words.len();
        if self.tags.len() != n {
            return bad("tags", format!("{} tags for {n} words", self.tags.len()));
        }
        for (i, t) in self.tags.iter().enumerate() {
            if let Err(m) = check_tag(t) {
                return bad("tags", format!("tag {i}: {m}"));
            }
        }
        check_word_offsets(&self.title, &self.words, &self.offsets)
            .map_err(|m| ("offsets".to_string(), m))
    }
}

/// Checks that each word sits at its offsets `(start, end)` in `title` (characters, end
/// exclusive), in order and without overlap; the error says which word is off.
pub(crate) fn check_word_offsets(
    title: &str,
    words: &[String],
    offsets: &[(usize, usize)],
) -> Result<(), String> {
    if offsets.len() != words.len() {
        return Err(format!(
            "{} offsets for {} words",
            offsets.len(),
            words.len()
        ));
    }
    let chars: Vec<char> = title.chars().collect();
    let mut last_end = 0;
    for (i, (w, &(s, e))) in words.iter().zip(offsets).enumerate() {
        if s < last_end || s >= e || e > chars.len() {
            return Err(format!(
                "word {i}: offsets ({s}, {e}) out of order or outside the title ({} chars)",
                chars.len()
            ));
        }
        let actual: String = chars[s..e].iter().collect();
        if &actual != w {
            return Err(format!(
                "word {i}: title[{s}..{e}] is {actual:?}, not the word {w:?}"
            ));
        }
        last_end = e;
    }
    Ok(())
}

/// One held-out catalog item that `trainer export` bundles with a model (`examples.json`) and the
/// browser app fills its inputs from: its id, title and description.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BundledExample {
    pub id: String,
    pub title: String,
    pub description: String,
}

/// Serializes records (labeled items, tagged titles) as JSON lines, each ending in `\n`.
pub fn to_jsonl<T: serde::Serialize>(records: &[T]) -> String {
    let mut out = String::new();
    for r in records {
        // Serializing plain strings, numbers and vectors cannot fail.
        out.push_str(&serde_json::to_string(r).expect("plain records serialize"));
        out.push('\n');
    }
    out
}

fn field<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    name: &str,
    err: &dyn Fn(&str, String) -> DataError,
) -> Result<T, DataError> {
    let v = obj
        .get(name)
        .ok_or_else(|| err(name, "missing field".into()))?;
    serde_json::from_value(v.clone()).map_err(|e| err(name, format!("wrong type: {e}")))
}

/// Parses JSON lines (blank lines ignored), validating each record.
pub fn read_jsonl(source_name: &str, text: &str) -> Result<Vec<LabeledRecord>, DataError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |f: &str, m: String| DataError::new(source_name, line_no, f, m);
        let value: Value =
            serde_json::from_str(line).map_err(|e| err("record", format!("invalid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(err("record", "expected a JSON object".into()));
        };
        let record = LabeledRecord {
            id: field(&obj, "id", &err)?,
            title: field(&obj, "title", &err)?,
            description: field(&obj, "description", &err)?,
            words: field(&obj, "words", &err)?,
            offsets: field(&obj, "offsets", &err)?,
            tags: field(&obj, "tags", &err)?,
            split: field(&obj, "split", &err)?,
        };
        record.validate().map_err(|(f, m)| err(&f, m))?;
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str) -> CatalogItem {
        CatalogItem {
            id: "7".into(),
            title: title.into(),
            brand: "Acme".into(),
            gender: "Men".into(),
            colour: "Red".into(),
            description: "A red \"shirt\",\nnew".into(),
            line: 2,
        }
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn round_trip() {
        let r = LabeledRecord::new(
            &item("Acme Men Red 💖 T-shirt"),
            tags(&["B-BRAND", "B-GENDER", "B-COLOR", "O", "B-TYPE"]),
            Split::Dev,
        );
        assert_eq!(r.offsets[4], (15, 22));
        assert_eq!(r.word_spans()[3].text, "💖");
        let text = to_jsonl(&[r.clone(), r.clone()]);
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"split\":\"dev\""));
        let back = read_jsonl("x.jsonl", &format!("\n{text}\n  \n")).unwrap();
        assert_eq!(back, vec![r.clone(), r]);
    }

    fn line_with(edit: impl Fn(&mut Value)) -> String {
        let r = LabeledRecord::new(
            &item("Acme Red Shirt"),
            tags(&["B-BRAND", "B-COLOR", "B-TYPE"]),
            Split::Train,
        );
        let mut v = serde_json::to_value(&r).unwrap();
        edit(&mut v);
        serde_json::to_string(&v).unwrap()
    }

    fn error_of(line: String) -> DataError {
        read_jsonl("l.jsonl", &format!("\n{line}\n")).unwrap_err()
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = error_of("{not json".into());
        assert_eq!((e.line, e.field.as_str()), (2, "record"));
        assert!(e.message.contains("invalid JSON"));
        assert_eq!(error_of("[1]".into()).field, "record");
        let e = error_of(line_with(|v| {
            v.as_object_mut().unwrap().remove("tags");
        }));
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("tags", "missing field")
        );
        let e = error_of(line_with(|v| v["split"] = "holdout".into()));
        assert_eq!(e.field, "split");
        let e = error_of(line_with(|v| {
            v["tags"] = serde_json::json!(["B-BRAND", "O"])
        }));
        assert_eq!(e.field, "tags");
        assert!(e.message.contains("2 tags for 3 words"), "{e}");
        let e = error_of(line_with(|v| v["tags"][1] = "X-COLOR".into()));
        assert!(e.field == "tags" && e.message.contains("tag 1"), "{e}");
        let e = error_of(line_with(|v| v["offsets"][2] = serde_json::json!([9, 15])));
        assert_eq!(e.field, "offsets");
        assert!(e.message.contains("word 2"), "{e}");
        let e = error_of(line_with(|v| {
            v["offsets"] = serde_json::json!([[0, 4], [5, 8]])
        }));
        assert!(
            e.field == "offsets" && e.message.contains("2 offsets"),
            "{e}"
        );
        let e = error_of(line_with(|v| v["title"] = "Acme Rod Shirt".into()));
        assert!(e.field == "offsets" && e.message.contains("\"Rod\""), "{e}");
        assert!(e.to_string().starts_with("l.jsonl:2: field `offsets`"));
        let e = error_of(line_with(|v| v["words"] = serde_json::json!("Acme")));
        assert!(
            e.field == "words" && e.message.contains("wrong type"),
            "{e}"
        );
    }
}
