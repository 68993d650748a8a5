//! BINDER (Zhang et al., ICLR 2023: "Optimizing Bi-Encoder for Named Entity Recognition via
//! Contrastive Learning"): the pure-Rust parts, everything but the network.
//!
//! The method: one encoder reads the sentence, a second one reads a description of each entity
//! type ("a person entity is limited to human ..."), and a span is scored against a type by the
//! similarity of the span's vector (built from its first and last sub-words and its width) to the
//! type's vector (the description's `[CLS]`). Training is
//! contrastive: a gold span is pulled towards its type and away from the others, and the
//! sentence's `[CLS]` vector is trained to score, for each type, between the gold spans and the
//! rest. At prediction a span is an entity of a type when its score for that type beats the
//! `[CLS]` score for that type: a threshold per sentence and type, learned rather than fixed. That
//! comparison happens in the model crate; this module has what comes before and after it.
//!
//! One file per stage; each module doc says what it does in detail and why:
//! - [`types`](mod@types): the types file, a JSON array of `{"name", "description"}` records
//!   read into [`TypeDescription`]s in the file's order (type `i` is record `i`), every problem
//!   reported by record index and field; the files we ship are in `data/binder/`;
//! - [`decode`](mod@decode): the candidate spans of a sentence (word spans up to a width in
//!   sub-words) and the overlap rule applied to the spans that beat their threshold
//!   ([`Overlaps::Flat`] or [`Overlaps::Nested`]).
//!
//! The semantics are those of the reference code (microsoft/binder, `src/utils.py`), so that our
//! scores can be compared with published ones:
//! - Only spans from a word's first sub-word to a word's last sub-word are candidates (its
//!   `token_start_mask` and `token_end_mask`), and none wider than `max_span_length` sub-words.
//! - A span is predicted when its score is strictly greater than the type's `[CLS]` score.
//! - Flat datasets (CoNLL03, BC5CDR, NCBI-disease, ...): `postprocess_flat_predictions` keeps one score
//!   per (type, span), the maximum, then `remove_overlaps` walks the predictions by score, highest
//!   first (ties: earlier start, then earlier end), and keeps each one that overlaps none kept so
//!   far, whatever the types. So of a span predicted with two types only the higher-scored type
//!   stays, and an entity never shares a word with another. The reference leaves a tie between
//!   two types of one span to the iteration order of a Python set (which varies from run to run);
//!   we give it to the lower type index, so a result never depends on the run or the input order.
//! - Nested datasets (ACE04, ACE05, GENIA): `postprocess_nested_predictions` keeps every
//!   prediction.
//! - The maximum over several windows of one long document is the caller's to take: a caller
//!   passes one score per span and type.
//!
//! Everything is over word indices (a [`WordSpan`](crate::relations::WordSpan), `end`
//! exclusive), where the reference works with character offsets: a span's offsets are the start
//! of its first word and the end of its last. Words never overlap and are in order, so that map is
//! one-to-one and keeps order: two word spans share a word exactly when their character ranges
//! overlap, spans that touch as words touch as characters, and sorting by (start, end) sorts both
//! the same way. Every rule here therefore gives the reference's result, and mapping back to
//! characters (for output) is the caller's, from the words' offsets.

pub mod decode;
pub mod types;

pub use decode::{candidate_spans, decode, Overlaps, ScoredSpan};
pub use types::{read_type_descriptions, to_json, TypeDescription};
