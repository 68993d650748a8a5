//! Helpers shared by the crate's unit tests.
use candle_core::Tensor;

/// The largest absolute difference between two tensors of the same shape.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("tensors of the same shape")
}

/// A tiny word-level BERT-style tokenizer, enough to run the whole Tagger.
pub const TOKENIZER: &str = r#"{"version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [], "normalizer": {"type": "Lowercase"},
    "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
    "decoder": null,
    "model": {"type": "WordLevel", "unk_token": "[UNK]", "vocab": {"[PAD]": 0, "[CLS]": 1,
        "[SEP]": 2, "[UNK]": 3, "roadster": 4, "men": 5, "navy": 6, "blue": 7, "shirt": 8}}}"#;
