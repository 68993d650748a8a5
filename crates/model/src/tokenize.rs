//! Sub-word tokenization aligned with our word segmentation. Titles are tokenized from their words
//! (pre-tokenized input), so each word's first sub-word carries its tag; descriptions are tokenized
//! as plain text. Padding and truncation are ours: the base model's tokenizer.json pads everything
//! to 128 tokens, which would waste most of the compute on 48-token titles.
use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use crate::error::ModelError;

/// Free texts (descriptions) are embedded up to this many sub-words: the base model's own limit
/// in its tokenizer.json, and past it a description adds little to its embedding.
pub const DEFAULT_TEXT_TOKENS: usize = 128;

pub struct WordTokenizer {
    tokenizer: Tokenizer,
    pad_id: u32,
}

/// A title's sub-word ids and, per word, the index of its first sub-word (`None` when the word
/// produced no sub-word, or was cut off by truncation).
#[derive(Debug, Clone, PartialEq)]
pub struct WordEncoding {
    pub ids: Vec<u32>,
    pub first_subword: Vec<Option<usize>>,
    pub truncated: bool,
}

/// `Tokenizer::from_bytes`, with a panic in the parser turned into an error where panics can be
/// caught (not on wasm32, which aborts). The default panic message is silenced meanwhile, so the
/// user sees one clear error, not a panic report.
#[cfg(not(target_arch = "wasm32"))]
fn parse_tokenizer(bytes: &[u8]) -> Result<Tokenizer, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let parsed = std::panic::catch_unwind(|| Tokenizer::from_bytes(bytes));
    std::panic::set_hook(hook);
    match parsed {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown");
            Err(format!(
                "malformed ({})",
                crate::error::printable(what, 200)
            ))
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn parse_tokenizer(bytes: &[u8]) -> Result<Tokenizer, String> {
    Tokenizer::from_bytes(bytes).map_err(|e| e.to_string())
}

impl WordTokenizer {
    pub fn from_bytes(source: &str, bytes: &[u8]) -> Result<Self, ModelError> {
        let cannot = |e: &dyn std::fmt::Display| {
            ModelError::Tokenizer(format!("{source}: cannot read tokenizer: {e}"))
        };
        // The `tokenizers` crate (0.22) panics instead of returning an error on some malformed
        // files (a JSON syntax error inside `decoder`; a bad `Precompiled` normalizer), found by
        // fuzzing (fuzz/README.md). JSON syntax is checked first, so most damage is an error
        // everywhere; natively a panic left in the parser is caught and reported too. In the
        // browser it cannot be caught, which is why exports record the tokenizer's checksum and
        // the loader checks it before parsing (`GgufFile::check_tokenizer`).
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| cannot(&e))?;
        let mut tokenizer = parse_tokenizer(bytes).map_err(|e| cannot(&e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| ModelError::Tokenizer(format!("{source}: {e}")))?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        for special in ["[CLS]", "[SEP]"] {
            if tokenizer.token_to_id(special).is_none() {
                return Err(ModelError::Tokenizer(format!(
                    "{source}: vocabulary has no {special} token; is this a BERT tokenizer?"
                )));
            }
        }
        Ok(Self { tokenizer, pad_id })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// A tokenizer (named `source`) with more tokens than the model's `vocab_size` (from
    /// `weights_source`) belongs to another model: its ids would index past the embedding table.
    pub fn check_fits(
        &self,
        source: &str,
        vocab_size: usize,
        weights_source: &str,
    ) -> Result<(), ModelError> {
        let vocab = self.tokenizer.get_vocab_size(true);
        if vocab > vocab_size {
            return Err(ModelError::Tokenizer(format!(
                "{source}: {vocab} tokens, more than the model's vocab_size {vocab_size} in \
                 {weights_source}; the tokenizer belongs to another model"
            )));
        }
        Ok(())
    }

    /// Encodes pre-split words with special tokens, keeping at most `max_len` sub-words.
    pub fn encode_words(&self, words: &[&str], max_len: usize) -> Result<WordEncoding, ModelError> {
        let encoding = self
            .tokenizer
            .encode(words, true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let (ids, truncated) = truncate(encoding.get_ids(), max_len);
        let mut first_subword = vec![None; words.len()];
        for (position, word) in encoding
            .get_word_ids()
            .iter()
            .enumerate()
            .take(ids.len() - 1)
        {
            if let Some(w) = word {
                let slot = &mut first_subword[*w as usize];
                if slot.is_none() {
                    *slot = Some(position);
                }
            }
        }
        Ok(WordEncoding {
            ids,
            first_subword,
            truncated,
        })
    }

    /// Encodes free text (a description, or a title for its sentence embedding).
    pub fn encode_text(&self, text: &str, max_len: usize) -> Result<Vec<u32>, ModelError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(truncate(encoding.get_ids(), max_len).0)
    }
}

/// Keeps the first `max_len - 1` ids and the final [SEP], so a truncated input still ends the way
/// the encoder saw every input end in pre-training.
fn truncate(ids: &[u32], max_len: usize) -> (Vec<u32>, bool) {
    let max_len = max_len.max(2);
    if ids.len() <= max_len {
        return (ids.to_vec(), false);
    }
    let mut out = ids[..max_len - 1].to_vec();
    out.push(*ids.last().expect("non-empty"));
    (out, true)
}

/// Pads sequences to the longest one: `(ids, attention_mask)`, both `(batch, seq)` u32.
pub fn collate(
    seqs: &[&[u32]],
    pad_id: u32,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    collate_to(seqs, pad_id, 0, device)
}

/// [`collate`] to at least `min_width` columns (fixed shapes, e.g. for benchmarks).
pub fn collate_to(
    seqs: &[&[u32]],
    pad_id: u32,
    min_width: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
    let width = longest.max(min_width).max(1);
    let ones: Vec<Vec<u32>> = seqs.iter().map(|s| vec![1; s.len()]).collect();
    let ones: Vec<&[u32]> = ones.iter().map(Vec::as_slice).collect();
    Ok((
        pad_rows(seqs, width, pad_id, device)?,
        pad_rows(&ones, width, 0, device)?,
    ))
}

/// Right-pads rows (none longer than `width`) with `fill` into a `(rows, width)` tensor.
pub fn pad_rows<T: candle_core::WithDType>(
    rows: &[&[T]],
    width: usize,
    fill: T,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut flat = Vec::with_capacity(rows.len() * width);
    for r in rows {
        flat.extend_from_slice(r);
        flat.extend(std::iter::repeat_n(fill, width - r.len()));
    }
    Tensor::from_vec(flat, (rows.len(), width), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files on which `tokenizers` 0.22 panics (found by fuzzing) are errors naming the file.
    #[test]
    fn tokenizers_that_panic_the_parser_are_errors() {
        let base = r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": NORMALIZER, "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": null, "decoder": DECODER,
            "model": {"type": "WordLevel", "unk_token": "[UNK]",
                "vocab": {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3}}}"#;
        let cases = [
            // A JSON syntax error inside `decoder` (the crate's `expect("Helper")`).
            base.replace("NORMALIZER", "null")
                .replace("DECODER", "{\"type\": ,}"),
            // A `Precompiled` normalizer whose char map is not one (`expect("Precompiled")`).
            base.replace(
                "NORMALIZER",
                r#"{"type": "Precompiled", "precompiled_charsmap": "bm90IGEgbWFw"}"#,
            )
            .replace("DECODER", "null"),
        ];
        for case in cases {
            let err = match WordTokenizer::from_bytes("tokenizer.json", case.as_bytes()) {
                Ok(_) => panic!("loaded: {case}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("tokenizer.json"), "{err}");
        }
    }

    #[test]
    fn truncation_keeps_final_separator() {
        assert_eq!(truncate(&[1, 2, 3, 4, 9], 3), (vec![1, 2, 9], true));
        assert_eq!(truncate(&[1, 9], 3), (vec![1, 9], false));
    }

    #[test]
    fn collate_pads_and_masks() -> candle_core::Result<()> {
        let (ids, mask) = collate(&[&[5, 6, 7], &[8]], 0, &Device::Cpu)?;
        assert_eq!(ids.to_vec2::<u32>()?, vec![vec![5, 6, 7], vec![8, 0, 0]]);
        assert_eq!(mask.to_vec2::<u32>()?, vec![vec![1, 1, 1], vec![1, 0, 0]]);
        Ok(())
    }

    #[test]
    fn fixed_padding_widens_to_the_requested_width() -> candle_core::Result<()> {
        let (ids, mask) = collate_to(&[&[5, 6], &[7]], 0, 4, &Device::Cpu)?;
        assert_eq!(
            ids.to_vec2::<u32>()?,
            vec![vec![5, 6, 0, 0], vec![7, 0, 0, 0]]
        );
        assert_eq!(
            mask.to_vec2::<u32>()?,
            vec![vec![1, 1, 0, 0], vec![1, 0, 0, 0]]
        );
        let (natural, _) = collate_to(&[&[5, 6], &[7]], 0, 1, &Device::Cpu)?;
        assert_eq!(natural.dims(), &[2, 2]);
        Ok(())
    }
}
