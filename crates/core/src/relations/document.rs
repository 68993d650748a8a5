//! SpERT's data formats: the types file and the JSON documents, read into word-indexed mentions.
//!
//! A types file is `{"entities": {NAME: {"short", "verbose"}, ...}, "relations": {NAME: {"short",
//! "verbose", "symmetric"}, ...}}`. The order of the names is meaningful: a type's index is its
//! position (the model's class for entity type `i` is `i + 1`, class 0 being "no entity", as in
//! SpERT), so the reader keeps the file's order rather than sorting the keys. `short` and `verbose`
//! are display names and default to the type's name; `symmetric` is required, because it changes
//! how relations are compared (see below) and a silent default would change the scores.
//!
//! A documents file is a JSON array of `{"tokens": [...], "entities": [{"type", "start", "end"}],
//! "relations": [{"type", "head", "tail"}]}`: `start`/`end` are word (token) indices with `end`
//! exclusive, `head`/`tail` index the document's entity list. Other fields (`orig_id`) are ignored.
//!
//! Design choices:
//! - A bad document is skipped and reported (source, its index in the array, the field, what is
//!   wrong), and every other document is kept, as `labeled.rs` does; only text that is not a JSON
//!   array, or an array without a usable document, is an error. SpERT itself stops at the first bad
//!   document with a Python exception; a report is more useful, but a caller that evaluates must
//!   refuse (or at least show) a non-empty `skipped`, since a skipped test document changes the
//!   test set.
//! - Checked: a non-empty token list of strings; each entity's type is in the type set and its span
//!   lies inside the tokens and is non-empty; each relation's type is in the type set and its
//!   `head` and `tail` are different entities of the list. Duplicate entities or relations, and
//!   overlapping (nested) entities, are kept: SpERT accepts them and ADE has nested entities.
//! - For a symmetric relation type, the reader orders the arguments so that the head starts first
//!   (swapping only when the tail starts strictly before the head), as SpERT's reader does;
//!   decoding applies the same rule to predictions, so a symmetric relation matches in either
//!   direction.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::DataError;

/// A range of words, `end` exclusive.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct WordSpan {
    pub start: usize,
    pub end: usize,
}

impl WordSpan {
    pub fn new(start: usize, end: usize) -> Self {
        WordSpan { start, end }
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the two spans share a word.
    pub fn overlaps(&self, other: &WordSpan) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// An entity: a type index into [`TypeSet::entities`] and a word span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EntityMention {
    pub ty: usize,
    pub start: usize,
    pub end: usize,
}

impl EntityMention {
    pub fn span(&self) -> WordSpan {
        WordSpan::new(self.start, self.end)
    }
}

/// A relation: a type index into [`TypeSet::relations`], `head` and `tail` index the document's
/// entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RelationMention {
    pub ty: usize,
    pub head: usize,
    pub tail: usize,
}

/// A relation with its arguments spelled out rather than indexed: what decoding produces and
/// evaluation compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RelationTriple {
    pub head: EntityMention,
    pub tail: EntityMention,
    pub ty: usize,
}

impl RelationTriple {
    /// For a symmetric type, the arguments ordered so that the head starts first (SpERT swaps only
    /// when the tail starts strictly before the head; ties keep the given order).
    pub fn canonical(self, symmetric: bool) -> Self {
        if symmetric && self.tail.start < self.head.start {
            RelationTriple {
                head: self.tail,
                tail: self.head,
                ty: self.ty,
            }
        } else {
            self
        }
    }
}

/// One sentence (SpERT calls it a document) with its gold entities and relations.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Position in the file's array (0-based), as errors name it.
    pub index: usize,
    pub tokens: Vec<String>,
    pub entities: Vec<EntityMention>,
    pub relations: Vec<RelationMention>,
}

impl Document {
    /// The relations with their arguments spelled out (in the reader's canonical order).
    ///
    /// Panics if a relation indexes past the entities (the reader never produces such a document).
    pub fn triples(&self) -> Vec<RelationTriple> {
        self.relations
            .iter()
            .map(|r| RelationTriple {
                head: self.entities[r.head],
                tail: self.entities[r.tail],
                ty: r.ty,
            })
            .collect()
    }
}

