//! Reader for the retail catalog CSV (`myntra_products_catalog.csv` format).
//!
//! Design choices: the reader parses a `&str` (I/O is the caller's job, so the crate also builds for
//! wasm) and separates the two kinds of failure. Problems with the whole file (empty input, a
//! required column missing from the header) are an `Err`. Problems with single rows (wrong number of
//! fields, CSV errors, empty id or title, over-long title, duplicate id) skip only that row and are
//! returned in [`CatalogRead::skipped`], so nothing is silently lost and one bad row never aborts
//! the others. Columns are found by header name, not position; extra columns are allowed. Fields are
//! trimmed because `PrimaryColor` often carries a leading space. Line numbers come from the `csv`
//! crate's record positions: the 1-based physical line where the record starts, which is what an
//! editor shows even when a quoted description spans several lines.

use std::collections::HashMap;

use crate::error::DataError;

/// One catalog product.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CatalogItem {
    /// `ProductID`
    pub id: String,
    /// `ProductName`
    pub title: String,
    /// `ProductBrand`
    pub brand: String,
    /// `Gender`
    pub gender: String,
    /// `PrimaryColor` (may be empty)
    pub colour: String,
    /// `Description`
    pub description: String,
    /// 1-based physical line where the record starts.
    pub line: usize,
}

/// The items that were read and the rows that were skipped, each with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRead {
    pub items: Vec<CatalogItem>,
    pub skipped: Vec<DataError>,
}

/// Titles longer than this many characters are rejected as corrupt rows (real titles are < 200).
pub const MAX_TITLE_CHARS: usize = 1000;

const ID: &str = "ProductID";
const TITLE: &str = "ProductName";
const BRAND: &str = "ProductBrand";
const GENDER: &str = "Gender";
const DESCRIPTION: &str = "Description";
const COLOUR: &str = "PrimaryColor";
const REQUIRED: [&str; 6] = [ID, TITLE, BRAND, GENDER, DESCRIPTION, COLOUR];

