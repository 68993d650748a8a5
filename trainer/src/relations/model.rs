//! The span model being trained or read back: built over the base encoder's weights, saved as a
//! model directory (the base's config.json and tokenizer.json, model.safetensors with the encoder
//! under `bert.` and the heads beside it, the types as a SpERT types file `types.json`, and
//! training.json with `task: relations` and the options, which give the head's shape and the
//! decoding settings), and the documents' predictions through the one inference path
//! ([`multitag_model::tasks::relations::extract`]).
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use candle_nn::VarMap;
use multitag_core::relations::{DecodeConfig, Decoded, Document, SamplingConfig, TypeSet};
use multitag_model::nn::weights;
use multitag_model::tasks::relations::{
    extract, ExtractConfig, SpanExtractor, SpanModel, SpanSettings, SubwordSentence,
};
use multitag_model::{DenseCompute, TaskKind, WordTokenizer};

use crate::model_dir::{ModelDir, WeightsFormat};
use crate::output::{write_atomic, write_json, write_weights};
use crate::train::TrainOptions;

/// The model's settings (`--span-method`), the negative sampling and the decoding of `opts`.
pub struct Recipe {
    pub settings: SpanSettings,
    pub sampling: SamplingConfig,
    pub extract: ExtractConfig,
}

impl Recipe {
    pub fn of(opts: &TrainOptions) -> Result<Self> {
        let mut settings = SpanSettings::from_variant(&opts.span_method)
            .map_err(|e| anyhow::anyhow!("--span-method: {e}"))?;
        for (name, weight) in [
            ("--span-aux-weight", opts.span_aux_weight),
            ("--pair-aux-weight", opts.pair_aux_weight),
            ("--iou-weight", opts.iou_weight),
        ] {
            if !(weight.is_finite() && weight >= 0.0) {
                bail!("{name} {weight} is not a finite weight of at least 0");
            }
        }
        settings.span_aux_weight = opts.span_aux_weight;
        settings.pair_aux_weight = opts.pair_aux_weight;
        settings.iou_weight = opts.iou_weight;
        if opts.max_span_words == 0 {
            bail!("--max-span-words must be positive");
        }
        if !(0.0..=1.0).contains(&opts.rel_threshold) {
            bail!("--rel-threshold {} is not in [0, 1]", opts.rel_threshold);
        }
        Ok(Self {
            settings,
            sampling: SamplingConfig {
                max_span_words: opts.max_span_words,
                neg_entities: opts.neg_entities,
                neg_relations: opts.neg_relations,
            },
            extract: ExtractConfig {
                max_span_words: opts.max_span_words,
                decode: DecodeConfig {
                    rel_threshold: opts.rel_threshold,
                    ..DecodeConfig::default()
                },
                ..ExtractConfig::default()
            },
        })
    }
}

pub struct RelationModel {
    pub varmap: VarMap,
    pub model: SpanModel,
    pub tokenizer: WordTokenizer,
    pub device: Device,
    pub recipe: Recipe,
}

impl RelationModel {
    /// The base encoder with fresh heads for `types` (seeded from `opts.seed`).
    pub fn from_base(
        base: &ModelDir,
        types: &TypeSet,
        device: &Device,
        opts: &TrainOptions,
    ) -> Result<Self> {
        let recipe = Recipe::of(opts)?;
        let (varmap, mut model) =
            base.trainable_model(&base.config, device, opts.seed, &[], |vb| {
                SpanModel::load(&base.config, types.clone(), recipe.settings, vb)
            })?;
        opts.set_up_encoder(&mut model.encoder, base)?;
        Ok(Self {
            varmap,
            model,
            tokenizer: base.tokenizer()?,
            device: device.clone(),
            recipe,
        })
    }

    pub fn predict(&self, documents: &[Document], batch_size: usize) -> Result<Vec<Decoded>> {
        predict_documents(
            &self.model,
            &self.tokenizer,
            &self.recipe.extract,
            &self.device,
            documents,
            batch_size,
        )
    }
}

