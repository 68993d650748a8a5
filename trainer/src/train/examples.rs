//! Training items to the tagging task's examples: each word's tag goes on its first sub-word
//! (the others carry weight 0), and the description is encoded only when given. One builder for
//! `trainer train`, `compare` and `bench`.
use anyhow::{Context, Result};
use multitag_core::LabelMap;
use multitag_model::tasks::tagging::TitleExample;
use multitag_model::WordTokenizer;

use super::TrainOptions;

/// One labeled title as the encoders need it: its words, their IOB2 tags, and its description
/// (`None` when the objective uses no descriptions).
pub struct TrainItem<'a> {
    /// Names the item in errors (its id, or its position).
    pub name: &'a str,
    pub words: &'a [String],
    pub tags: &'a [String],
    pub description: Option<&'a str>,
}

/// Tokenizes one item: titles cut at `opts.title_tokens` sub-words, descriptions at
/// `opts.description_tokens`.
pub fn encode_example(
    tokenizer: &WordTokenizer,
    labels: &LabelMap,
    item: &TrainItem,
    opts: &TrainOptions,
) -> Result<TitleExample> {
    let words: Vec<&str> = item.words.iter().map(String::as_str).collect();
    let enc = tokenizer.encode_words(&words, opts.title_tokens)?;
    let mut targets = vec![0u32; enc.ids.len()];
    let mut weights = vec![0f32; enc.ids.len()];
    for (tag, position) in item.tags.iter().zip(&enc.first_subword) {
        if let Some(p) = position {
            let id = labels
                .id(tag)
                .with_context(|| format!("tag {tag} not in label map"))?;
            targets[*p] = id as u32;
            weights[*p] = 1.0;
        }
    }
    let description = match item.description {
        Some(text) => tokenizer.encode_text(text, opts.description_tokens)?,
        None => Vec::new(),
    };
    Ok(TitleExample {
        ids: enc.ids,
        targets,
        weights,
        description,
        title_anchor: Vec::new(),
        description_anchor: Vec::new(),
    })
}

/// [`encode_example`] over `items`, the failing item named in the error.
pub fn encode_examples<'a>(
    tokenizer: &WordTokenizer,
    labels: &LabelMap,
    items: impl IntoIterator<Item = TrainItem<'a>>,
    opts: &TrainOptions,
) -> Result<Vec<TitleExample>> {
    items
        .into_iter()
        .map(|item| {
            encode_example(tokenizer, labels, &item, opts)
                .with_context(|| format!("item {}", item.name))
        })
        .collect()
}
