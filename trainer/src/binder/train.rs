//! Training BINDER through the shared epoch loop ([`crate::train::train_epochs`]): [`BinderLoss`]
//! per batch, the shared NER metric on the dev records each epoch (the best epoch is kept, as the
//! reference keeps its best dev checkpoint), PyTorch's AdamW with the learning rate decaying
//! linearly from the first step (the reference's Hugging Face Trainer defaults).
use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use candle_core::Device;
use candle_nn::VarMap;
use multitag_core::binder::TypeDescription;
use multitag_core::relations::WordSpan;
use multitag_core::{spans_from_iob2, LabeledRecord, NerReport, Split};
use multitag_model::tasks::binder::{BinderExample, BinderLoss};
use multitag_model::tasks::relations::SubwordSentence;
use multitag_model::TaskKind;

use super::model::{save_binder_model, BinderTraining};
use crate::data::Dataset;
use crate::evaluate::evaluate_ner;
use crate::model_dir::ModelDir;
use crate::train::{train_epochs, Method, TrainOptions};

/// Sentences per inference pass when evaluating.
pub const EVAL_BATCH: usize = 32;

pub struct Binder<'a> {
    pub model: BinderTraining,
    pub dev: Vec<&'a LabeledRecord>,
    pub base: &'a ModelDir,
    pub split: serde_json::Value,
}

impl Method for Binder<'_> {
    type Example = BinderExample;
    type Task<'b>
        = BinderLoss<'b>
    where
        Self: 'b;
    type DevReport = NerReport;
    const TASK: TaskKind = TaskKind::Binder;
    const DEV_SCORE: &'static str = "F1";

    fn varmap(&self) -> &VarMap {
        &self.model.varmap
    }

    fn task(&self) -> BinderLoss<'_> {
        BinderLoss {
            model: &self.model.model,
            descriptions: &self.model.descriptions,
            device: &self.model.device,
        }
    }

    fn evaluate_dev(&self, _last: bool) -> Result<NerReport> {
        let vectors = self.model.type_vectors()?;
        evaluate_ner(&self.model.view(&vectors), &self.dev, EVAL_BATCH)
    }

    fn dev_score(report: &NerReport) -> Option<f64> {
        Some(report.f1)
    }

    fn save(&self, out: &Path, training: &serde_json::Value) -> Result<()> {
        let mut training = training.clone();
        training["split"] = self.split.clone();
        save_binder_model(
            out,
            &self.model.varmap,
            self.base,
            &self.model.types,
            &training,
        )
    }
}

/// Every entity type of the records is described in `types`, or an error naming those that are
/// not (and the file, `source`).
pub fn check_described(
    records: &[&LabeledRecord],
    types: &[TypeDescription],
    source: &str,
) -> Result<HashMap<String, usize>> {
    let index: HashMap<String, usize> = (types.iter().enumerate())
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut missing: Vec<String> = records
        .iter()
        .flat_map(|r| spans_from_iob2(&r.tags))
        .filter(|s| !index.contains_key(&s.label))
        .map(|s| s.label)
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        bail!(
            "{source}: no description of the data's entity type(s) {}",
            missing.join(", ")
        );
    }
    Ok(index)
}

/// `record` with the entities of `types` turned into plain words (`O`).
pub fn without_types(record: &LabeledRecord, types: &[String]) -> LabeledRecord {
    let mut record = record.clone();
    for tag in &mut record.tags {
        let held = tag
            .split_once('-')
            .is_some_and(|(_, ty)| types.iter().any(|t| t == ty));
        if held {
            *tag = "O".into();
        }
    }
    record
}

/// The training examples of `records`: sentences with at least one entity (the reference drops
/// training windows without one), and how many were dropped.
pub fn binder_examples(
    model: &BinderTraining,
    records: &[&LabeledRecord],
    index: &HashMap<String, usize>,
) -> Result<(Vec<BinderExample>, usize)> {
    let mut examples = Vec::with_capacity(records.len());
    for record in records {
        if let Some(example) =
            binder_example(model, &record.id, &record.words, &record.tags, index)?
        {
            examples.push(example);
        }
    }
    let without = records.len() - examples.len();
    Ok((examples, without))
}

