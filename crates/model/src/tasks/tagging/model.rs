//! The multi-task NER model of Siskind & Shah: one BERT encoder shared by a token classifier (the
//! tagging task) and mean-pooled sentence embeddings (the title/description task).
//!
//! The encoder may have layers above its embedding depth ([`BertConfig::embedding_depth`]) that
//! only the token classifier reads: the tagger's own layers. Tagging then moves the shared
//! layers less, so the embeddings keep more of what the base encoder matched on (measured in
//! docs/results.md), and the model is still one BERT that Hugging Face transformers loads as a
//! token classifier.
use candle_core::{Device, Result, Tensor};
use multitag_core::LabelMap;

use super::head::TokenClassifier;
use crate::error::ModelError;
use crate::gguf::{GgufFile, KEY_LABELS};
use crate::models::{BertConfig, BertEncoder};
use crate::nn::{DenseCompute, Mode, Weights};

pub struct NerModel {
    pub encoder: BertEncoder,
    pub classifier: TokenClassifier,
    pub labels: LabelMap,
}

impl NerModel {
    /// `weights` is the checkpoint root (a `VarBuilder` for float/trainable weights, or a
    /// [`crate::gguf::GgufFile`] for an exported model): the encoder lives under `bert.`, the head
    /// under `classifier.`.
    pub fn load<'a>(
        config: &BertConfig,
        labels: LabelMap,
        weights: impl Into<Weights<'a>>,
    ) -> Result<Self> {
        let vb = weights.into();
        Ok(Self {
            encoder: BertEncoder::load(config, vb.pp("bert"))?,
            classifier: TokenClassifier::load(
                config.hidden_size,
                labels.len(),
                config.hidden_dropout_prob,
                vb.pp("classifier"),
            )?,
            labels,
        })
    }

    /// Rebuilds an exported model (`trainer export`): config and labels from the GGUF metadata,
    /// weights as stored, dense layers multiplying as `compute` says.
    pub fn from_gguf(
        source: &str,
        bytes: &[u8],
        device: &Device,
        compute: DenseCompute,
    ) -> std::result::Result<Self, ModelError> {
        Self::from_gguf_file(&GgufFile::read(source, bytes)?, device, compute)
    }

    /// [`Self::from_gguf`] from a file already parsed. The tag list must fit the classifier and
    /// every tensor in the file must be used by the model the stored config describes.
    pub fn from_gguf_file(
        file: &GgufFile,
        device: &Device,
        compute: DenseCompute,
    ) -> std::result::Result<Self, ModelError> {
        let config = file.config()?;
        let labels = file.labels()?;
        let head_rows = file
            .tensor_shape("classifier.weight")
            .and_then(|shape| shape.first().copied());
        let labels_source = format!("{}: {KEY_LABELS}", file.source());
        Self::check_head(&labels, &labels_source, head_rows, file.source())?;
        let model = Self::load(&config, labels, Weights::gguf(file, compute, device))
            .map_err(|e| ModelError::Weights(format!("{}: {e}", file.source())))?;
        file.check_every_tensor_read(&config)?;
        Ok(model)
    }

    /// The classifier has one row per tag, so a tag list (named `labels_source`) of another
    /// length belongs to another model; `rows` is the classifier's in `weights_source`, `None`
    /// when it has none (the loader then reports the missing tensor). A list of the right length
    /// in another order cannot be told from the shape: the list's hash covers that
    /// ([`crate::gguf::labels_sha256`]).
    pub fn check_head(
        labels: &LabelMap,
        labels_source: &str,
        rows: Option<usize>,
        weights_source: &str,
    ) -> std::result::Result<(), ModelError> {
        match rows {
            Some(rows) if rows != labels.len() => Err(ModelError::Labels(format!(
                "{labels_source}: {} tags, but `classifier.weight` in {weights_source} has {rows} \
                 rows (one per tag): the labels and the weights belong to different models",
                labels.len()
            ))),
            _ => Ok(()),
        }
    }

    /// The hidden states the sentence embedding pools (the encoder's embedding depth) and the
    /// tag logits (read from the top layer) for a padded batch.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, mode: &Mode) -> Result<(Tensor, Tensor)> {
        let (top, embedding_states) = self
            .encoder
            .forward_with_embedding_states(ids, mask, mode)?;
        let logits = self.classifier.forward(&top, mode)?;
        Ok((embedding_states, logits))
    }

    /// Mean-pooled sentence embeddings `(batch, hidden)`.
    pub fn embed(&self, ids: &Tensor, mask: &Tensor, mode: &Mode) -> Result<Tensor> {
        self.encoder.embed(ids, mask, mode)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernels::DropoutRng;
    use crate::models::mean_pool;
    use crate::nn::{token_cross_entropy, triplet_loss, TripletForm};
    use crate::testing::assert_every_variable_trained;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    pub(crate) fn tiny_config(dropout: f32) -> BertConfig {
        BertConfig {
            vocab_size: 40,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: dropout,
            attention_probs_dropout_prob: dropout,
            max_position_embeddings: 32,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            model_type: Some("bert".into()),
            embedding_layers: None,
        }
    }

    fn labels() -> LabelMap {
        LabelMap::from_entity_types(&["BRAND", "TYPE"])
    }

    /// The pitfall this crate exists to avoid: with fused layer norm the encoder gets no gradient.
    #[test]
    fn every_parameter_receives_a_gradient_from_the_multitask_loss() -> Result<()> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let model = NerModel::load(&tiny_config(0.1), labels(), vb)?;
        let rng = DropoutRng::new(3);
        let mode = Mode::Train(&rng);
        let ids = Tensor::new(&[[1u32, 5, 6, 7, 2], [1, 8, 9, 2, 0]], &dev)?;
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 1, 0]], &dev)?;
        let targets = Tensor::new(&[[0u32, 1, 2, 0, 0], [0, 3, 4, 0, 0]], &dev)?;
        let weights = Tensor::new(&[[0f32, 1., 1., 1., 0.], [0., 1., 1., 0., 0.]], &dev)?;
        let (hidden, logits) = model.forward(&ids, &mask, &mode)?;
        let ner = token_cross_entropy(&logits, &targets, &weights)?;
        let title = mean_pool(&hidden, &mask)?;
        let desc_ids = Tensor::new(&[[1u32, 10, 11, 12, 2], [1, 13, 14, 2, 0]], &dev)?;
        let positive = model.embed(&desc_ids, &mask, &mode)?;
        let negative = model.embed(&desc_ids.flip(&[0])?, &mask.flip(&[0])?, &mode)?;
        let loss = (ner + triplet_loss(&title, &positive, &negative, TripletForm::Bpr)?)?;
        assert_every_variable_trained(&varmap, &loss.backward()?, 20);
        Ok(())
    }

    #[test]
    fn training_path_without_dropout_equals_inference_path() -> Result<()> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let model = NerModel::load(&tiny_config(0.0), labels(), vb)?;
        let ids = Tensor::new(&[[1u32, 5, 6, 2], [1, 8, 2, 0]], &dev)?;
        let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 1, 0]], &dev)?;
        let rng = DropoutRng::new(0);
        let (_, a) = model.forward(&ids, &mask, &Mode::Train(&rng))?;
        let (_, b) = model.forward(&ids, &mask, &Mode::Infer)?;
        // Only real tokens: inference does not compute the padding.
        let real = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let diff = (a - b)?
            .broadcast_mul(&real)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-4, "{diff}");
        Ok(())
    }

    /// Inference packs the real tokens of a batch together (see `TokenLayout`): each title's logits
    /// must equal those of the title run alone, whatever its neighbours' lengths.
    #[test]
    fn padding_does_not_change_real_tokens() -> Result<()> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let model = NerModel::load(&tiny_config(0.0), labels(), vb)?;
        let titles: [&[u32]; 3] = [&[1, 5, 2], &[1, 8, 9, 10, 11, 2], &[1, 7, 6, 2]];
        let (ids, mask) = crate::tokenize::collate(&titles, 0, &dev)?;
        let (_, batched) = model.forward(&ids, &mask, &Mode::Infer)?;
        for (row, title) in titles.iter().enumerate() {
            let alone = Tensor::new(*title, &dev)?.unsqueeze(0)?;
            let (_, own) = model.forward(&alone, &alone.ones_like()?, &Mode::Infer)?;
            let in_batch = batched.get(row)?.narrow(0, 0, title.len())?;
            let diff = (own.squeeze(0)? - in_batch)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-5, "title {row}: {diff}");
        }
        let padded = model.embed(&ids, &mask, &Mode::Infer)?;
        let first = Tensor::new(titles[0], &dev)?.unsqueeze(0)?;
        let alone = model.embed(&first, &first.ones_like()?, &Mode::Infer)?;
        let diff = (alone - padded.narrow(0, 0, 1)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    /// bf16 compute with f32 master weights: the loss stays close to f32's and every weight still
    /// gets an f32 gradient.
    #[test]
    fn bf16_compute_matches_f32_and_trains_every_parameter() -> Result<()> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let mut model = NerModel::load(&tiny_config(0.0), labels(), vb)?;
        let ids = Tensor::new(&[[1u32, 5, 6, 2], [1, 8, 2, 0]], &dev)?;
        let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 1, 0]], &dev)?;
        let targets = Tensor::new(&[[0u32, 1, 2, 0], [0, 1, 0, 0]], &dev)?;
        let weights = Tensor::new(&[[0f32, 1., 1., 0.], [0., 1., 0., 0.]], &dev)?;
        let rng = DropoutRng::new(0);
        let loss_at = |model: &NerModel| -> Result<Tensor> {
            let (_, logits) = model.forward(&ids, &mask, &Mode::Train(&rng))?;
            token_cross_entropy(&logits, &targets, &weights)
        };
        let full = loss_at(&model)?.to_scalar::<f32>()?;
        model.encoder.compute_dtype = DType::BF16;
        let loss = loss_at(&model)?;
        assert_eq!(loss.dtype(), DType::F32);
        let half = loss.to_scalar::<f32>()?;
        assert!(
            (full - half).abs() < 0.02 * full.abs().max(1.0),
            "{full} vs {half}"
        );
        assert_every_variable_trained(&varmap, &loss.backward()?, 0);
        Ok(())
    }
}
