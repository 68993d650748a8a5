//! Entity types described in words: BINDER's type encoder reads each type's description, not its
//! name, so a types file is a list of names with one description each.
//!
//! The file is a JSON array of `{"name": "...", "description": "..."}` objects. The order is
//! meaningful and kept: type `i` of the model is the file's record `i` (its row of the type
//! encoder's output, and the `type_index` of a [`ScoredSpan`](super::ScoredSpan)).
//!
//! Design choices:
//! - Any problem fails the read, as for SpERT's types file: the file is small, written by hand,
//!   and every type in it changes what the model predicts. A problem is located by the record's
//!   index in the array and the field (`[2].description`); the line is 0 (the whole source),
//!   except for text that is not JSON, where serde_json's line is given.
//! - Both fields are required strings, non-empty after trimming, and stored as written. A name
//!   must also contain no whitespace, since it becomes the type of the entities the model outputs
//!   and of their IOB2 tags (`B-NAME`, see [`check_tag`](crate::check_tag)); names are compared
//!   exactly (case matters), and a name listed twice is an error naming both records.
//! - Any other field is an error, so that a misspelt `"descripton"` cannot leave a type without
//!   its description and pass unnoticed; so is a field given twice in one record (a JSON map
//!   would keep the last one silently).
//! - Text from the file that is quoted in a message is escaped and cut to 40 characters.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::DataError;
use crate::tags::quoted;

/// An entity type: the `name` the model outputs and the `description` its type encoder reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TypeDescription {
    pub name: String,
    pub description: String,
}

/// The fields a record may have.
const FIELDS: [&str; 2] = ["name", "description"];

/// Reads a types file: a JSON array of `{"name": "...", "description": "..."}` objects, in the
/// file's order. `source` names the file in errors.
pub fn read_type_descriptions(source: &str, text: &str) -> Result<Vec<TypeDescription>, DataError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| DataError::new(source, e.line(), "file", format!("invalid JSON: {e}")))?;
    let Value::Array(records) = value else {
        return Err(DataError::new(
            source,
            0,
            "file",
            format!(
                "expected a JSON array of {{\"name\", \"description\"}} objects, got {}",
                kind(&value)
            ),
        ));
    };
    if records.is_empty() {
        return Err(DataError::new(
            source,
            0,
            "file",
            "no entity types (the array is empty)",
        ));
    }
    // Read again, record by record, keeping each object's entries as written: serde_json's map
    // keeps only the last of a repeated key, and a repeated field must not pass unnoticed.
    let records: Vec<Record> = serde_json::from_str(text)
        .map_err(|e| DataError::new(source, e.line(), "file", format!("invalid JSON: {e}")))?;
    let err = |field: String, message: String| DataError::new(source, 0, field, message);
    let mut types: Vec<TypeDescription> = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let entries = match record {
            Record::Object(entries) => entries,
            Record::Other(got) => {
                return Err(err(
                    format!("[{i}]"),
                    format!("expected a JSON object with \"name\" and \"description\", got {got}"),
                ))
            }
        };
        for (k, (key, _)) in entries.iter().enumerate() {
            let message = if !FIELDS.contains(&key.as_str()) {
                format!(
                    "unknown field {} (a record has only `name` and `description`)",
                    quoted(key)
                )
            } else if entries[..k].iter().any(|(other, _)| other == key) {
                format!("the field {} is given twice", quoted(key))
            } else {
                continue;
            };
            return Err(err(format!("[{i}]"), message));
        }
        let get = |field: &str| entries.iter().find(|(k, _)| k == field).map(|(_, v)| v);
        let text_field = |field: &str| -> Result<String, DataError> {
            let at = format!("[{i}].{field}");
            match get(field) {
                None => Err(err(at, "missing field".into())),
                Some(Value::String(s)) if s.trim().is_empty() => {
                    Err(err(at, format!("empty {field}")))
                }
                Some(Value::String(s)) => Ok(s.clone()),
                Some(v) => Err(err(at, format!("expected a string, got {}", kind(v)))),
            }
        };
        let name = text_field("name")?;
        if name.chars().any(char::is_whitespace) {
            return Err(err(
                format!("[{i}].name"),
                format!(
                    "{} contains whitespace (a name becomes the type of IOB2 tags, `B-NAME`)",
                    quoted(&name)
                ),
            ));
        }
        if let Some(first) = types.iter().position(|t| t.name == name) {
            return Err(err(
                format!("[{i}].name"),
                format!(
                    "{} is also the name of record [{first}]: each type is listed once",
                    quoted(&name)
                ),
            ));
        }
        let description = text_field("description")?;
        types.push(TypeDescription { name, description });
    }
    Ok(types)
}

