//! `multitag-core`: pure-Rust building blocks for multi-task NER on product titles.
//!
//! Design choice: everything here is deterministic, allocation-only Rust with no file system,
//! threads or ML framework, so the same code runs in the trainer, in tests and in a wasm build.
//! Readers parse `&str` and name a caller-chosen source in their errors; I/O lives in callers.

pub mod binder;
pub mod catalog;
pub mod csv_table;
pub mod decode;
pub mod error;
pub mod gold;
pub mod labeled;
pub mod labeling;
pub mod metrics;
pub mod overlap;
pub mod record;
pub mod relations;
pub mod split;
pub mod tags;
pub mod titles;
pub mod words;

pub use catalog::{read_catalog, CatalogColumns, CatalogItem, CatalogRead, MAX_TITLE_CHARS};
pub use decode::{decode_entities, Entity, TaggedTitle};
pub use error::DataError;
pub use gold::{
    gold_line_from_tags, gold_tags, join_gold, read_gold, read_gold_lines, GoldEntity, GoldExample,
    GoldLine,
};
pub use labeled::{read_labeled, read_labeled_bytes, LabeledRead, LabeledText};
pub use labeling::{coverage, Coverage, Labeler, LabelerConfig, ENTITY_TYPES};
pub use metrics::{
    distinct_targets, evaluate, mean_std, retrieval, MeanStd, NerReport, RetrievalReport,
    TypeScores,
};
pub use overlap::SeenTitles;
pub use record::{read_jsonl, to_jsonl, BundledExample, LabeledRecord};
pub use relations::{FoundRelation, TextRelations};
pub use split::{fnv1a64, split_of, Split, SplitMix64};
pub use tags::{check_tag, iob2_from_spans, spans_from_iob2, LabelMap, Span};
pub use titles::{read_titles, TitleFormat, TitleInput};
pub use words::{char_slice, split_words, Word};
