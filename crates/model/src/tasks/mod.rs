//! Tasks: one module per method, each a head on the shared encoder ([`crate::models`]) with its
//! loss, its decoding and its data shapes. The training step, `eval`, `export`, `tag`, `bench`
//! and the browser worker drive a task through [`Task`] (training) and its predictor (decoding),
//! so a new method is a new module here, not an edit of the loop.
//!
//! | module | method | example | output |
//! |---|---|---|---|
//! | [`tagging`] | multi-task triplet NER (Siskind & Shah): BIO token classification, plus a title/description loss on mean-pooled embeddings | a title's sub-words, tags on first sub-words, its description's sub-words | [`crate::TaggedTitle`] |
//!
//! The interface was written from the tagging task and checked against the two methods planned
//! next, so that each fits without changing it:
//! - **SpERT.MT** (span-based joint entity and relation extraction): its example is a sentence's
//!   sub-words with gold entity spans and relations; the negative spans and pairs it samples per
//!   step come from the `draw` generator [`Task::loss`] is given (as tagging's in-batch negatives
//!   do), so runs stay seeded; its losses are named parts (entity, relation, and the multi-task
//!   auxiliaries) of one total, as [`Losses`] carries them; its output is entities and relations.
//! - **BINDER** (bi-encoder NER): a second encoder for entity-type descriptions lives inside its
//!   task model (both are [`crate::BertEncoder`]s loaded from the same base), the type vectors
//!   are computed once per type set by its predictor; its loss parts are start, end, span and
//!   threshold.
//!
//! Where parameters come from is the same for every task: [`crate::nn::Weights`] at the task's
//! name prefix (trainable variables, or an exported GGUF file).
use candle_core::{Result, Tensor};

use crate::nn::Mode;

pub mod tagging;

/// The loss of one training batch: the `total` the optimizer minimises and its named `parts`
/// (each before its weight), which the training loop averages per epoch and logs by name.
pub struct Losses {
    pub total: Tensor,
    pub parts: Vec<(&'static str, Tensor)>,
}

/// A method's training side: the loss of a batch of its examples on the model it holds.
pub trait Task {
    /// One training item, tokenized: what batches are made of.
    type Example;

    /// The names of [`Losses::parts`], in order, for logs (every batch gives all of them).
    fn loss_parts(&self) -> &'static [&'static str];

    /// The loss of the examples at `batch` (indices into `examples`, which the method may also
    /// sample from, e.g. another item's description). `draw(n)` gives a uniform integer in
    /// `0..n` from the training loop's seeded generator, for whatever the method samples per step
    /// (negatives), so a CPU run is reproducible for a seed. `mode` is training (dropout) or
    /// inference (the same loss without dropout).
    fn loss(
        &self,
        examples: &[Self::Example],
        batch: &[usize],
        draw: &mut dyn FnMut(usize) -> usize,
        mode: &Mode,
    ) -> Result<Losses>;
}