/// One sentence's training example (`id` names it in errors), or `None` without an entity; every
/// entity type must be in `index`.
pub fn binder_example(
    model: &BinderTraining,
    id: &str,
    words: &[String],
    tags: &[String],
    index: &HashMap<String, usize>,
) -> Result<Option<BinderExample>> {
    let entities = spans_from_iob2(tags)
        .into_iter()
        .map(|s| match index.get(&s.label) {
            Some(&t) => Ok((WordSpan::new(s.start, s.end), t)),
            None => bail!("record `{id}`: entity type {} is not described", s.label),
        })
        .collect::<Result<Vec<_>>>()?;
    if entities.is_empty() {
        return Ok(None);
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let sentence = SubwordSentence::encode(&model.tokenizer, &words)?;
    if let Err(e) = sentence.check_fits(model.model.max_positions()) {
        bail!("training record `{id}`: {e}");
    }
    Ok(Some(BinderExample { sentence, entities }))
}

pub struct BinderOutcome {
    /// The best epoch's model.
    pub model: BinderTraining,
    /// Epochs trained (early stopping may end it before `--epochs`).
    pub epochs: usize,
    pub best_dev_f1: f64,
    pub train_seconds: f64,
}

/// Trains on `dataset`'s training split (the first `limit_train` records), picking the best epoch
/// on its dev split; with `out`, saves there (model, metrics.jsonl, checkpoint; `resume`
/// continues from the checkpoint).
#[allow(clippy::too_many_arguments)]
pub fn train_binder(
    base: &ModelDir,
    dataset: &Dataset,
    types: Vec<TypeDescription>,
    types_source: &str,
    opts: &TrainOptions,
    device: &Device,
    out: Option<&Path>,
    resume: bool,
) -> Result<BinderOutcome> {
    if opts.batch_size == 0 || opts.epochs == 0 {
        bail!("--batch-size and --epochs must be positive");
    }
    let started = std::time::Instant::now();
    let held_out = |records: Vec<&LabeledRecord>| -> Vec<LabeledRecord> {
        records
            .into_iter()
            .map(|r| without_types(r, &opts.hold_out_types))
            .collect()
    };
    let train = held_out(dataset.split(Split::Train));
    let train: Vec<&LabeledRecord> = train.iter().collect();
    let train = &train[..opts.limit_train.unwrap_or(train.len()).min(train.len())];
    let dev = held_out(dataset.split(Split::Dev));
    let dev: Vec<&LabeledRecord> = dev.iter().collect();
    if let Some(t) = (opts.hold_out_types.iter()).find(|t| types.iter().any(|d| &d.name == *t)) {
        bail!("--hold-out-types {t}: {types_source} describes it; a held-out type is described only at tag time");
    }
    let index = check_described(train, &types, types_source)?;
    check_described(&dev, &types, types_source)?;
    let model = BinderTraining::from_base(base, types, device, opts)?;
    let (examples, without) = binder_examples(&model, train, &index)?;
    if examples.is_empty() {
        bail!("no training sentence has an entity");
    }
    eprintln!(
        "training BINDER ({} types) on {} sentences with entities ({without} without, left out), \
         {} dev; {} epochs of batch {}",
        model.types.len(),
        examples.len(),
        dev.len(),
        opts.epochs,
        opts.batch_size
    );
    let method = Binder {
        model,
        dev,
        base,
        split: dataset.split_record(),
    };
    let epochs = train_epochs(&method, &examples, opts, device, out, resume)?;
    Ok(BinderOutcome {
        model: method.model,
        epochs: epochs.history.len(),
        best_dev_f1: epochs.best_dev_score,
        train_seconds: started.elapsed().as_secs_f64(),
    })
}
