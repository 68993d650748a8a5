//! Helpers shared by the crate's unit tests.
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use candle_nn::VarMap;

/// Asserts that `varmap` holds more than `more_than` variables and that each got a non-zero f32
/// gradient in `grads` (the pitfall: a fused op that cuts the graph leaves some without one).
pub fn assert_every_variable_trained(varmap: &VarMap, grads: &GradStore, more_than: usize) {
    let data = varmap.data().lock().unwrap();
    assert!(data.len() > more_than, "{} variables", data.len());
    for (name, var) in data.iter() {
        let grad = grads
            .get(var)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert_eq!(grad.dtype(), DType::F32, "{name}");
        let norm = grad
            .abs()
            .and_then(|g| g.sum_all()?.to_scalar::<f32>())
            .unwrap();
        assert!(norm > 0.0, "zero gradient for {name}");
    }
}

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
