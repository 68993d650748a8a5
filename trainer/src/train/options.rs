//! What a training run is asked to do: the command line's training options (also stored in each
//! checkpoint and `training.json`), the description objective and the compute precision.
use candle_core::DType;
use clap::ValueEnum;
use multitag_model::tasks::tagging::DescriptionLoss;
use multitag_model::TripletForm;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// NER only: plain fine-tuning, the paper's baseline.
    None,
    /// NER + lambda * triplet loss on cos(t, d+) - cos(t, d-).
    Triplet,
    /// NER + lambda * in-batch InfoNCE from titles to descriptions.
    Infonce,
}

/// The method a command trains (`--task`, which also picks the defaults of [`TrainOptions`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Tag titles (BIO), with the title/description objectives: multi-task triplet NER.
    #[default]
    Tagging,
    /// Entities and relations between them in sentences: SpERT / SpERT.MT (SpERT JSON data).
    Relations,
    /// Entities of types described in words (BINDER, a bi-encoder): labeled data plus a type
    /// descriptions file (`--types`).
    Binder,
}

/// Training options. Defaults are the tagging recipe's; with `--task relations`, SpERT's
/// (20 epochs of batch 2; the learning rate, warm-up, weight decay and clipping are the same);
/// with `--task binder`, BINDER's (20 epochs of batch 8, learning rate 3e-5 decaying linearly
/// from the first step, no weight decay).
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct TrainOptions {
    /// What to train: tagging (titles, the description objectives), relations (SpERT JSON) or
    /// binder (entity types described in words).
    #[arg(long, value_enum, default_value_t = Task::Tagging)]
    #[serde(default)]
    pub task: Task,
    #[arg(long, default_value_t = 3, default_value_ifs = [("task", "relations", "20"), ("task", "binder", "20")])]
    pub epochs: usize,
    #[arg(long, default_value_t = 32, default_value_ifs = [("task", "relations", "2"), ("task", "binder", "8")])]
    pub batch_size: usize,
    #[arg(
        long,
        default_value_t = 5e-5,
        default_value_if("task", "binder", "3e-5")
    )]
    pub lr: f64,
    /// Fraction of steps with linear warm-up.
    #[arg(long, default_value_t = 0.1, default_value_if("task", "binder", "0"))]
    pub warmup: f64,
    #[arg(long, default_value_t = 0.01, default_value_if("task", "binder", "0"))]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 disables).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    #[arg(long, default_value_t = 48)]
    pub title_tokens: usize,
    #[arg(long, default_value_t = 128)]
    pub description_tokens: usize,
    #[arg(long, value_enum, default_value_t = Objective::None)]
    pub objective: Objective,
    /// Weight of the description objective (0 = plain fine-tuning).
    #[arg(long, default_value_t = 1.0)]
    pub lambda: f64,
    /// bpr: -ln sigmoid(d); sigmoid: 1 - sigmoid(d), the paper's objective taken literally.
    #[arg(long, default_value_t = TripletForm::Bpr)]
    pub triplet_form: TripletForm,
    /// InfoNCE temperature.
    #[arg(long, default_value_t = 0.05)]
    pub temperature: f64,
    /// Weight of the distillation term: the cosine distance of each training title's (and
    /// description's) embedding from the base encoder's embedding of it, which keeps the matching
    /// the base encoder does on other catalogs (0 disables).
    #[arg(long, default_value_t = 0.0)]
    #[serde(default)]
    pub distill: f64,
    /// Transformer layers of the tagger's own above the encoder, each starting as a copy of its
    /// top layer: the tags read the top, sentence embeddings the base encoder's depth, so the
    /// tagging task needs to move the shared layers less.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub tagging_layers: usize,
    /// Keep the embeddings and this many bottom transformer layers as the base encoder has them
    /// (0: the embeddings only): fewer weights to move away from what matches well, and no
    /// backward pass through them. Unset: every weight trains.
    #[arg(long)]
    #[serde(default)]
    pub frozen_layers: Option<usize>,
    /// Relations: the model, `spert` (as published), `spert-mt` (SpERT.MT: all three additions)
    /// or `spert` with any of `+mtl` (binary heads against the negative samples), `+iou` (IoU
    /// targets for overlapping negatives), `+enriched` (argument type distributions in the pair
    /// representation).
    #[arg(long, default_value = "spert-mt")]
    #[serde(default = "default_span_method")]
    pub span_method: String,
    /// Relations: negative (non-entity) spans sampled per sentence and step.
    #[arg(long, default_value_t = 100)]
    #[serde(default = "default_negatives")]
    pub neg_entities: usize,
    /// Relations: negative (unrelated entity) pairs sampled per sentence and step.
    #[arg(long, default_value_t = 100)]
    #[serde(default = "default_negatives")]
    pub neg_relations: usize,
    /// Relations: the longest candidate span, in words.
    #[arg(long, default_value_t = 10)]
    #[serde(default = "default_max_span_words")]
    pub max_span_words: usize,
    /// Relations: a relation is predicted when its sigmoid score is at least this.
    #[arg(long, default_value_t = 0.4)]
    #[serde(default = "default_rel_threshold")]
    pub rel_threshold: f32,
    /// Relations with `+mtl`: the loss weight of the entity-vs-non-entity span head.
    #[arg(long, default_value_t = 1.0)]
    #[serde(default = "default_loss_weight")]
    pub span_aux_weight: f64,
    /// Relations with `+mtl`: the loss weight of the related-vs-unrelated pair head.
    #[arg(long, default_value_t = 1.0)]
    #[serde(default = "default_loss_weight")]
    pub pair_aux_weight: f64,
    /// Relations with `+iou`: the loss weight of the span classifier's IoU head.
    #[arg(long, default_value_t = 1.0)]
    #[serde(default = "default_loss_weight")]
    pub iou_weight: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many epochs without a better dev F1 (binder: 5, about the reference's
    /// 2,000 steps on BC5CDR).
    #[arg(long, default_value_t = 2, default_value_if("task", "binder", "5"))]
    pub patience: usize,
    /// BINDER: entity types to leave out of training as if they were not labeled (their words
    /// become plain words in the training and dev records), so a type can be described at tag
    /// time and measured zero-shot.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub hold_out_types: Vec<String>,
    /// Train on only the first N training items (a reduced budget for CPU runs).
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Compute precision of the encoder: f32, or bf16 mixed precision (f32 master weights,
    /// optimizer state and loss; for CUDA).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    #[serde(default)]
    pub precision: Precision,
}

/// `dir`'s model is for `task`, or an error naming both.
pub fn check_task(dir: &crate::model_dir::ModelDir, task: Task) -> anyhow::Result<()> {
    let kind = match task {
        Task::Tagging => multitag_model::TaskKind::Tagging,
        Task::Relations => multitag_model::TaskKind::Relations,
        Task::Binder => multitag_model::TaskKind::Binder,
    };
    if dir.task != kind {
        anyhow::bail!(
            "{}: a {} model, not a {} one",
            dir.path.display(),
            dir.task.name(),
            kind.name()
        );
    }
    Ok(())
}

fn default_span_method() -> String {
    "spert-mt".into()
}

fn default_negatives() -> usize {
    multitag_core::relations::NEG_ENTITIES
}

fn default_max_span_words() -> usize {
    multitag_core::relations::MAX_SPAN_WORDS
}

fn default_rel_threshold() -> f32 {
    multitag_core::relations::REL_THRESHOLD
}

fn default_loss_weight() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

impl TrainOptions {
    /// What the options ask of the encoder being trained, whatever the task: its compute
    /// precision and its frozen layers (at most the base encoder's).
    pub fn set_up_encoder(
        &self,
        encoder: &mut multitag_model::BertEncoder,
        base: &crate::model_dir::ModelDir,
    ) -> anyhow::Result<()> {
        if let Some(n) = self.frozen_layers {
            let layers = base.config.num_hidden_layers;
            anyhow::ensure!(
                n <= layers,
                "--frozen-layers {n}: the base encoder has {layers} layers"
            );
        }
        encoder.compute_dtype = self.precision.dtype();
        encoder.frozen_layers = self.frozen_layers;
        Ok(())
    }

    pub fn uses_descriptions(&self) -> bool {
        self.objective != Objective::None && self.lambda > 0.0
    }

    pub fn variant_name(&self) -> String {
        let mut name = match self.task {
            Task::Tagging => self.objective_name(),
            Task::Relations => self.span_method.clone(),
            Task::Binder => format!("binder ({} epochs)", self.epochs),
        };
        if self.distill > 0.0 {
            name = format!("{name} + distill {}", self.distill);
        }
        if self.tagging_layers > 0 {
            name = format!("{name} + {} tagging layers", self.tagging_layers);
        }
        if let Some(n) = self.frozen_layers {
            name = format!("{name} + {n} frozen layers");
        }
        name
    }

    fn objective_name(&self) -> String {
        match (self.objective, self.uses_descriptions()) {
            (_, false) => "baseline".into(),
            (Objective::Triplet, _) => format!("triplet-{} λ={}", self.triplet_form, self.lambda),
            (Objective::Infonce, _) => format!("infonce τ={} λ={}", self.temperature, self.lambda),
            (Objective::None, _) => unreachable!("uses_descriptions is false for None"),
        }
    }

    /// The tagging task's description loss for these options.
    pub fn description_loss(&self) -> DescriptionLoss {
        match (self.objective, self.uses_descriptions()) {
            (_, false) | (Objective::None, _) => DescriptionLoss::None,
            (Objective::Triplet, true) => DescriptionLoss::Triplet {
                form: self.triplet_form,
                lambda: self.lambda,
            },
            (Objective::Infonce, true) => DescriptionLoss::InfoNce {
                temperature: self.temperature,
                lambda: self.lambda,
            },
        }
    }
}

/// The options a command line gives (`args` without the program name): for tests.
#[cfg(test)]
pub fn options_from(args: &[&str]) -> TrainOptions {
    use clap::Parser;
    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        options: TrainOptions,
    }
    Command::parse_from(std::iter::once("trainer").chain(args.iter().copied())).options
}
