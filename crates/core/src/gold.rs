//! Hand-checked gold labels.
//!
//! Design choices: the committed gold file holds only ids, labels and **character** offsets into the
//! title — never catalog text, which must not be copied into the repository — one JSON object per
//! line: `{"id": "...", "entities": [{"label": "BRAND", "start": 0, "end": 4}, ...]}`. Character
//! offsets (not word indices) keep the file meaningful to a human and independent of the word
//! segmentation; [`gold_tags`] converts them to IOB2 over `split_words(title)` and rejects spans
//! that do not fall on word boundaries, overlap or leave the title, so a segmentation change can
//! never silently shift gold labels. [`gold_line_from_tags`] is the inverse, used to seed a file for
//! hand correction from the rule labels.

use std::collections::HashMap;

use crate::catalog::CatalogItem;
use crate::error::DataError;
use crate::tags::{iob2_from_spans, spans_from_iob2, Span};
use crate::words::split_words;

/// One gold entity: type and character span in the title (end exclusive).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GoldEntity {
    pub label: String,
    pub start: usize,
    pub end: usize,
}

/// The gold entities of one catalog item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GoldLine {
    pub id: String,
    pub entities: Vec<GoldEntity>,
}

/// Parses gold JSON lines (blank lines ignored). Checks the shape of each line, non-empty ids and
/// labels, `start < end`, and that no id appears twice; offsets are checked against titles later
/// by [`gold_tags`].
pub fn read_gold(source_name: &str, text: &str) -> Result<Vec<GoldLine>, DataError> {
    Ok(read_gold_lines(source_name, text)?
        .into_iter()
        .map(|(_, g)| g)
        .collect())
}

/// Like [`read_gold`], with the 1-based line number of each entry.
pub fn read_gold_lines(source_name: &str, text: &str) -> Result<Vec<(usize, GoldLine)>, DataError> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |f: &str, m: String| DataError::new(source_name, line_no, f, m);
        let g: GoldLine = serde_json::from_str(line).map_err(|e| {
            let msg = e.to_string();
            let field = ["id", "entities", "label", "start", "end"]
                .into_iter()
                .find(|f| msg.contains(&format!("`{f}`")))
                .unwrap_or("record");
            err(field, format!("invalid gold line: {msg}"))
        })?;
        if g.id.trim().is_empty() {
            return Err(err("id", "empty id".into()));
        }
        for (k, e) in g.entities.iter().enumerate() {
            let f = format!("entities[{k}]");
            if e.label.trim().is_empty() || e.label.chars().any(char::is_whitespace) {
                return Err(err(&f, format!("bad label {:?}", e.label)));
            }
            if e.start >= e.end {
                return Err(err(&f, format!("empty span {}..{}", e.start, e.end)));
            }
        }
        if let Some(first) = seen.insert(g.id.clone(), line_no) {
            return Err(err(
                "id",
                format!("duplicate id `{}` (first at line {first})", g.id),
            ));
        }
        out.push((line_no, g));
    }
    Ok(out)
}

/// IOB2 tags over `split_words(title)` for a gold line; `line` is used in error messages.
pub fn gold_tags(
    source_name: &str,
    line: usize,
    gold: &GoldLine,
    title: &str,
) -> Result<Vec<String>, DataError> {
    let words = split_words(title);
    let n_chars = title.chars().count();
    let mut spans: Vec<Span> = Vec::new();
    for (k, e) in gold.entities.iter().enumerate() {
        let err = |m: String| {
            DataError::new(
                source_name,
                line,
                format!("entities[{k}]"),
                format!("{} {}..{}: {m}", e.label, e.start, e.end),
            )
        };
        if e.start >= e.end || e.end > n_chars {
            return Err(err(format!(
                "out of range for a title of {n_chars} characters"
            )));
        }
        let start = words.iter().position(|w| w.start == e.start);
        let end = words.iter().position(|w| w.end == e.end);
        let (Some(s), Some(last)) = (start, end) else {
            return Err(err("does not start and end on word boundaries".into()));
        };
        if let Some(other) = spans.iter().find(|o| s < o.end && o.start <= last) {
            return Err(err(format!("overlaps the {} entity", other.label)));
        }
        spans.push(Span {
            label: e.label.clone(),
            start: s,
            end: last + 1,
        });
    }
    Ok(iob2_from_spans(words.len(), &spans))
}

/// The gold line that [`gold_tags`] maps back to `tags` (strict spans, character offsets).
pub fn gold_line_from_tags(id: &str, title: &str, tags: &[String]) -> GoldLine {
    let words = split_words(title);
    let n = words.len().min(tags.len());
    let entities = spans_from_iob2(&tags[..n])
        .into_iter()
        .map(|s| GoldEntity {
            label: s.label,
            start: words[s.start].start,
            end: words[s.end - 1].end,
        })
        .collect();
    GoldLine {
        id: id.to_string(),
        entities,
    }
}

/// A gold line joined with its catalog item.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldExample {
    /// Line of the gold file.
    pub line: usize,
    /// Index into the catalog items.
    pub item_index: usize,
    /// Gold IOB2 tags over `split_words(title)`.
    pub tags: Vec<String>,
}

