//! BINDER in the trainer (`--task binder`, [`multitag_model::tasks::binder`]): the labeled data
//! the token tagger reads (the catalog's derived labels, JSONL or CoNLL/IOB2 files such as
//! BC5CDR's) with a file describing each entity type in words (`--types`), trained by the shared
//! epoch loop and scored by the shared NER metric through the [`multitag_model::Predictor`]
//! interface, as the tagger is.
//!
//! | module | what |
//! |---|---|
//! | [`model`] | the bi-encoder over the base encoder; the type descriptions; saving and loading |
//! | [`train`] | the [`crate::train::Method`] and a training run |
pub mod model;
pub mod train;

pub use model::{load_tagger, load_tagger_with_types, read_types};
pub use train::{train_binder, BinderOutcome};
