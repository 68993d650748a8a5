//! One error type for every reader in the crate.
//!
//! Design choice: readers never panic and never print; every problem in the input becomes a
//! [`DataError`] that names the source (a file name chosen by the caller, since this crate does no
//! I/O), the 1-based physical line and the field, so a user can go straight to the bad cell.
//! `line == 0` means the problem concerns the whole source (for example an empty file).

/// A problem found in input data, located by source name, line and field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_name}:{line}: field `{field}`: {message}")]
pub struct DataError {
    /// Name of the input (usually a path), only used in messages.
    pub source_name: String,
    /// 1-based physical line; 0 means the whole source.
    pub line: usize,
    /// Column or JSON field the problem is in (or a pseudo-field such as `record`).
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl DataError {
    /// Builds an error; takes `impl Into<String>` so call sites stay one line long.
    pub fn new(
        source_name: impl Into<String>,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DataError {
            source_name: source_name.into(),
            line,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The error of a file in which every one of its `skipped` items (records, documents, each
    /// named as `what`) was bad: readers keep the good items and report the bad ones, and fail
    /// only when nothing is left. The first problem is quoted, since it is usually the cause.
    pub fn nothing_usable(source: &str, what: &str, skipped: &[impl std::fmt::Display]) -> Self {
        let why = skipped
            .first()
            .map_or(String::new(), |e| format!("; the first problem: {e}"));
        DataError::new(
            source,
            0,
            "file",
            format!("no usable {what} ({} skipped){why}", skipped.len()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_source_line_and_field() {
        let e = DataError::new("cat.csv", 7, "ProductName", "empty title");
        assert_eq!(e.to_string(), "cat.csv:7: field `ProductName`: empty title");
    }
}