/// Reads a gold file and joins it with the catalog by id; an id missing from the catalog or a span
/// that does not fit its title is an error naming the gold line.
pub fn join_gold(
    source_name: &str,
    text: &str,
    items: &[CatalogItem],
) -> Result<Vec<GoldExample>, DataError> {
    let by_id: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.id.as_str(), i))
        .collect();
    read_gold_lines(source_name, text)?
        .into_iter()
        .map(|(line, g)| {
            let &item_index = by_id.get(g.id.as_str()).ok_or_else(|| {
                DataError::new(
                    source_name,
                    line,
                    "id",
                    format!("id `{}` is not in the catalog", g.id),
                )
            })?;
            let tags = gold_tags(source_name, line, &g, &items[item_index].title)?;
            Ok(GoldExample {
                line,
                item_index,
                tags,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    const TITLE: &str = "Kesar Looms Women 💖 Navy Blue Kurta Set with Jacket";

    #[test]
    fn round_trip_through_text() {
        let tags = v(&[
            "B-BRAND", "I-BRAND", "B-GENDER", "O", "B-COLOR", "I-COLOR", "B-TYPE", "I-TYPE", "O",
            "O",
        ]);
        let g = gold_line_from_tags("42", TITLE, &tags);
        assert_eq!(
            g.entities[0],
            GoldEntity {
                label: "BRAND".into(),
                start: 0,
                end: 11
            }
        );
        assert_eq!(
            g.entities[2],
            GoldEntity {
                label: "COLOR".into(),
                start: 20,
                end: 29
            }
        );
        let text = serde_json::to_string(&g).unwrap() + "\n\n";
        let back = read_gold("g.jsonl", &text).unwrap();
        assert_eq!(back, vec![g.clone()]);
        assert_eq!(gold_tags("g.jsonl", 1, &back[0], TITLE).unwrap(), tags);
    }

    fn gold(entities: &[(&str, usize, usize)]) -> GoldLine {
        GoldLine {
            id: "1".into(),
            entities: entities
                .iter()
                .map(|&(l, s, e)| GoldEntity {
                    label: l.into(),
                    start: s,
                    end: e,
                })
                .collect(),
        }
    }

    #[test]
    fn bad_spans_are_rejected_with_line_and_entity() {
        let e = gold_tags("g", 5, &gold(&[("BRAND", 0, 3)]), TITLE).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (5, "entities[0]"));
        assert!(e.message.contains("word boundaries"), "{e}");
        let e = gold_tags("g", 5, &gold(&[("X", 0, 5), ("Y", 40, 99)]), TITLE).unwrap_err();
        assert!(
            e.field == "entities[1]" && e.message.contains("out of range"),
            "{e}"
        );
        let e = gold_tags("g", 5, &gold(&[("C", 20, 29), ("D", 25, 35)]), TITLE).unwrap_err();
        assert!(e.message.contains("overlaps the C"), "{e}");
        assert!(gold_tags("g", 5, &gold(&[]), TITLE)
            .unwrap()
            .iter()
            .all(|t| t == "O"));
    }

    #[test]
    fn read_gold_errors() {
        let e = read_gold("g.jsonl", "{\"id\": \"1\"}").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "entities"));
        let e = read_gold(
            "g.jsonl",
            "\n{\"id\": \"1\", \"entities\": [{\"label\": \"A\", \"start\": 3}]}",
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "end"));
        let e = read_gold(
            "g.jsonl",
            "{\"id\": \"1\", \"entities\": [{\"label\": \"A\", \"start\": 3, \"end\": 3}]}",
        )
        .unwrap_err();
        assert_eq!(e.field, "entities[0]");
        let ok = "{\"id\": \"1\", \"entities\": []}";
        let e = read_gold("g.jsonl", &format!("{ok}\n{ok}")).unwrap_err();
        assert!(e.line == 2 && e.message.contains("first at line 1"), "{e}");
        assert_eq!(read_gold("g.jsonl", "nope").unwrap_err().field, "record");
    }

    #[test]
    fn join_with_catalog() {
        let item = CatalogItem {
            id: "42".into(),
            title: TITLE.into(),
            brand: "Kesar Looms".into(),
            gender: "Women".into(),
            colour: "Navy Blue".into(),
            description: String::new(),
            line: 2,
        };
        let text =
            "{\"id\": \"42\", \"entities\": [{\"label\": \"TYPE\", \"start\": 30, \"end\": 39}]}\n";
        let ex = join_gold("g", text, std::slice::from_ref(&item)).unwrap();
        assert_eq!(ex[0].item_index, 0);
        assert_eq!(ex[0].tags[6..8], v(&["B-TYPE", "I-TYPE"]));
        let e = join_gold("g", "{\"id\": \"9\", \"entities\": []}", &[item]).unwrap_err();
        assert!(e.field == "id" && e.message.contains("not in the catalog"));
    }

    #[test]
    fn fixture_gold_joins_the_fixture_catalog() {
        let catalog = include_str!("../../../tests/fixtures/catalog_small.csv");
        let gold = include_str!("../../../tests/fixtures/gold_small.jsonl");
        let items = crate::catalog::read_catalog("catalog_small.csv", catalog)
            .unwrap()
            .items;
        let ex = join_gold("gold_small.jsonl", gold, &items).unwrap();
        assert_eq!(ex.len(), 5);
        let covers = ex
            .iter()
            .find(|e| items[e.item_index].id == "90000010")
            .unwrap();
        assert_eq!(covers.line, 5);
        let words = split_words(&items[covers.item_index].title);
        let typed: Vec<&str> = words
            .iter()
            .zip(&covers.tags)
            .filter(|(_, t)| t.ends_with("TYPE"))
            .map(|(w, _)| w.text.as_str())
            .collect();
        assert_eq!(typed, ["Cushion", "Covers"]);
    }
}