/// A problem in one document of a documents file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_name}: document {document}: {field}: {message}")]
pub struct DocumentError {
    /// Name of the input (usually a path), only used in messages.
    pub source_name: String,
    /// Position in the file's array, 0-based (`data[17]` in Python).
    pub document: usize,
    /// The JSON field, with indices (`entities[2].end`), or `document` for the whole record.
    pub field: String,
    pub message: String,
}

/// What a documents file held: its documents and the problems of those skipped.
#[derive(Debug, Default)]
pub struct DocumentRead {
    pub documents: Vec<Document>,
    pub skipped: Vec<DocumentError>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntityType {
    pub name: String,
    pub short: String,
    pub verbose: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelationType {
    pub name: String,
    pub short: String,
    pub verbose: String,
    /// Whether `(a, b)` and `(b, a)` are the same relation.
    pub symmetric: bool,
}

/// The entity and relation types of a dataset, in the types file's order.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TypeSet {
    pub entities: Vec<EntityType>,
    pub relations: Vec<RelationType>,
}

impl TypeSet {
    /// The index of the entity type called `name`.
    pub fn entity(&self, name: &str) -> Option<usize> {
        self.entities.iter().position(|t| t.name == name)
    }

    /// The index of the relation type called `name`.
    pub fn relation(&self, name: &str) -> Option<usize> {
        self.relations.iter().position(|t| t.name == name)
    }

    /// The types as a SpERT types file, in order, so that [`read_types`] reads them back as
    /// they are (a trained model stores its types this way). Written entry by entry because a
    /// JSON map would sort the names, and the order is the model's class order.
    pub fn to_spert_json(&self) -> String {
        let quote = |s: &str| Value::String(s.to_string()).to_string();
        let entities: Vec<String> = (self.entities.iter())
            .map(|t| {
                format!(
                    "    {}: {{\"short\": {}, \"verbose\": {}}}",
                    quote(&t.name),
                    quote(&t.short),
                    quote(&t.verbose)
                )
            })
            .collect();
        let relations: Vec<String> = (self.relations.iter())
            .map(|t| {
                format!(
                    "    {}: {{\"short\": {}, \"verbose\": {}, \"symmetric\": {}}}",
                    quote(&t.name),
                    quote(&t.short),
                    quote(&t.verbose),
                    t.symmetric
                )
            })
            .collect();
        format!(
            "{{\n  \"entities\": {{\n{}\n  }},\n  \"relations\": {{\n{}\n  }}\n}}\n",
            entities.join(",\n"),
            relations.join(",\n")
        )
    }
}

/// A JSON object's entries in the file's order (serde_json's `Map` sorts them unless a feature is
/// on, and type order is meaningful).
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

#[derive(serde::Deserialize)]
struct TypesFile {
    entities: Ordered,
    relations: Ordered,
}

/// Reads a SpERT types file; any problem fails the read (the file is small and every type in it
/// matters). Field problems have line 0 and name the field as `relations.Kill.symmetric`.
pub fn read_types(source: &str, text: &str) -> Result<TypeSet, DataError> {
    let file: TypesFile = serde_json::from_str(text).map_err(|e| {
        DataError::new(source, e.line(), "file", format!("invalid types file: {e}"))
    })?;
    let err = |field: String, message: &str| DataError::new(source, 0, field, message);
    let mut types = TypeSet::default();
    for (group, entries) in [
        ("entities", &file.entities.0),
        ("relations", &file.relations.0),
    ] {
        for (i, (name, value)) in entries.iter().enumerate() {
            let at = |f: &str| format!("{group}.{name}{f}");
            if name.trim().is_empty() {
                return Err(err(at(""), "empty type name"));
            }
            if entries[..i].iter().any(|(n, _)| n == name) {
                return Err(err(at(""), "the type is listed twice"));
            }
            let obj = value
                .as_object()
                .ok_or_else(|| err(at(""), "expected a JSON object"))?;
            let text_field = |f: &str| match obj.get(f) {
                None | Some(Value::Null) => Ok(name.clone()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(err(at(&format!(".{f}")), "expected a string")),
            };
            let (short, verbose) = (text_field("short")?, text_field("verbose")?);
            if group == "entities" {
                types.entities.push(EntityType {
                    name: name.clone(),
                    short,
                    verbose,
                });
            } else {
                let symmetric = match obj.get("symmetric") {
                    Some(Value::Bool(b)) => *b,
                    None => return Err(err(at(".symmetric"), "missing field")),
                    Some(_) => return Err(err(at(".symmetric"), "expected true or false")),
                };
                types.relations.push(RelationType {
                    name: name.clone(),
                    short,
                    verbose,
                    symmetric,
                });
            }
        }
    }
    if types.entities.is_empty() {
        return Err(err("entities".into(), "no entity types"));
    }
    Ok(types)
}

/// Reads a SpERT documents file against `types`; an error only when the text is not a JSON array
/// or no document in it is usable.
pub fn read_documents(
    source: &str,
    text: &str,
    types: &TypeSet,
) -> Result<DocumentRead, DataError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| DataError::new(source, e.line(), "file", format!("invalid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(DataError::new(
            source,
            0,
            "file",
            "expected a JSON array of documents",
        ));
    };
    let mut read = DocumentRead::default();
    for (index, item) in items.iter().enumerate() {
        match read_document(item, index, types) {
            Ok(doc) => read.documents.push(doc),
            Err((field, message)) => read.skipped.push(DocumentError {
                source_name: source.to_string(),
                document: index,
                field,
                message,
            }),
        }
    }
    if read.documents.is_empty() {
        return Err(DataError::nothing_usable(source, "document", &read.skipped));
    }
    Ok(read)
}

