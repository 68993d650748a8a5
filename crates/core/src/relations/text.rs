//! What a raw text holds for a relation extraction model: its entities with character offsets
//! into it (the tagger's [`Entity`]), and the relations between them. `trainer tag` of a relation
//! model prints one per input line ([`TextRelations::json_line`]); the browser's Relations view
//! shows them and downloads the same lines.
use crate::decode::Entity;

/// A relation found in a text: its type, its arguments (indices into the text's entities) and
/// its score.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoundRelation {
    pub label: String,
    pub head: usize,
    pub tail: usize,
    pub score: f32,
}

/// What a raw text holds for a relation extraction model: its entities with character offsets,
/// and the relations between them. `trainer tag` of a relation model prints one per input line
/// ([`TextRelations::json_line`]), the browser's Relations view shows them and downloads the same
/// lines.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextRelations {
    pub text: String,
    pub entities: Vec<Entity>,
    pub relations: Vec<FoundRelation>,
}

impl TextRelations {
    /// The text's JSON line as `trainer tag` prints it, without the newline: its fields and the
    /// 1-based input `line` it was read from. The one writer of that line, so the browser's
    /// download and the command line cannot drift apart.
    pub fn json_line(&self, line: usize) -> String {
        // Serializing strings, numbers and vectors of them cannot fail.
        let mut value = serde_json::to_value(self).expect("plain records serialize");
        value["line"] = line.into();
        value.to_string()
    }
}
