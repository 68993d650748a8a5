//! The training loss of SpERT and SpERT.MT ([`Task`]), named parts of one total:
//! - `entity`: cross-entropy of the entity classifier against each sampled span's class (its gold
//!   type, or "none"), averaged over the sampled spans of the batch (SpERT's `loss.py`);
//! - `relation`: binary cross-entropy of each relation type's logit against the multi-hot target,
//!   averaged over the types and the sampled pairs of the batch; zero when the batch has no pair
//!   (SpERT then trains the entity loss alone);
//! - `span_aux`, `pair_aux`: SpERT.MT's binary cross-entropies, entity vs non-entity over the
//!   sampled spans and related vs unrelated over the sampled pairs; zero when switched off;
//! - `iou`: SpERT.MT's boundary loss, binary cross-entropy of the IoU head's logit against each
//!   sampled span's IoU target (1 for a gold span, the best IoU with a gold entity for a negative,
//!   0 when it overlaps none), averaged over the sampled spans; zero when switched off.
//!
//! `total = entity + relation + span_aux_weight · span_aux + pair_aux_weight · pair_aux
//!  + iou_weight · iou`.
use candle_core::{Device, Result, Tensor};
use multitag_core::relations::{EntitySample, SamplingConfig};
use multitag_core::SplitMix64;

use super::example::{SpanExample, SpanSample};
use super::model::{SpanModel, SpanRef};
use crate::nn::Mode;
use crate::tasks::{Losses, Task};

/// The IoU head's target for a sampled span: 1 for a gold entity, else its best IoU with one
/// (0 when it overlaps none).
pub fn boundary_target(sample: &EntitySample) -> f32 {
    if sample.ty.is_some() {
        1.0
    } else {
        sample.target.iou
    }
}

/// SpERT's [`Task`]: the model being trained and how negatives are sampled.
pub struct RelationLoss<'a> {
    pub model: &'a SpanModel,
    pub sampling: SamplingConfig,
    pub device: &'a Device,
}

/// Mean binary cross-entropy of `logits` against `targets` (same shape), in the stable form
/// `max(x, 0) − x·y + ln(1 + e^−|x|)`.
fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((logits.relu()? - (logits * targets)?)? + softplus)?.mean_all()
}

