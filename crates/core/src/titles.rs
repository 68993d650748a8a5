//! Reading the titles `trainer tag` is given: plain lines, JSONL with a field, or CSV with a
//! column. A bad row is reported with its file, line and field and skipped; the other rows are
//! still tagged.
//!
//! Design choices: input arrives as bytes and is decoded line by line ([`DecodedText`]), so a
//! line that is not UTF-8 is reported with its line and the byte column of the first invalid byte
//! and only that line (or the CSV row touching it) is skipped; stdin and files are treated alike.
//! CSV goes through the strict reader the catalog uses ([`read_csv_table`]), so an unbalanced or stray
//! quote can neither merge rows nor glue columns into a title: the damaged lines are reported one
//! by one and every clean row around them is still tagged. Titles never span lines, so the title column may not hold a
//! newline; any other column may (a catalog's description), and every row must have the header's
//! number of fields.
//!
//! Titles are taken exactly as given, never trimmed: a plain line without its `\n` or `\r\n`,
//! a JSON string as decoded, a CSV field as unquoted. `trainer tag` prints that title and its
//! entities' character offsets index it, so `start..end` slices the entity out of the user's own
//! line, as spaCy and Hugging Face offsets index the original string; trimming would shift every
//! offset by the leading whitespace the user still has. Only two things are not part of a title:
//! the line end, and a byte-order mark opening the input, which marks the file's encoding (editors
//! hide it; the CSV reader drops it too). A title that is empty or only whitespace is skipped: a
//! blank line in plain lines, an `empty title` problem in JSONL and CSV.
use crate::csv_table::{read_csv_table, DecodedText};
use crate::error::DataError;

/// How the titles are laid out in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TitleFormat {
    /// One title per line.
    Lines,
    /// One JSON object per line; the title is in the field `column` (`trainer tag --column`).
    Jsonl,
    /// CSV with a header row; the title is in the column `column` (`trainer tag --column`).
    Csv,
}

/// What [`read_titles`] found: the titles to tag and the lines it skipped.
#[derive(Debug)]
pub struct TitleInput {
    /// (1-based line, title)
    pub titles: Vec<(usize, String)>,
    /// One message per skipped line or row, naming source, line and field, in line order.
    pub problems: Vec<String>,
    /// Plain lines and JSONL lines that are empty or only whitespace.
    pub blank_lines: usize,
}