/// A field (with indices) and what is wrong with it.
type Problem = (String, String);

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    (field.into(), message.into())
}

fn array<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a Vec<Value>, Problem> {
    match obj.get(field) {
        Some(Value::Array(a)) => Ok(a),
        None => Err(problem(field, "missing field")),
        Some(_) => Err(problem(field, "expected a JSON array")),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, Problem> {
    v.as_object()
        .ok_or_else(|| problem(at, "expected a JSON object"))
}

fn index(obj: &Map<String, Value>, at: &str, field: &str) -> Result<usize, Problem> {
    let at = format!("{at}.{field}");
    match obj.get(field) {
        None => Err(problem(at, "missing field")),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| problem(at, format!("expected a non-negative integer, got {v}"))),
    }
}

fn type_name<'a>(obj: &'a Map<String, Value>, at: &str) -> Result<&'a str, Problem> {
    match obj.get("type") {
        Some(Value::String(s)) => Ok(s),
        None => Err(problem(format!("{at}.type"), "missing field")),
        Some(_) => Err(problem(format!("{at}.type"), "expected a string")),
    }
}

fn known(names: impl Iterator<Item = String>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

fn read_document(v: &Value, index_in_file: usize, types: &TypeSet) -> Result<Document, Problem> {
    let obj = object(v, "document")?;
    let tokens = array(obj, "tokens")?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_str()
                .map(str::to_string)
                .ok_or_else(|| problem(format!("tokens[{i}]"), "expected a string"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if tokens.is_empty() {
        return Err(problem("tokens", "no tokens"));
    }
    let mut entities = Vec::new();
    for (i, e) in array(obj, "entities")?.iter().enumerate() {
        let at = format!("entities[{i}]");
        let e = object(e, &at)?;
        let name = type_name(e, &at)?;
        let ty = types.entity(name).ok_or_else(|| {
            let names = known(types.entities.iter().map(|t| t.name.clone()));
            problem(
                format!("{at}.type"),
                format!("unknown entity type {name:?} (the types are {names})"),
            )
        })?;
        let (start, end) = (index(e, &at, "start")?, index(e, &at, "end")?);
        if end > tokens.len() {
            let n = tokens.len();
            return Err(problem(
                format!("{at}.end"),
                format!("{end} is past the {n} tokens"),
            ));
        }
        if start >= end {
            return Err(problem(
                format!("{at}.end"),
                format!("{end} is not after start {start}: the span is empty"),
            ));
        }
        entities.push(EntityMention { ty, start, end });
    }
    let mut relations = Vec::new();
    for (i, r) in array(obj, "relations")?.iter().enumerate() {
        let at = format!("relations[{i}]");
        let r = object(r, &at)?;
        let name = type_name(r, &at)?;
        let ty = types.relation(name).ok_or_else(|| {
            let names = known(types.relations.iter().map(|t| t.name.clone()));
            problem(
                format!("{at}.type"),
                format!("unknown relation type {name:?} (the types are {names})"),
            )
        })?;
        let (mut head, mut tail) = (index(r, &at, "head")?, index(r, &at, "tail")?);
        for (field, k) in [("head", head), ("tail", tail)] {
            if k >= entities.len() {
                let n = entities.len();
                return Err(problem(
                    format!("{at}.{field}"),
                    format!("{k} is past the {n} entities"),
                ));
            }
        }
        if head == tail {
            return Err(problem(
                format!("{at}.tail"),
                format!("equals the head ({head}): a relation needs two entities"),
            ));
        }
        if types.relations[ty].symmetric && entities[tail].start < entities[head].start {
            std::mem::swap(&mut head, &mut tail);
        }
        relations.push(RelationMention { ty, head, tail });
    }
    Ok(Document {
        index: index_in_file,
        tokens,
        entities,
        relations,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small types file in CoNLL04's order (not alphabetical) plus a symmetric relation.
    pub(crate) const TYPES: &str = r#"{"entities": {"Loc": {"short": "Loc", "verbose": "Location"},
        "Org": {"short": "Org", "verbose": "Organization"}, "Peop": {"short": "Peop", "verbose": "People"},
        "Other": {"short": "Other", "verbose": "Other"}},
      "relations": {"Work_For": {"short": "Work", "verbose": "Work for", "symmetric": false},
        "Near": {"short": "Near", "verbose": "Near", "symmetric": true}}}"#;

    pub(crate) fn types() -> TypeSet {
        read_types("types.json", TYPES).unwrap()
    }

    #[test]
    fn types_keep_the_files_order() {
        let t = types();
        let names: Vec<&str> = t.entities.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Loc", "Org", "Peop", "Other"]);
        assert_eq!(t.entities[1].verbose, "Organization");
        assert_eq!(
            (t.relation("Near"), t.relations[1].symmetric),
            (Some(1), true)
        );
        assert_eq!(t.entity("None"), None);
        let minimal = r#"{"entities": {"X": {}}, "relations": {}}"#;
        let t = read_types("m.json", minimal).unwrap();
        assert_eq!((t.entities[0].short.as_str(), t.relations.len()), ("X", 0));
    }

    #[test]
    fn types_written_as_a_spert_file_read_back_in_order() {
        let mut t = types();
        t.entities[0].verbose = "a \"quoted\" place".into();
        assert_eq!(read_types("w.json", &t.to_spert_json()).unwrap(), t);
        let none = read_types("m.json", r#"{"entities": {"X": {}}, "relations": {}}"#).unwrap();
        assert_eq!(read_types("w.json", &none.to_spert_json()).unwrap(), none);
    }

    #[test]
    fn bad_types_files_fail() {
        let cases = [
            (
                r#"{"entities": {"X": {}}, "relations": {"R": {"short": "R"}}}"#,
                "relations.R.symmetric",
            ),
            (
                r#"{"entities": {"X": {}, "X": {}}, "relations": {}}"#,
                "entities.X",
            ),
            (r#"{"entities": {"X": 3}, "relations": {}}"#, "entities.X"),
            (r#"{"entities": {}, "relations": {}}"#, "entities"),
            (r#"{"entities": {"X": {}}}"#, "file"),
        ];
        for (text, field) in cases {
            let e = read_types("t.json", text).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn documents_are_read_and_symmetric_relations_ordered() {
        let text = r#"[{"tokens": ["Smith", "works", "for", "Acme", "near", "Paris"], "orig_id": 3,
            "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Org", "start": 3, "end": 4},
                         {"type": "Loc", "start": 5, "end": 6}],
            "relations": [{"type": "Work_For", "head": 0, "tail": 1}, {"type": "Near", "head": 2, "tail": 1},
                          {"type": "Work_For", "head": 2, "tail": 1}]}]"#;
        let read = read_documents("d.json", text, &types()).unwrap();
        assert!(read.skipped.is_empty());
        let d = &read.documents[0];
        assert_eq!(d.tokens.len(), 6);
        assert_eq!(
            d.entities[1],
            EntityMention {
                ty: 1,
                start: 3,
                end: 4
            }
        );
        // Near (symmetric) is turned so that its head starts first; Work_For is not.
        let r: Vec<(usize, usize, usize)> =
            d.relations.iter().map(|r| (r.ty, r.head, r.tail)).collect();
        assert_eq!(r, [(0, 0, 1), (1, 1, 2), (0, 2, 1)]);
        assert_eq!(d.triples()[1].head.start, 3);
    }

    #[test]
    fn bad_documents_are_reported_and_the_others_kept() {
        let good = r#"{"tokens": ["a", "b"], "entities": [{"type": "Loc", "start": 0, "end": 1}], "relations": []}"#;
        let docs = [
            good,
            r#"{"tokens": [], "entities": [], "relations": []}"#,
            r#"{"tokens": ["a", 3], "entities": [], "relations": []}"#,
            r#"{"tokens": ["a"], "entities": [{"type": "Loc", "start": 0, "end": 2}], "relations": []}"#,
            r#"{"tokens": ["a"], "entities": [{"type": "Loc", "start": 1, "end": 1}], "relations": []}"#,
            r#"{"tokens": ["a"], "entities": [{"type": "City", "start": 0, "end": 1}], "relations": []}"#,
            r#"{"tokens": ["a"], "entities": [{"type": "Loc", "start": -1, "end": 1}], "relations": []}"#,
            r#"{"tokens": ["a", "b"], "entities": [{"type": "Loc", "start": 0, "end": 1}], "relations": [{"type": "Work_For", "head": 0, "tail": 1}]}"#,
            r#"{"tokens": ["a", "b"], "entities": [{"type": "Loc", "start": 0, "end": 1}], "relations": [{"type": "Work_For", "head": 0, "tail": 0}]}"#,
            r#"{"tokens": ["a", "b"], "entities": [{"type": "Loc", "start": 0, "end": 1}, {"type": "Loc", "start": 1, "end": 2}], "relations": [{"type": "Kill", "head": 0, "tail": 1}]}"#,
            r#"{"tokens": ["a"], "relations": []}"#,
            r#"["a"]"#,
            good,
        ];
        let text = format!("[{}]", docs.join(",\n"));
        let read = read_documents("b.json", &text, &types()).unwrap();
        assert_eq!(read.documents.len(), 2);
        assert_eq!(read.documents[1].index, 12);
        let at: Vec<(usize, &str)> = read
            .skipped
            .iter()
            .map(|e| (e.document, e.field.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (1, "tokens"),
                (2, "tokens[1]"),
                (3, "entities[0].end"),
                (4, "entities[0].end"),
                (5, "entities[0].type"),
                (6, "entities[0].start"),
                (7, "relations[0].tail"),
                (8, "relations[0].tail"),
                (9, "relations[0].type"),
                (10, "entities"),
                (11, "document"),
            ]
        );
        assert_eq!(
            read.skipped[2].to_string(),
            "b.json: document 3: entities[0].end: 2 is past the 1 tokens"
        );
        assert!(read.skipped[4].message.contains("Loc, Org, Peop, Other"));
    }

    #[test]
    fn a_file_without_a_usable_document_is_an_error() {
        let t = types();
        assert!(read_documents("e.json", "", &t)
            .unwrap_err()
            .message
            .contains("invalid JSON"));
        let e = read_documents("e.json", "[\n{\"tokens\": [}", &t).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = read_documents("e.json", r#"{"tokens": []}"#, &t).unwrap_err();
        assert!(e.message.contains("array"), "{e}");
        let e = read_documents("e.json", "[]", &t).unwrap_err();
        assert!(e.message.contains("no usable document (0 skipped)"), "{e}");
        let e = read_documents("e.json", "[{}]", &t).unwrap_err();
        assert!(
            e.message
                .contains("e.json: document 0: tokens: missing field"),
            "{e}"
        );
    }
}