/// Each document's entities and relations, `batch_size` documents per encoder pass. A document
/// longer than the encoder's positions is an error naming its index in its file.
pub fn predict_documents(
    model: &SpanModel,
    tokenizer: &WordTokenizer,
    config: &ExtractConfig,
    device: &Device,
    documents: &[Document],
    batch_size: usize,
) -> Result<Vec<Decoded>> {
    let mut out = Vec::with_capacity(documents.len());
    for chunk in documents.chunks(batch_size.max(1)) {
        let sentences = chunk
            .iter()
            .map(|d| {
                let words: Vec<&str> = d.tokens.iter().map(String::as_str).collect();
                let sentence = SubwordSentence::encode(tokenizer, &words)?;
                sentence
                    .check_fits(model.max_positions())
                    .map_err(|e| anyhow::anyhow!("document {}: {e}", d.index))?;
                Ok(sentence)
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&SubwordSentence> = sentences.iter().collect();
        out.extend(extract(model, &refs, config, device)?);
    }
    Ok(out)
}

/// Writes the model directory (see the module doc); `training` is the provenance (options, epoch,
/// dev report), written with the task.
pub fn save_span_model(
    out: &Path,
    varmap: &VarMap,
    base: &ModelDir,
    types: &TypeSet,
    training: &serde_json::Value,
) -> Result<()> {
    write_atomic(&out.join("config.json"), base.config_text.as_bytes())?;
    write_atomic(&out.join("tokenizer.json"), &base.tokenizer_bytes)?;
    write_atomic(&out.join("types.json"), types.to_spert_json().as_bytes())?;
    write_weights(out, varmap)?;
    let mut training = training.clone();
    training["task"] = TaskKind::Relations.name().into();
    write_json(&out.join("training.json"), &training)
}

/// A trained relation model directory at inference: its types, its options (from training.json)
/// and its weights, every tensor checked to be used; or an exported one (model.gguf, whose
/// metadata holds the types and settings), its dense layers dequantized to f32.
pub fn load_extractor(dir: &ModelDir, device: &Device) -> Result<SpanExtractor> {
    load_extractor_with(dir, device, DenseCompute::default())
}

/// [`load_extractor`], an export's encoder multiplying as `compute` says (`--matmul`; its heads
/// are always f32, see [`SpanExtractor::from_gguf`]); a trained directory's float weights ignore
/// it.
pub fn load_extractor_with(
    dir: &ModelDir,
    device: &Device,
    compute: DenseCompute,
) -> Result<SpanExtractor> {
    crate::train::check_task(dir, crate::train::Task::Relations)?;
    if let WeightsFormat::Gguf(file) = &dir.weights {
        let tokenizer_source = dir.path.join("tokenizer.json").display().to_string();
        return Ok(SpanExtractor::from_gguf(
            file,
            &tokenizer_source,
            &dir.tokenizer_bytes,
            device,
            compute,
        )?);
    }
    let types_path = dir.path.join("types.json");
    if !types_path.is_file() {
        bail!(
            "{}: training.json says task `relations`, but there is no types.json beside it",
            dir.path.display()
        );
    }
    let text = std::fs::read_to_string(&types_path)
        .with_context(|| format!("reading {}", types_path.display()))?;
    let types = multitag_core::relations::read_types(&types_path.display().to_string(), &text)?;
    let training_path = dir.path.join("training.json");
    let training: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&training_path)
            .with_context(|| format!("reading {}", training_path.display()))?,
    )
    .with_context(|| format!("{}: not JSON", training_path.display()))?;
    let opts: TrainOptions = serde_json::from_value(training["options"].clone())
        .with_context(|| format!("{}: field `options`", training_path.display()))?;
    let recipe = Recipe::of(&opts).with_context(|| format!("{}", training_path.display()))?;
    let bytes = dir.require_safetensors("extract relations with")?;
    let source = dir.path.join("model.safetensors").display().to_string();
    let tensors = weights::load_safetensors(&source, bytes, device)?;
    let mut extractor = SpanExtractor::from_tensors(
        &source,
        &dir.config,
        types,
        recipe.settings,
        tensors,
        dir.tokenizer()?,
        device,
    )?;
    extractor.config = recipe.extract;
    Ok(extractor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::options_from as options;

    #[test]
    fn the_loss_weights_are_settings_and_must_be_weights() -> Result<()> {
        let published = Recipe::of(&options(&["--span-method", "spert-mt"]))?.settings;
        assert_eq!(
            (
                published.span_aux_weight,
                published.pair_aux_weight,
                published.iou_weight
            ),
            (1.0, 1.0, 1.0)
        );
        let set = Recipe::of(&options(&[
            "--span-aux-weight",
            "0.5",
            "--pair-aux-weight",
            "0.25",
            "--iou-weight",
            "2",
        ]))?
        .settings;
        assert_eq!(
            (set.span_aux_weight, set.pair_aux_weight, set.iou_weight),
            (0.5, 0.25, 2.0)
        );
        let err = Recipe::of(&options(&["--iou-weight=-1"]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("--iou-weight -1 is not a finite weight of at least 0")
        );
        // A training.json written before these options existed reads as the weights of 1.
        let mut old = serde_json::to_value(options(&[]))?;
        old.as_object_mut().unwrap().remove("iou_weight");
        let read: TrainOptions = serde_json::from_value(old)?;
        assert_eq!(read.iou_weight, 1.0);
        Ok(())
    }
}
