//! Embedding a long list of texts for `trainer embed` and `trainer match`: in chunks, so that
//! output can be written as it comes and progress shown on stderr (100,000 descriptions take
//! minutes on a laptop's CPU), with the token limit checked against the model before any work.
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::Tensor;
use multitag_model::{BertConfig, Embedder};

/// Progress is printed after every this many texts (and only for inputs longer than that).
pub const PROGRESS_EVERY: usize = 10_000;

/// `value` of the flag `flag` as a sub-word limit for the model of `config`: at least 2 (`[CLS]`
/// and `[SEP]`), at most the positions the encoder has (`max_position_embeddings`), so a long text
/// cannot fail mid-run.
pub fn check_max_tokens(flag: &str, value: usize, config: &BertConfig) -> Result<usize> {
    let positions = config.max_position_embeddings;
    if value < 2 {
        bail!("{flag} {value}: at least 2 (the [CLS] and [SEP] tokens every input carries)");
    }
    if value > positions {
        bail!(
            "{flag} {value}: the model has {positions} positions (max_position_embeddings in \
             its config), so texts can be cut at {positions} sub-words at most"
        );
    }
    Ok(value)
}

/// Embeds `texts` (each cut at `max_tokens` sub-words, `batch` at a time) in chunks of
/// [`PROGRESS_EVERY`], handing each chunk's `(chunk, hidden)` vectors to `each` with the index of
/// its first text. `what` names the texts in the progress lines (`candidates`); the closing line
/// gives the count and the time.
pub fn embed_chunks(
    embedder: &dyn Embedder,
    texts: &[&str],
    max_tokens: usize,
    batch: usize,
    what: &str,
    mut each: impl FnMut(usize, Tensor) -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    let rate = |done: usize| done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    for (i, chunk) in texts.chunks(PROGRESS_EVERY).enumerate() {
        let first = i * PROGRESS_EVERY;
        each(first, embedder.embed(chunk, max_tokens, batch)?)?;
        let done = first + chunk.len();
        if texts.len() > PROGRESS_EVERY && done < texts.len() {
            eprintln!(
                "embedded {done}/{} {what} ({:.0}/s)",
                texts.len(),
                rate(done)
            );
        }
    }
    eprintln!(
        "embedded {} {what} in {:.1} s ({:.0}/s, cut at {max_tokens} sub-words)",
        texts.len(),
        started.elapsed().as_secs_f64(),
        rate(texts.len())
    );
    Ok(())
}

/// [`embed_chunks`] into one `(texts, hidden)` tensor.
pub fn embed_all(
    embedder: &dyn Embedder,
    texts: &[&str],
    max_tokens: usize,
    batch: usize,
    what: &str,
) -> Result<Tensor> {
    let mut parts = Vec::new();
    embed_chunks(embedder, texts, max_tokens, batch, what, |_, part| {
        parts.push(part);
        Ok(())
    })?;
    if parts.is_empty() {
        bail!("no {what} to embed");
    }
    Ok(Tensor::cat(&parts, 0)?)
}
