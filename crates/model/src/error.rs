//! The crate's one error type: which input was wrong (config, weights, tokenizer, labels, task), with
//! the source named in the message, or a tensor error from candle.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model config: {0}")]
    Config(String),
    #[error("model weights: {0}")]
    Weights(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("labels: {0}")]
    Labels(String),
    /// The method a model names is not one this build has.
    #[error("task: {0}")]
    Task(String),
    /// Input the model cannot take as it is (e.g. a sentence longer than its positions).
    #[error("input: {0}")]
    Input(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    /// Tensors in the weights file `weights` that the model built from the config `config`
    /// (`layers` encoder layers) did not read: the two files disagree (a config that says fewer
    /// layers would otherwise silently drop the rest). `unused` is sorted; the first few are named.
    pub fn unused_tensors(weights: &str, config: &str, layers: usize, unused: &[String]) -> Self {
        const NAMED: usize = 3;
        let mut examples: Vec<String> = unused
            .iter()
            .take(NAMED)
            .map(|name| printable(name, 120))
            .collect();
        if unused.len() > NAMED {
            examples.push("...".into());
        }
        let (count, noun) = match unused.len() {
            1 => ("1".to_string(), "tensor"),
            n => (n.to_string(), "tensors"),
        };
        ModelError::Weights(format!(
            "{weights}: {count} {noun} the model ({config}: {layers} layers) does not use, e.g. {}; \
             {config} and the weights disagree",
            examples.join(", ")
        ))
    }
}

/// `text` from a file made safe for a message: printable ASCII kept, everything else (control
/// characters, terminal escapes, invalid bytes shown as U+FFFD, any non-ASCII) escaped as
/// `\u{..}`, and at most `max` characters, so a damaged or hostile file cannot put raw bytes or
/// megabytes into an error.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    for c in chars.by_ref() {
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
        if out.len() >= max {
            break;
        }
    }
    let rest = chars.count();
    if rest > 0 {
        out.push_str(&format!("... ({rest} more characters)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_and_caps() {
        assert_eq!(printable("tensor `a.b` [3, 4]", 200), "tensor `a.b` [3, 4]");
        assert_eq!(
            printable("GG\u{1b}[31m\u{0}é", 200),
            "GG\\u{1b}[31m\\u{0}\\u{e9}"
        );
        let long = printable(&"x".repeat(10_000), 200);
        assert!(long.starts_with(&"x".repeat(200)), "{long}");
        assert!(long.ends_with("(9800 more characters)"), "{long}");
    }
}
