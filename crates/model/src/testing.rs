//! Helpers shared by the crate's unit tests.
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarMap;
use multitag_core::{fnv1a64, SplitMix64};

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

/// Values drawn uniformly from `[-scale, scale]` by a seeded generator: candle's CPU `randn` and
/// its variable initialisers cannot be seeded, and a test on random weights must not pass or fail
/// by chance.
pub fn seeded_uniform(shape: &[usize], seed: u64, scale: f32) -> Result<Tensor> {
    let mut rng = SplitMix64::new(seed);
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|_| {
            let unit = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
            scale * (2.0 * unit - 1.0)
        })
        .collect::<Vec<_>>();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// Replaces each randomly initialised variable of `varmap` (one whose values are not all equal:
/// layer norms' ones and zero biases stay) by [`seeded_uniform`] values of a Kaiming-like scale,
/// `1/sqrt(last dimension)`, seeded by the variable's name: the model is then the same in every run.
pub fn make_deterministic(varmap: &VarMap) -> Result<()> {
    let data = varmap.data().lock().unwrap();
    for (name, var) in data.iter() {
        let values = var.flatten_all()?.to_vec1::<f32>()?;
        if values.iter().all(|&v| v == values[0]) {
            continue;
        }
        let shape = var.dims().to_vec();
        let scale = 1.0 / (*shape.last().unwrap_or(&1) as f32).sqrt();
        var.set(&seeded_uniform(&shape, fnv1a64(name.as_bytes()), scale)?)?;
    }
    Ok(())
}

/// A tiny word-level BERT-style tokenizer, enough to run the whole Tagger.
pub const TOKENIZER: &str = r#"{"version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [], "normalizer": {"type": "Lowercase"},
    "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
    "decoder": null,
    "model": {"type": "WordLevel", "unk_token": "[UNK]", "vocab": {"[PAD]": 0, "[CLS]": 1,
        "[SEP]": 2, "[UNK]": 3, "roadster": 4, "men": 5, "navy": 6, "blue": 7, "shirt": 8}}}"#;