/// Parses catalog CSV text; `source_name` is only used in error messages.
pub fn read_catalog(source_name: &str, text: &str) -> Result<CatalogRead, DataError> {
    if text.trim().is_empty() {
        return Err(DataError::new(
            source_name,
            0,
            "header",
            "empty input: no header line",
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| DataError::new(source_name, 1, "header", format!("unreadable header: {e}")))?
        .clone();
    let columns: HashMap<&str, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().trim_start_matches('\u{feff}'), i))
        .collect();
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|c| !columns.contains_key(c))
        .collect();
    if !missing.is_empty() {
        return Err(DataError::new(
            source_name,
            1,
            missing.join(", "),
            format!("missing required column(s): {}", missing.join(", ")),
        ));
    }
    let col = |name: &str| columns[name];
    let n_fields = header.len();

    let mut items: Vec<CatalogItem> = Vec::new();
    let mut skipped = Vec::new();
    let mut first_line_of_id: HashMap<String, usize> = HashMap::new();
    for result in reader.records() {
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                skipped.push(DataError::new(
                    source_name,
                    line,
                    "record",
                    format!("CSV error: {e}"),
                ));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let skip = |field: &str, message: String| DataError::new(source_name, line, field, message);
        if record.len() != n_fields {
            skipped.push(skip(
                "record",
                format!("expected {n_fields} fields, found {}", record.len()),
            ));
            continue;
        }
        let get = |name: &str| record.get(col(name)).unwrap_or("").trim().to_string();
        let item = CatalogItem {
            id: get(ID),
            title: get(TITLE),
            brand: get(BRAND),
            gender: get(GENDER),
            colour: get(COLOUR),
            description: get(DESCRIPTION),
            line,
        };
        let title_chars = item.title.chars().count();
        if item.id.is_empty() {
            skipped.push(skip(ID, "empty product id".into()));
        } else if item.title.is_empty() {
            skipped.push(skip(TITLE, "empty title".into()));
        } else if title_chars > MAX_TITLE_CHARS {
            skipped.push(skip(
                TITLE,
                format!("title has {title_chars} characters, more than {MAX_TITLE_CHARS}"),
            ));
        } else if let Some(first) = first_line_of_id.get(&item.id) {
            skipped.push(skip(
                ID,
                format!("duplicate id `{}` (first at line {first})", item.id),
            ));
        } else {
            first_line_of_id.insert(item.id.clone(), line);
            items.push(item);
        }
    }
    Ok(CatalogRead { items, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = include_str!("../../../tests/fixtures/catalog_small.csv");
    const BAD: &str = include_str!("../../../tests/fixtures/catalog_bad_rows.csv");
    const MISSING: &str = include_str!("../../../tests/fixtures/catalog_missing_column.csv");

    #[test]
    fn reads_small_fixture() {
        let r = read_catalog("catalog_small.csv", SMALL).unwrap();
        assert!(r.skipped.is_empty(), "{:?}", r.skipped);
        assert_eq!(r.items.len(), 12);
        let first = &r.items[0];
        assert_eq!(first.line, 2);
        assert_eq!(first.colour, "Navy Blue", "leading space trimmed");
        // a quoted description with a comma and a newline inside: the next record starts 2 lines on
        let multi = r
            .items
            .iter()
            .position(|i| i.description.contains('\n'))
            .unwrap();
        assert!(r.items[multi].description.contains(','));
        assert_eq!(r.items[multi + 1].line, r.items[multi].line + 2);
        assert!(r
            .items
            .iter()
            .any(|i| i.title.contains('😀') || i.title.contains('✨')));
        assert!(r.items.iter().any(|i| i
            .title
            .chars()
            .any(|c| ('\u{900}'..='\u{97f}').contains(&c))));
        assert!(r.items.iter().any(|i| i.colour.is_empty()));
    }

    #[test]
    fn bad_rows_are_skipped_with_line_and_field() {
        let r = read_catalog("bad.csv", BAD).unwrap();
        let msgs: Vec<String> = r.skipped.iter().map(|e| e.to_string()).collect();
        assert_eq!(r.items.len(), 2, "{msgs:?}");
        let find = |field: &str, needle: &str| {
            r.skipped
                .iter()
                .find(|e| e.field == field && e.message.contains(needle))
                .unwrap_or_else(|| panic!("no {field} {needle} in {msgs:?}"))
        };
        assert_eq!(find("record", "found 7").line, 3);
        assert_eq!(find("record", "found 9").line, 4);
        assert_eq!(find("ProductName", "empty title").line, 5);
        assert_eq!(find("ProductID", "empty product id").line, 6);
        assert_eq!(find("ProductName", "5000 characters").line, 7);
        let dup = find("ProductID", "duplicate");
        assert_eq!(dup.line, 8);
        assert!(dup.message.contains("first at line 2"));
        assert!(msgs.iter().all(|m| m.starts_with("bad.csv:")));
    }

    #[test]
    fn whole_file_errors() {
        let e = read_catalog("m.csv", MISSING).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(
            e.message.contains("ProductBrand") && e.message.contains("PrimaryColor"),
            "{e}"
        );
        let e = read_catalog("e.csv", " \n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (0, "header"));
        // header only: no items, no error
        let hdr = "ProductID,ProductName,ProductBrand,Gender,Description,PrimaryColor\n";
        assert!(read_catalog("h.csv", hdr).unwrap().items.is_empty());
    }

    #[test]
    fn columns_by_name_and_bom() {
        let text =
            "\u{feff}PrimaryColor,Description,Gender,ProductBrand,ProductName,ProductID,Extra\n\
                    Red,\"Nice, red\",Men,Acme,Acme Men Red Shirt,42,x\n";
        let r = read_catalog("x.csv", text).unwrap();
        assert_eq!(r.items[0].id, "42");
        assert_eq!(r.items[0].title, "Acme Men Red Shirt");
        assert_eq!(r.items[0].description, "Nice, red");
    }
}
