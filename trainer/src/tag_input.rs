//! Reading titles for `trainer tag`: plain lines, JSONL with a field, or CSV with a column. A bad
//! row is reported with its file, line and field and skipped; the other rows are still tagged.
use anyhow::{bail, Context, Result};
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// One title per line.
    Lines,
    /// One JSON object per line; the title is in `--column`.
    Jsonl,
    /// CSV with a header row; the title is in `--column`.
    Csv,
}

#[derive(Debug)]
pub struct TitleInput {
    /// (1-based line, title)
    pub titles: Vec<(usize, String)>,
    pub problems: Vec<String>,
    pub blank_lines: usize,
}

pub fn read_titles(
    source: &str,
    text: &str,
    format: InputFormat,
    column: &str,
) -> Result<TitleInput> {
    let mut input = TitleInput {
        titles: Vec::new(),
        problems: Vec::new(),
        blank_lines: 0,
    };
    match format {
        InputFormat::Lines => {
            for (i, line) in text.lines().enumerate() {
                let title = line.trim();
                if title.is_empty() {
                    input.blank_lines += 1;
                } else {
                    input.titles.push((i + 1, title.to_string()));
                }
            }
        }
        InputFormat::Jsonl => {
            for (i, line) in text.lines().enumerate() {
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
                    Some(t) if !t.trim().is_empty() => {
                        input.titles.push((i + 1, t.trim().to_string()))
                    }
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
        InputFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(text.as_bytes());
            let headers = reader
                .headers()
                .with_context(|| format!("{source}:1: unreadable CSV header"))?
                .clone();
            let Some(index) = headers.iter().position(|h| h.trim() == column) else {
                bail!(
                    "{source}:1: field `{column}`: no such column (have: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                );
            };
            for row in reader.records() {
                match row {
                    Ok(r) => {
                        let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
                        match r.get(index) {
                            Some(t) if !t.trim().is_empty() => {
                                input.titles.push((line, t.trim().to_string()))
                            }
                            Some(_) => input
                                .problems
                                .push(format!("{source}:{line}: field `{column}`: empty title")),
                            None => input.problems.push(format!(
                                "{source}:{line}: field `{column}`: row has too few fields"
                            )),
                        }
                    }
                    Err(e) => {
                        let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                        input
                            .problems
                            .push(format!("{source}:{line}: unreadable CSV row: {e}"));
                    }
                }
            }
        }
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blanks_and_keep_line_numbers() {
        let input =
            read_titles("t", "A Shirt\n\n  B Bag  \n", InputFormat::Lines, "title").unwrap();
        assert_eq!(
            input.titles,
            vec![(1, "A Shirt".into()), (3, "B Bag".into())]
        );
        assert_eq!(input.blank_lines, 1);
    }

    #[test]
    fn jsonl_reports_bad_rows_and_keeps_good_ones() {
        let text =
            "{\"title\": \"A\"}\n{oops\n{\"name\": \"B\"}\n{\"title\": \"\"}\n{\"title\": \"C\"}\n";
        let input = read_titles("in.jsonl", text, InputFormat::Jsonl, "title").unwrap();
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
        let err = read_titles("in.csv", "a,b\n1,2\n", InputFormat::Csv, "title")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in.csv:1") && err.contains("`title`"), "{err}");
        let ok = read_titles(
            "in.csv",
            "id,title\n1,\"Red, Shirt\"\n2\n",
            InputFormat::Csv,
            "title",
        )
        .unwrap();
        assert_eq!(ok.titles, vec![(2, "Red, Shirt".into())]);
        assert_eq!(ok.problems.len(), 1);
    }
}