/// Reads the titles of `bytes`; `source` names the input in messages (`<stdin>` for standard
/// input). Only a CSV header that is missing, damaged, not UTF-8 or without `column` is an error.
pub fn read_titles(
    source: &str,
    bytes: &[u8],
    format: TitleFormat,
    column: &str,
) -> Result<TitleInput, DataError> {
    let mut input = TitleInput {
        titles: Vec::new(),
        problems: Vec::new(),
        blank_lines: 0,
    };
    let decoded = DecodedText::decode(bytes);
    // Line numbers and byte columns stay those of the input: the mark is not a line.
    let text = decoded
        .text
        .strip_prefix('\u{feff}')
        .unwrap_or(&decoded.text);
    let not_utf8 = |line: usize| {
        decoded.invalid_on(line).map(|bad| {
            format!(
                "{source}:{line}: invalid UTF-8 at byte column {}; line skipped",
                bad.column
            )
        })
    };
    match format {
        TitleFormat::Lines => {
            for (i, line) in text.lines().enumerate() {
                if let Some(problem) = not_utf8(i + 1) {
                    input.problems.push(problem);
                } else if line.trim().is_empty() {
                    input.blank_lines += 1;
                } else {
                    input.titles.push((i + 1, line.to_string()));
                }
            }
        }
        TitleFormat::Jsonl => {
            for (i, line) in text.lines().enumerate() {
                if let Some(problem) = not_utf8(i + 1) {
                    input.problems.push(problem);
                    continue;
                }
                if line.trim().is_empty() {
                    input.blank_lines += 1;
                    continue;
                }
                let value: serde_json::Value = match serde_json::from_str(line) {
                    Ok(v) => v,
                    Err(e) => {
                        input
                            .problems
                            .push(format!("{source}:{}: not JSON: {e}", i + 1));
                        continue;
                    }
                };
                match value.get(column).and_then(|v| v.as_str()) {
                    Some(t) if !t.trim().is_empty() => input.titles.push((i + 1, t.to_string())),
                    Some(_) => input
                        .problems
                        .push(format!("{source}:{}: field `{column}`: empty title", i + 1)),
                    None => input.problems.push(format!(
                        "{source}:{}: field `{column}`: missing or not a string",
                        i + 1
                    )),
                }
            }
        }
        TitleFormat::Csv => {
            let table = read_csv_table(source, &decoded, &|h| h.trim() != column)?;
            let Some(index) = table.header.iter().position(|h| h.trim() == column) else {
                return Err(DataError::new(
                    source,
                    table.header_line,
                    column,
                    format!("no such column (have: {})", table.header.join(", ")),
                ));
            };
            let mut problems: Vec<(usize, String)> = table
                .damaged
                .iter()
                .map(|e| (e.line, e.to_string()))
                .collect();
            for row in table.rows {
                // Every clean row has the header's number of fields, so this always finds it.
                let title = row.fields.get(index).map_or("", String::as_str);
                if title.trim().is_empty() {
                    problems.push((
                        row.line,
                        format!("{source}:{}: field `{column}`: empty title", row.line),
                    ));
                } else {
                    input.titles.push((row.line, title.to_string()));
                }
            }
            problems.sort_by_key(|(line, _)| *line);
            input.problems = problems.into_iter().map(|(_, p)| p).collect();
        }
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blanks_and_keep_line_numbers() {
        let input = read_titles(
            "t",
            b"A Shirt\n\n  B Bag  \n \t\xc2\xa0\n",
            TitleFormat::Lines,
            "title",
        )
        .unwrap();
        assert_eq!(
            input.titles,
            vec![(1, "A Shirt".into()), (3, "  B Bag  ".into())]
        );
        assert_eq!(input.blank_lines, 2);
    }

    /// Found by tests/offsets.rs: titles were trimmed, so `trainer tag` printed "Navy Shirt" for the
    /// line " Navy Shirt" with offsets into the trimmed title, one char off in the user's line; a
    /// byte-order mark stayed in the first plain-line title and made the first JSONL line "not
    /// JSON". Titles are now exactly as given, in every format; only the line end and an opening
    /// mark are dropped.
    #[test]
    fn titles_are_taken_as_given_in_every_format() {
        let titles = |format, bytes: &[u8]| read_titles("t", bytes, format, "title").unwrap();
        let lines = titles(
            TitleFormat::Lines,
            "\u{feff}\u{3000}Navy Shirt \r\n\tRed\u{a0}Bag\u{2009}\n\u{feff}Cap\r\n".as_bytes(),
        );
        assert_eq!(
            lines.titles,
            vec![
                (1, "\u{3000}Navy Shirt ".into()),
                (2, "\tRed\u{a0}Bag\u{2009}".into()),
                (3, "\u{feff}Cap".into())
            ]
        );
        let jsonl = titles(
            TitleFormat::Jsonl,
            "\u{feff}{\"title\": \" Navy\\tShirt \"}\r\n{\"title\": \"\\u00a0\"}\n".as_bytes(),
        );
        assert_eq!(jsonl.titles, vec![(1, " Navy\tShirt ".into())]);
        assert_eq!(jsonl.problems, ["t:2: field `title`: empty title"]);
        let csv = titles(
            TitleFormat::Csv,
            "\u{feff}id,title\r\n1, Navy Shirt \r\n2,\" Red, Bag\t\"\r\n3,\u{3000}\n".as_bytes(),
        );
        assert_eq!(
            csv.titles,
            vec![(2, " Navy Shirt ".into()), (3, " Red, Bag\t".into())]
        );
        assert_eq!(csv.problems, ["t:4: field `title`: empty title"]);
    }

    #[test]
    fn jsonl_reports_bad_rows_and_keeps_good_ones() {
        let text =
            "{\"title\": \"A\"}\n{oops\n{\"name\": \"B\"}\n{\"title\": \"\"}\n{\"title\": \"C\"}\n";
        let input = read_titles("in.jsonl", text.as_bytes(), TitleFormat::Jsonl, "title").unwrap();
        assert_eq!(input.titles.len(), 2);
        assert_eq!(input.problems.len(), 3);
        assert!(
            input.problems[0].starts_with("in.jsonl:2:"),
            "{:?}",
            input.problems
        );
        assert!(input.problems[1].contains("field `title`"));
    }

    #[test]
    fn csv_needs_the_column() {
        let err = read_titles("in.csv", b"a,b\n1,2\n", TitleFormat::Csv, "title")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in.csv:1") && err.contains("`title`"), "{err}");
        let ok = read_titles(
            "in.csv",
            b"id,title\n1,\"Red, Shirt\"\n2\n",
            TitleFormat::Csv,
            "title",
        )
        .unwrap();
        assert_eq!(ok.titles, vec![(2, "Red, Shirt".into())]);
        assert_eq!(ok.problems.len(), 1);
    }

    fn csv(text: &[u8], column: &str) -> TitleInput {
        read_titles("in.csv", text, TitleFormat::Csv, column).unwrap()
    }

    /// Case 3 of the hostile-input report: the `csv` crate ran row 1's unbalanced quote on to the
    /// next quote and tagged one "title" made of four rows; rows 2 to 4 vanished unreported.
    #[test]
    fn csv_unbalanced_quote_keeps_the_rows_it_would_swallow() {
        let input = csv(
            b"id,title\n1,\"Red Shirt\n2,Blue Bag\n3,Green Cap\n4,\"Black, Belt\"\n",
            "title",
        );
        assert_eq!(
            input.titles,
            vec![
                (3, "Blue Bag".into()),
                (4, "Green Cap".into()),
                (5, "Black, Belt".into())
            ]
        );
        assert_eq!(input.problems.len(), 1, "{:?}", input.problems);
        assert!(
            input.problems[0].starts_with("in.csv:2: field `title`:")
                && input.problems[0].contains("unbalanced"),
            "{:?}",
            input.problems
        );
    }

    /// Case 2 through `trainer tag`: a stray quote opening the title made the title swallow the
    /// brand, gender and price columns while the description's commas kept the field count right.
    #[test]
    fn csv_stray_quote_never_glues_columns_into_a_title() {
        let text = "ProductID,ProductName,ProductBrand,Gender,Price,Description\n\
                    1,\"Acme Men Shirt,Acme,Men,100,\"Nice, red, cotton, slim, soft\"\n\
                    2,Bolt Women Bag,Bolt,Women,200,\"A bag\nwith two lines\"\n\
                    3,Cozy \"Girls Cap,Cozy,Girls,50,Cap\n";
        let input = csv(text.as_bytes(), "ProductName");
        assert_eq!(input.titles, vec![(3, "Bolt Women Bag".into())]);
        let lines: Vec<&str> = input
            .problems
            .iter()
            .map(|p| p.split(": field").next().unwrap())
            .collect();
        assert_eq!(lines, ["in.csv:2", "in.csv:5"], "{:?}", input.problems);
        assert!(input.problems[0].contains("text after the quote"));
        assert!(input.problems[1].contains("stray quote"));
    }

    #[test]
    fn csv_rows_need_the_header_field_count() {
        let input = csv(b"id,title\n1,Red Shirt,extra\n2,Blue Bag\n", "title");
        assert_eq!(input.titles, vec![(3, "Blue Bag".into())]);
        assert_eq!(
            input.problems,
            ["in.csv:2: field `record`: expected 2 fields, found 3"]
        );
    }

    /// Invalid UTF-8 costs only its line (or the CSV row touching it), in every format, and is
    /// located by line and byte column; an invalid CSV header is an error naming both.
    #[test]
    fn invalid_utf8_skips_only_its_lines() {
        let lines = read_titles(
            "<stdin>",
            b"Red Shirt\nBlue \xff Bag\n\nGreen Cap\n",
            TitleFormat::Lines,
            "title",
        )
        .unwrap();
        assert_eq!(
            lines.titles,
            vec![(1, "Red Shirt".into()), (4, "Green Cap".into())]
        );
        assert_eq!(
            lines.problems,
            ["<stdin>:2: invalid UTF-8 at byte column 6; line skipped"]
        );
        assert_eq!(lines.blank_lines, 1);

        let jsonl = read_titles(
            "in.jsonl",
            b"{\"title\": \"A \xc3\"}\n{\"title\": \"B\"}\n",
            TitleFormat::Jsonl,
            "title",
        )
        .unwrap();
        assert_eq!(jsonl.titles, vec![(2, "B".into())]);
        assert_eq!(
            jsonl.problems,
            ["in.jsonl:1: invalid UTF-8 at byte column 14; line skipped"]
        );

        let input = csv(b"id,title\n1,Red \xe2\x82 Shirt\n2,Blue Bag\n", "title");
        assert_eq!(input.titles, vec![(3, "Blue Bag".into())]);
        assert_eq!(
            input.problems,
            ["in.csv:2: field `title`: invalid UTF-8 at byte column 7"]
        );
        let err = read_titles("in.csv", b"id,ti\xfftle\n", TitleFormat::Csv, "title")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("in.csv:1") && err.contains("byte column 6"),
            "{err}"
        );
    }
}