/// The types as a types file that [`read_type_descriptions`] reads back as they are: a JSON array,
/// one record per line, in order, ending with a newline (the layout of the files in
/// `data/binder/`).
pub fn to_json(types: &[TypeDescription]) -> String {
    let quote = |s: &str| Value::String(s.to_string()).to_string();
    let records: Vec<String> = types
        .iter()
        .map(|t| {
            format!(
                "  {{\"name\": {}, \"description\": {}}}",
                quote(&t.name),
                quote(&t.description)
            )
        })
        .collect();
    if records.is_empty() {
        return "[]\n".to_string();
    }
    format!("[\n{}\n]\n", records.join(",\n"))
}

/// A record of the array: an object's entries in the file's order (a repeated key kept twice), or
/// what else the record is, for a message.
enum Record {
    Object(Vec<(String, Value)>),
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Record;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Record::Object(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Record::Other("an array"))
            }
            fn visit_unit<E>(self) -> Result<Record, E> {
                Ok(Record::Other("null"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Record, E> {
                Ok(Record::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Record, E> {
                Ok(Record::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Record, E> {
                Ok(Record::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Record, E> {
                Ok(Record::Other("a number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Record, E> {
                Ok(Record::Other("a string"))
            }
        }
        d.deserialize_any(Any)
    }
}

/// What a JSON value is, for a message (its content is not quoted).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<TypeDescription>, DataError> {
        read_type_descriptions("types.json", text)
    }

    fn td(name: &str, description: &str) -> TypeDescription {
        TypeDescription {
            name: name.into(),
            description: description.into(),
        }
    }

    #[test]
    fn records_are_read_in_the_files_order() {
        let text = r#"[{"name": "PER", "description": "a person."},
            {"description": "a place.", "name": "LOC"},
            {"name": "ORG", "description": "  a company.  "}]"#;
        let types = read(text).unwrap();
        assert_eq!(
            types,
            [
                td("PER", "a person."),
                td("LOC", "a place."),
                td("ORG", "  a company.  ")
            ]
        );
    }

    #[test]
    fn to_json_reads_back_as_it_was() {
        let types = vec![
            td(
                "Chemical",
                "a \"quoted\" word, a back\\slash,\na new line and ünïcödé.",
            ),
            td("B", "b."),
        ];
        let json = to_json(&types);
        assert_eq!(read(&json).unwrap(), types);
        assert!(json.starts_with("[\n  {\"name\": \"Chemical\", "), "{json}");
        assert!(json.ends_with("}\n]\n"), "{json}");
        assert_eq!(to_json(&[]), "[]\n");
    }

    /// Every problem fails the read with the record's index and the field.
    #[test]
    fn bad_files_name_the_record_and_the_field() {
        let ok = r#"{"name": "A", "description": "a."}"#;
        let cases: [(String, &str, &str); 17] = [
            (format!("[{ok}, 3]"), "[1]", "got a number"),
            (
                format!("[{ok}, {{\"description\": \"b.\"}}]"),
                "[1].name",
                "missing field",
            ),
            (
                format!("[{ok}, {{\"name\": null, \"description\": \"b.\"}}]"),
                "[1].name",
                "expected a string, got null",
            ),
            (
                format!("[{ok}, {{\"name\": 7, \"description\": \"b.\"}}]"),
                "[1].name",
                "expected a string, got a number",
            ),
            (
                format!("[{ok}, {{\"name\": \" \\t\", \"description\": \"b.\"}}]"),
                "[1].name",
                "empty name",
            ),
            (
                format!("[{ok}, {{\"name\": \"B C\", \"description\": \"b.\"}}]"),
                "[1].name",
                "`B C` contains whitespace",
            ),
            (
                format!("[{ok}, {{\"name\": \" B\", \"description\": \"b.\"}}]"),
                "[1].name",
                "contains whitespace",
            ),
            (
                format!("[{ok}, {{\"name\": \"B\"}}]"),
                "[1].description",
                "missing field",
            ),
            (
                format!("[{ok}, {{\"name\": \"B\", \"description\": [\"b\"]}}]"),
                "[1].description",
                "expected a string, got an array",
            ),
            (
                format!("[{ok}, {{\"name\": \"B\", \"description\": \"\"}}]"),
                "[1].description",
                "empty description",
            ),
            (
                format!("[{ok}, {{\"name\": \"B\", \"description\": \" \\n \"}}]"),
                "[1].description",
                "empty description",
            ),
            (
                format!("[{ok}, {{\"name\": \"B\", \"description\": \"b.\"}}, {ok}]"),
                "[2].name",
                "`A` is also the name of record [0]",
            ),
            (
                format!("[{ok}, {{\"name\": \"B\", \"descripton\": \"b.\"}}]"),
                "[1]",
                "unknown field `descripton`",
            ),
            (
                format!("[{ok}, {{\"name\": \"B\", \"description\": \"b.\", \"id\": 3}}]"),
                "[1]",
                "unknown field `id`",
            ),
            (
                format!("[{ok}, {{\"name\": \"B\", \"name\": \"C\", \"description\": \"b.\"}}]"),
                "[1]",
                "the field `name` is given twice",
            ),
            (format!("[{ok}, [{ok}]]"), "[1]", "got an array"),
            (
                format!("[{ok}, {{\"name\": \"B\", \"description\": \"b.\"}}, {{}}]"),
                "[2].name",
                "missing field",
            ),
        ];
        for (text, field, says) in &cases {
            let e = read(text).unwrap_err();
            assert_eq!((e.source_name.as_str(), e.line), ("types.json", 0), "{e}");
            assert_eq!(e.field, *field, "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
            assert!(e.to_string().contains(&format!("field `{field}`")), "{e}");
        }
        let e = read(&format!(
            "[{ok},\n{{\"name\": \"B\", \"description\": \"b.\"}},\n{{\"name\": \"A\", \"description\": \"c.\"}}]"
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "types.json:0: field `[2].name`: `A` is also the name of record [0]: each type is \
             listed once"
        );
    }

    #[test]
    fn a_file_that_is_no_array_of_types_fails() {
        let e = read("").unwrap_err();
        assert_eq!(e.field, "file");
        assert!(e.message.contains("invalid JSON"), "{e}");
        let e = read("[\n{\"name\": \"A\",\n\"description\": }]").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("file", 3), "{e}");
        let e = read(r#"{"name": "A", "description": "a."}"#).unwrap_err();
        assert_eq!(e.field, "file");
        assert!(e.message.contains("expected a JSON array"), "{e}");
        assert!(e.message.contains("got an object"), "{e}");
        let e = read(" [ ] ").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("file", 0), "{e}");
        assert!(e.message.contains("no entity types"), "{e}");
    }

    #[test]
    fn quoted_file_text_is_escaped_and_cut() {
        let long = format!("{}\u{1b}[2J", "x".repeat(50));
        let text = format!(
            "[{{\"name\": \"A\", \"description\": \"a.\", {}: 1}}]",
            Value::String(long.clone())
        );
        let e = read(&text).unwrap_err();
        assert!(
            e.message.contains(&format!("`{}...`", "x".repeat(40))),
            "{e}"
        );
        assert!(!e.message.contains('\u{1b}'), "{e}");
        let e = read("[{\"name\": \"a\\u001bb c\", \"description\": \"a.\"}]").unwrap_err();
        assert!(e.message.contains("`a\\u{1b}b c`"), "{e}");
        assert_eq!(quoted(&"é".repeat(40)), format!("`{}`", "é".repeat(40)));
    }

    /// The files shipped in `data/binder/` read cleanly and are written as [`to_json`] writes them.
    #[test]
    fn shipped_type_files_read_cleanly() {
        let files = [
            (
                "bc5cdr_types.json",
                include_str!("../../../../data/binder/bc5cdr_types.json"),
                &["Chemical", "Disease"][..],
            ),
            (
                "ncbi_disease_types.json",
                include_str!("../../../../data/binder/ncbi_disease_types.json"),
                &["Disease"][..],
            ),
            (
                "catalog_types.json",
                include_str!("../../../../data/binder/catalog_types.json"),
                &crate::labeling::ENTITY_TYPES[..],
            ),
        ];
        for (source, text, names) in files {
            let types = read_type_descriptions(source, text).unwrap();
            let found: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(found, names, "{source}");
            assert_eq!(to_json(&types), text, "{source}");
            for t in &types {
                let d = &t.description;
                assert!(d.ends_with('.') && d.len() < 300, "{source}: {d}");
                assert!(crate::check_tag(&format!("B-{}", t.name)).is_ok());
            }
        }
    }
}
