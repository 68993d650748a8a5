//! The model being trained: its trainable variables, the task model built over them, and the
//! tokenizer. Dev evaluation, and `compare`'s test evaluation after training, borrow it through
//! the tagging task's view (its `Predictor`), the one prediction path the inference `Tagger` also
//! uses.
use anyhow::Result;
use candle_core::Device;
use candle_nn::VarMap;
use multitag_core::LabelMap;
use multitag_model::tasks::tagging::{
    TaggingLoss, TaggingSource, TaggingView, DEFAULT_TITLE_TOKENS,
};
use multitag_model::{NerModel, WordTokenizer};

use super::TrainOptions;
use crate::model_dir::ModelDir;

pub struct TrainingModel {
    pub varmap: VarMap,
    pub model: NerModel,
    pub tokenizer: WordTokenizer,
    pub device: Device,
}

impl TrainingModel {
    /// The base model's encoder with a new head for `labels` (seeded from `opts.seed`) and the
    /// tagging layers `opts` asks for, computing in `opts.precision`.
    pub fn from_base(
        base: &ModelDir,
        labels: &LabelMap,
        device: &Device,
        opts: &TrainOptions,
    ) -> Result<Self> {
        let (varmap, mut model) = base.trainable(labels, device, opts.seed, opts.tagging_layers)?;
        opts.set_up_encoder(&mut model.encoder, base)?;
        Ok(Self {
            varmap,
            model,
            tokenizer: base.tokenizer()?,
            device: device.clone(),
        })
    }

    /// The tagging task's loss as `opts` asks, rows padded to at least `min_widths` (titles,
    /// descriptions).
    pub fn task(&self, opts: &TrainOptions, min_widths: (usize, usize)) -> TaggingLoss<'_> {
        TaggingLoss {
            model: &self.model,
            pad_id: self.tokenizer.pad_id(),
            objective: opts.description_loss(),
            distill: opts.distill,
            min_widths,
            device: &self.device,
        }
    }
}

/// Predictions from the model as it is now, as an inference tagger would make them: the model
/// being trained is the tagging task's [`multitag_model::Predictor`].
impl TaggingSource for TrainingModel {
    fn view(&self) -> TaggingView<'_> {
        TaggingView {
            model: &self.model,
            tokenizer: &self.tokenizer,
            device: &self.device,
            max_tokens: DEFAULT_TITLE_TOKENS,
        }
    }
}
