//! The relation extraction task in the trainer (`--task relations`): SpERT and SpERT.MT
//! ([`multitag_model::tasks::relations`]) on SpERT JSON data, trained by the shared epoch loop.
//!
//! | module | what |
//! |---|---|
//! | [`data`] | the dataset's files: types, train, dev, test; cross-validation folds |
//! | [`model`] | the span model over the base encoder; saving, loading, predicting documents |
//! | [`train`] | the [`crate::train::Method`] and a training run |
//! | [`evaluate`] | scores on the test sentences never seen in training |
//! | [`cli`] | `train`, `eval` and `tag` for relation models |
//! | [`compare`](mod@compare) | `compare`: SpERT, SpERT.MT and the ablation over seeds (and folds) |
pub mod cli;
pub mod compare;
pub mod data;
pub mod evaluate;
pub mod model;
pub mod train;

pub use data::{parse_folds, RelationData, RelationFiles};
pub use model::RelationModel;