impl Task for RelationLoss<'_> {
    type Example = SpanExample;

    fn loss_parts(&self) -> &'static [&'static str] {
        &["entity", "relation", "span_aux", "pair_aux", "iou"]
    }

    /// The batch's samples are drawn first, from one [`SplitMix64`] seeded by two draws, in
    /// batch order, so a seed gives one run.
    fn loss(
        &self,
        examples: &[SpanExample],
        batch: &[usize],
        draw: &mut dyn FnMut(usize) -> usize,
        mode: &Mode,
    ) -> Result<Losses> {
        let (model, device) = (self.model, self.device);
        let settings = &model.settings;
        let seed = ((draw(u32::MAX as usize) as u64) << 32) | draw(u32::MAX as usize) as u64;
        let mut rng = SplitMix64::new(seed);
        let relation_types = model.types.relations.len();
        let samples: Vec<SpanSample> = batch
            .iter()
            .map(|&i| examples[i].sample(&self.sampling, relation_types, &mut rng))
            .collect();
        let sentences: Vec<&[u32]> = batch
            .iter()
            .map(|&i| examples[i].sentence.ids.as_slice())
            .collect();
        let rows = model.encode(&sentences, device, mode)?;

        let (mut spans, mut targets, mut is_entity) = (Vec::new(), Vec::new(), Vec::new());
        let mut iou_targets = Vec::new();
        let (mut pairs, mut relation_targets, mut related) = (Vec::new(), Vec::new(), Vec::new());
        for (sentence, sample) in samples.iter().enumerate() {
            let first = spans.len();
            for (e, subwords) in sample.entities.iter().zip(&sample.subwords) {
                spans.push(SpanRef {
                    sentence,
                    subwords: subwords.clone(),
                    words: e.span.len(),
                });
                targets.push(e.ty.map_or(0, |ty| ty as u32 + 1));
                is_entity.push(f32::from(e.ty.is_some() as u8));
                iou_targets.push(boundary_target(e));
            }
            for r in &sample.relations {
                pairs.push((first + r.head, first + r.tail));
                related.push(f32::from(!r.types.is_empty() as u8));
            }
            relation_targets.extend_from_slice(&sample.relation_targets);
        }
        let zero = || Tensor::zeros((), candle_core::DType::F32, device);
        let weighted = |part: &Tensor, weight: f64| part * weight;
        if spans.is_empty() {
            let parts = self.loss_parts().iter().map(|&n| Ok((n, zero()?)));
            let parts = parts.collect::<Result<Vec<_>>>()?;
            return Ok(Losses {
                total: zero()?,
                parts,
            });
        }
        let scored = model.spans(&rows, &spans, mode)?;
        let entity =
            candle_nn::loss::cross_entropy(&scored.logits, &Tensor::new(targets, device)?)?;
        let span_aux = match &scored.binary {
            Some(b) => bce_with_logits(b, &Tensor::new(is_entity, device)?)?,
            None => zero()?,
        };
        let iou = match &scored.iou {
            Some(u) => bce_with_logits(u, &Tensor::new(iou_targets, device)?)?,
            None => zero()?,
        };
        let (relation, pair_aux) = if pairs.is_empty() {
            (zero()?, zero()?)
        } else {
            let scores = model.pairs(&rows, &spans, &scored, &pairs, mode)?;
            let shape = (pairs.len(), relation_types);
            let relation = if relation_types == 0 {
                zero()?
            } else {
                bce_with_logits(
                    &scores.logits,
                    &Tensor::from_vec(relation_targets, shape, device)?,
                )?
            };
            let pair_aux = match &scores.binary {
                Some(b) => bce_with_logits(b, &Tensor::new(related, device)?)?,
                None => zero()?,
            };
            (relation, pair_aux)
        };
        let total = ((&entity + &relation)? + weighted(&span_aux, settings.span_aux_weight)?)?
            .add(&weighted(&pair_aux, settings.pair_aux_weight)?)?
            .add(&weighted(&iou, settings.iou_weight)?)?;
        Ok(Losses {
            total,
            parts: vec![
                ("entity", entity),
                ("relation", relation),
                ("span_aux", span_aux),
                ("pair_aux", pair_aux),
                ("iou", iou),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::DropoutRng;
    use crate::tasks::relations::{fixtures, SpanSettings};

    #[test]
    fn boundary_targets_are_the_iou() {
        use multitag_core::relations::{IouTarget, WordSpan};
        let sample = |ty: Option<usize>, iou: f32| EntitySample {
            span: WordSpan::new(0, 2),
            ty,
            target: IouTarget {
                iou,
                ty: (iou > 0.0).then_some(1),
            },
        };
        assert_eq!(boundary_target(&sample(Some(1), 1.0)), 1.0);
        assert_eq!(boundary_target(&sample(None, 1.0 / 3.0)), 1.0 / 3.0);
        assert_eq!(boundary_target(&sample(None, 0.0)), 0.0);
    }

    fn parts(model: &SpanModel, mode: &Mode) -> Vec<(&'static str, f32)> {
        let examples = fixtures::examples();
        let task = RelationLoss {
            model,
            sampling: SamplingConfig::default(),
            device: &candle_core::Device::Cpu,
        };
        let losses = task
            .loss(&examples, &[0, 1], &mut fixtures::draws(7), mode)
            .unwrap();
        let total = losses.total.to_scalar::<f32>().unwrap();
        let parts: Vec<(&str, f32)> = losses
            .parts
            .iter()
            .map(|(n, t)| (*n, t.to_scalar::<f32>().unwrap()))
            .collect();
        let s = &model.settings;
        let expected = parts[0].1
            + parts[1].1
            + s.span_aux_weight as f32 * parts[2].1
            + s.pair_aux_weight as f32 * parts[3].1
            + s.iou_weight as f32 * parts[4].1;
        assert!((total - expected).abs() < 1e-5, "{total} vs {expected}");
        parts
    }

    /// Each switch off removes its part: the auxiliary terms are zero, and IoU off changes only
    /// the entity term (to SpERT's hard targets). (Enriched input changes the relation
    /// classifier's shape: `model::tests`.)
    #[test]
    fn switches_remove_their_loss_parts() {
        let full = fixtures::settings(0.0);
        let (varmap, model) = fixtures::model(full, 0.0);
        let all = parts(&model, &Mode::Infer);
        assert_eq!(
            all.iter().map(|p| p.0).collect::<Vec<_>>(),
            ["entity", "relation", "span_aux", "pair_aux", "iou"]
        );
        assert!(all.iter().all(|p| p.1 > 0.0), "{all:?}");
        // Same weights, other switches: a model over the same variables.
        let with = |settings: SpanSettings| {
            let vb = candle_nn::VarBuilder::from_varmap(
                &varmap,
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            );
            let types = fixtures::types();
            parts(
                &SpanModel::load(&fixtures::config(0.0), types, settings, vb).unwrap(),
                &Mode::Infer,
            )
        };
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        let spert = with(SpanSettings {
            span_aux: false,
            pair_aux: false,
            iou_boundaries: false,
            ..full
        });
        assert_eq!((spert[2].1, spert[3].1, spert[4].1), (0.0, 0.0, 0.0));
        assert!(close(spert[0].1, all[0].1) && close(spert[1].1, all[1].1));
        let no_iou = with(SpanSettings {
            iou_boundaries: false,
            ..full
        });
        assert_eq!(no_iou[4].1, 0.0);
        assert!(
            (0..4).all(|i| close(no_iou[i].1, all[i].1)),
            "{no_iou:?} {all:?}"
        );
    }

    /// The pitfall the crate's tests guard against: every parameter, the encoder's included,
    /// gets a gradient from the full SpERT.MT loss (with dropout).
    #[test]
    fn every_parameter_receives_a_gradient() -> Result<()> {
        let (varmap, model) = fixtures::model(fixtures::settings(0.1), 0.1);
        let examples = fixtures::examples();
        let task = RelationLoss {
            model: &model,
            sampling: SamplingConfig::default(),
            device: &candle_core::Device::Cpu,
        };
        let rng = DropoutRng::new(3);
        let losses = task.loss(
            &examples,
            &[0, 1],
            &mut fixtures::draws(1),
            &Mode::Train(&rng),
        )?;
        let grads = losses.total.backward()?;
        crate::testing::assert_every_variable_trained(&varmap, &grads, 30);
        Ok(())
    }

    #[test]
    fn binary_cross_entropy_is_stable_and_right() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::new(&[0f32, 2.0, -100.0, 100.0], &dev)?;
        let y = Tensor::new(&[1f32, 0.0, 0.0, 1.0], &dev)?;
        let loss = bce_with_logits(&x, &y)?.to_scalar::<f32>()?;
        let expected = (2f32.ln() + (1.0 + 2f32.exp()).ln()) / 4.0;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
        Ok(())
    }
}
