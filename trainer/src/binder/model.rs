//! The BINDER model being trained or read back: built over the base encoder's weights (the text
//! encoder under `bert.`, a copy of it under `type_encoder.`), saved as a model directory (the
//! base's config.json and tokenizer.json, model.safetensors, the type descriptions as
//! `types.json`, training.json with `task: binder` and the options).
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use candle_nn::VarMap;
use multitag_core::binder::{read_type_descriptions, to_json, TypeDescription};
use multitag_model::nn::weights;
use multitag_model::tasks::binder::{
    encode_descriptions, tagger, BinderModel, BinderSettings, BinderTagger, BinderView, TypeVectors,
};
use multitag_model::{DenseCompute, TaskKind, WordTokenizer};

use crate::model_dir::{ModelDir, WeightsFormat};
use crate::output::{write_atomic, write_json, write_weights};
use crate::train::TrainOptions;

/// A type descriptions file (`--types`, or a model's types.json).
pub fn read_types(path: &Path) -> Result<Vec<TypeDescription>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(read_type_descriptions(&path.display().to_string(), &text)?)
}

pub struct BinderTraining {
    pub varmap: VarMap,
    pub model: BinderModel,
    pub tokenizer: WordTokenizer,
    pub device: Device,
    pub types: Vec<TypeDescription>,
    /// Each type's description as sub-word ids, in `types`' order.
    pub descriptions: Vec<Vec<u32>>,
}

impl BinderTraining {
    /// The base encoder twice (text and types) with fresh heads (seeded from `opts.seed`).
    pub fn from_base(
        base: &ModelDir,
        types: Vec<TypeDescription>,
        device: &Device,
        opts: &TrainOptions,
    ) -> Result<Self> {
        let settings = BinderSettings::default();
        let (varmap, mut model) =
            base.trainable_model(&base.config, device, opts.seed, &["type_encoder"], |vb| {
                BinderModel::load(&base.config, settings, vb)
            })?;
        opts.set_up_encoder(&mut model.text, base)?;
        opts.set_up_encoder(&mut model.type_encoder, base)?;
        let tokenizer = base.tokenizer()?;
        let descriptions = encode_descriptions(&tokenizer, &types)?;
        Ok(Self {
            varmap,
            model,
            tokenizer,
            device: device.clone(),
            types,
            descriptions,
        })
    }

    /// The types' vectors from the model as it is now (inference).
    pub fn type_vectors(&self) -> Result<TypeVectors> {
        Ok(tagger::type_vectors(
            &self.model,
            &self.tokenizer,
            &self.types,
            &self.device,
        )?)
    }

    /// The model as a predictor, with `vectors` (from [`Self::type_vectors`]).
    pub fn view<'a>(&'a self, vectors: &'a TypeVectors) -> BinderView<'a> {
        BinderView {
            model: &self.model,
            tokenizer: &self.tokenizer,
            device: &self.device,
            types: &self.types,
            vectors,
        }
    }
}

/// Writes the model directory (see the module doc); `training` is the provenance.
pub fn save_binder_model(
    out: &Path,
    varmap: &VarMap,
    base: &ModelDir,
    types: &[TypeDescription],
    training: &serde_json::Value,
) -> Result<()> {
    write_atomic(&out.join("config.json"), base.config_text.as_bytes())?;
    write_atomic(&out.join("tokenizer.json"), &base.tokenizer_bytes)?;
    write_atomic(&out.join("types.json"), to_json(types).as_bytes())?;
    write_weights(out, varmap)?;
    let mut training = training.clone();
    training["task"] = TaskKind::Binder.name().into();
    write_json(&out.join("training.json"), &training)
}

/// A trained BINDER directory at inference: its types (types.json) and weights, every tensor
/// checked to be used; or an exported one (model.gguf, whose metadata holds the types and
/// settings), its encoders' dense layers multiplying as `compute` says.
pub fn load_tagger(dir: &ModelDir, device: &Device, compute: DenseCompute) -> Result<BinderTagger> {
    crate::train::check_task(dir, crate::train::Task::Binder)?;
    if let WeightsFormat::Gguf(file) = &dir.weights {
        let tokenizer_source = dir.path.join("tokenizer.json").display().to_string();
        return Ok(BinderTagger::from_gguf(
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
            "{}: training.json says task `binder`, but there is no types.json beside it",
            dir.path.display()
        );
    }
    let types = read_types(&types_path)?;
    let bytes = dir.require_safetensors("tag with")?;
    let source = dir.path.join("model.safetensors").display().to_string();
    let tensors = weights::load_safetensors(&source, bytes, device)?;
    Ok(BinderTagger::from_tensors(
        &source,
        &dir.config,
        BinderSettings::default(),
        types,
        tensors,
        dir.tokenizer()?,
        device,
    )?)
}

/// [`load_tagger`] with the types of the file `more` (`--types`) after the trained ones, said on
/// stderr; without a file, the trained types alone.
pub fn load_tagger_with_types(
    dir: &ModelDir,
    device: &Device,
    compute: DenseCompute,
    more: Option<&Path>,
) -> Result<BinderTagger> {
    let mut tagger = load_tagger(dir, device, compute)?;
    if let Some(path) = more {
        let added = tagger.add_types(&read_types(path)?)?;
        eprintln!(
            "{}: {added} type(s) described at tag time, after the {} trained",
            path.display(),
            tagger.types().len() - added
        );
    }
    Ok(tagger)
}
