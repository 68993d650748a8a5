//! BINDER's training loss ([`Task`]), named parts of one total:
//! - `start`, `end`, `span`: the NER losses, one row per gold mention (its start sub-word, end
//!   sub-word, span) whose softmax runs over the mention, `[CLS]` and its sentence's candidates
//!   that are not a gold mention of its type; rows averaged over the batch's mentions;
//! - `threshold`: `0.2 · start + 0.2 · end + 0.6 · span` of the threshold losses, one row per
//!   (sentence, type) whose softmax runs over `[CLS]` (the positive) and the same candidates;
//!   rows averaged over the batch's sentences times types.
//!
//! `total = 0.5 · (0.2 · start + 0.2 · end + 0.6 · span) + 0.5 · threshold` (the weights are
//! [`super::BinderSettings`]'). A candidate is a negative of every type it is not a gold mention
//! of: a mention of one type stays a negative of the others.
use std::collections::BTreeSet;

use candle_core::{Device, Result, Tensor, D};
use multitag_core::relations::WordSpan;

use super::model::{BinderModel, Candidates, SentenceCandidates};
use crate::nn::Mode;
use crate::tasks::relations::SubwordSentence;
use crate::tasks::{Losses, Task};

/// A score no candidate has: what pads a softmax row (its exponential is 0).
const FLOOR: f32 = -1e30;

/// A training sentence: its sub-words and its gold mentions (word span, type index).
#[derive(Debug, Clone, PartialEq)]
pub struct BinderExample {
    pub sentence: SubwordSentence,
    pub entities: Vec<(WordSpan, usize)>,
}

/// BINDER's [`Task`]: the model and the sub-word ids of every type's description, in type order.
pub struct BinderLoss<'a> {
    pub model: &'a BinderModel,
    pub descriptions: &'a [Vec<u32>],
    pub device: &'a Device,
}

/// Which candidate list a loss row reads.
#[derive(Clone, Copy)]
enum Kind {
    Start,
    End,
    Span,
}

/// Softmax rows over one kind of candidate: each row lists flat indices into the `(n, types)`
/// scores, the positive first.
#[derive(Default)]
struct Rows {
    threshold: Vec<Vec<u32>>,
    ner: Vec<Vec<u32>>,
}

impl Kind {
    /// The candidate (index into its list) of a gold mention.
    fn of(self, block: &SentenceCandidates, span: WordSpan) -> usize {
        match self {
            Kind::Start => block.starts.start + 1 + span.start,
            Kind::End => block.ends.start + 1 + span.end - 1,
            Kind::Span => {
                let k = block
                    .span_words
                    .binary_search_by(|w| (w.start, w.end).cmp(&(span.start, span.end)))
                    .expect("training candidates hold every word span");
                block.spans.start + 1 + k
            }
        }
    }

    fn block(self, block: &SentenceCandidates) -> std::ops::Range<usize> {
        match self {
            Kind::Start => block.starts.clone(),
            Kind::End => block.ends.clone(),
            Kind::Span => block.spans.clone(),
        }
    }

    /// The loss rows of one kind for the batch.
    fn rows(self, examples: &[&BinderExample], candidates: &Candidates, types: usize) -> Rows {
        let mut rows = Rows::default();
        for (example, block) in examples.iter().zip(&candidates.sentences) {
            let range = self.block(block);
            let cls = range.start;
            for t in 0..types {
                // One NER row per mention, as the reference has (two mentions of a type that
                // share a start, in nested data, give two start rows); the set leaves them all
                // out of the negatives.
                let mentions: Vec<usize> = (example.entities.iter())
                    .filter(|(_, ty)| *ty == t)
                    .map(|(span, _)| self.of(block, *span))
                    .collect();
                let gold: BTreeSet<usize> = mentions.iter().copied().collect();
                let flat = |c: usize| (c * types + t) as u32;
                let negatives: Vec<u32> = (cls + 1..range.end)
                    .filter(|c| !gold.contains(c))
                    .map(flat)
                    .collect();
                let mut threshold = vec![flat(cls)];
                threshold.extend(&negatives);
                rows.threshold.push(threshold);
                for &g in &mentions {
                    let mut ner = vec![flat(g), flat(cls)];
                    ner.extend(&negatives);
                    rows.ner.push(ner);
                }
            }
        }
        rows
    }
}

/// The mean over `rows` of `-log softmax(row)[0]`, each row read from `scores` flattened;
/// 0 without rows.
fn contrastive(scores: &Tensor, rows: &[Vec<u32>]) -> Result<Tensor> {
    let device = scores.device();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    if width == 0 {
        return Tensor::new(0f32, device);
    }
    let flat = scores.flatten_all()?;
    let floor = flat.dim(0)? as u32;
    let flat = Tensor::cat(&[&flat, &Tensor::new(&[FLOOR], device)?], 0)?;
    let mut ids = Vec::with_capacity(rows.len() * width);
    for row in rows {
        ids.extend(row);
        ids.extend(std::iter::repeat_n(floor, width - row.len()));
    }
    let logits = flat
        .index_select(&Tensor::new(ids, device)?, 0)?
        .reshape((rows.len(), width))?;
    candle_nn::ops::log_softmax(&logits, D::Minus1)?
        .narrow(1, 0, 1)?
        .mean_all()?
        .neg()
}

impl Task for BinderLoss<'_> {
    type Example = BinderExample;

    fn loss_parts(&self) -> &'static [&'static str] {
        &["start", "end", "span", "threshold"]
    }

    /// Nothing is sampled: every candidate of every sentence is in the loss.
    fn loss(
        &self,
        examples: &[BinderExample],
        batch: &[usize],
        _draw: &mut dyn FnMut(usize) -> usize,
        mode: &Mode,
    ) -> Result<Losses> {
        let (model, device) = (self.model, self.device);
        let settings = &model.settings;
        let descriptions: Vec<&[u32]> = self.descriptions.iter().map(Vec::as_slice).collect();
        let types = model.type_vectors(&descriptions, device, mode)?;
        let batch: Vec<&BinderExample> = batch.iter().map(|&i| &examples[i]).collect();
        let ids: Vec<&[u32]> = batch.iter().map(|e| e.sentence.ids.as_slice()).collect();
        let (states, seq) = model.encode(&ids, device, mode)?;
        let sentences: Vec<&SubwordSentence> = batch.iter().map(|e| &e.sentence).collect();
        let candidates = Candidates::new(&sentences, seq, None);
        let n_types = descriptions.len();
        let scores = [
            model.start_scores(&states, &candidates.starts, &types, mode)?,
            model.end_scores(&states, &candidates.ends, &types, mode)?,
            model.span_scores(&states, &candidates.spans, &types, mode)?,
        ];
        let mut ner = Vec::with_capacity(3);
        let mut threshold = Vec::with_capacity(3);
        for (kind, scores) in [Kind::Start, Kind::End, Kind::Span]
            .into_iter()
            .zip(&scores)
        {
            let rows = kind.rows(&batch, &candidates, n_types);
            ner.push(contrastive(scores, &rows.ner)?);
            threshold.push(contrastive(scores, &rows.threshold)?);
        }
        let weights = [
            settings.start_weight,
            settings.end_weight,
            settings.span_weight,
        ];
        let weighted = |parts: &[Tensor]| -> Result<Tensor> {
            let mut sum = (&parts[0] * weights[0])?;
            for (part, w) in parts.iter().zip(weights).skip(1) {
                sum = (sum + (part * w)?)?;
            }
            Ok(sum)
        };
        let threshold = weighted(&threshold)?;
        let total =
            ((weighted(&ner)? * settings.ner_weight)? + (&threshold * settings.threshold_weight)?)?;
        let [start, end, span]: [Tensor; 3] = ner.try_into().expect("three kinds");
        Ok(Losses {
            total,
            parts: vec![
                ("start", start),
                ("end", end),
                ("span", span),
                ("threshold", threshold),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::{sentence, tiny};
    use super::*;

    fn example() -> BinderExample {
        BinderExample {
            sentence: sentence(&[1, 1, 1]),
            entities: vec![(WordSpan::new(0, 1), 0), (WordSpan::new(1, 3), 1)],
        }
    }

    /// Two types: a gold start is out of its own type's negatives only, the positive comes first
    /// and `[CLS]` is in every row.
    #[test]
    fn rows_leave_gold_out_of_their_own_types_negatives() {
        let e = example();
        let candidates = Candidates::new(&[&e.sentence], 5, None);
        let starts = Kind::Start.rows(&[&e], &candidates, 2);
        // Start candidates: [CLS] 0, words 1, 2, 3; flat index = candidate * 2 + type.
        assert_eq!(starts.threshold, [vec![0, 4, 6], vec![1, 3, 7]]);
        assert_eq!(starts.ner, [vec![2, 0, 4, 6], vec![5, 1, 3, 7]]);
        let ends = Kind::End.rows(&[&e], &candidates, 2);
        assert_eq!(ends.ner, [vec![2, 0, 4, 6], vec![7, 1, 3, 5]]);
        // Spans: [CLS], (0,1) (0,2) (0,3) (1,2) (1,3) (2,3): (1,3) is type 1's, a type-0
        // negative.
        let spans = Kind::Span.rows(&[&e], &candidates, 2);
        assert_eq!(spans.ner[0], [2, 0, 4, 6, 8, 10, 12]);
        assert_eq!(spans.ner[1], [11, 1, 3, 5, 7, 9, 13]);
        assert_eq!(spans.threshold.len(), 2);
    }

    /// Nested mentions of one type that share a start word: a start row each (the reference's
    /// one row per mention), and neither end is a negative of the other's row.
    #[test]
    fn nested_mentions_get_a_row_each() {
        let e = BinderExample {
            sentence: sentence(&[1, 1, 1]),
            entities: vec![(WordSpan::new(0, 1), 0), (WordSpan::new(0, 2), 0)],
        };
        let candidates = Candidates::new(&[&e.sentence], 5, None);
        let starts = Kind::Start.rows(&[&e], &candidates, 1);
        assert_eq!(starts.ner, [vec![1, 0, 2, 3], vec![1, 0, 2, 3]]);
        let ends = Kind::End.rows(&[&e], &candidates, 1);
        assert_eq!(ends.ner, [vec![1, 0, 3], vec![2, 0, 3]]);
        assert_eq!(ends.threshold, [vec![0, 3]]);
    }

    #[test]
    fn contrastive_is_the_mean_negative_log_softmax_of_the_first() -> Result<()> {
        let scores = Tensor::new(&[[1f32], [3.0]], &Device::Cpu)?;
        let one = contrastive(&scores, &[vec![0, 1]])?.to_scalar::<f32>()?;
        assert!((one - (1.0 + 2f32.exp()).ln()).abs() < 1e-5);
        // Rows of different lengths: the short one is padded with a score that weighs nothing.
        let two = contrastive(&scores, &[vec![0], vec![1, 0]])?.to_scalar::<f32>()?;
        assert!((two - (1.0 + (-2f32).exp()).ln() / 2.0).abs() < 1e-5);
        assert_eq!(contrastive(&scores, &[])?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    #[test]
    fn the_loss_weighs_its_parts_and_reaches_every_parameter() -> Result<()> {
        let (varmap, model) = tiny();
        let device = Device::Cpu;
        let descriptions = vec![vec![1, 5, 6, 2], vec![1, 7, 8, 9, 2]];
        let task = BinderLoss {
            model: &model,
            descriptions: &descriptions,
            device: &device,
        };
        let examples = vec![
            example(),
            BinderExample {
                sentence: sentence(&[2, 1]),
                entities: vec![(WordSpan::new(0, 2), 0)],
            },
        ];
        let rng = crate::DropoutRng::new(1);
        let losses = task.loss(&examples, &[0, 1], &mut |_| 0, &Mode::Train(&rng))?;
        let part = |i: usize| losses.parts[i].1.to_scalar::<f32>().unwrap() as f64;
        let ner = 0.2 * part(0) + 0.2 * part(1) + 0.6 * part(2);
        let total = losses.total.to_scalar::<f32>()? as f64;
        assert!((total - (0.5 * ner + 0.5 * part(3))).abs() < 1e-5);
        assert!(part(0) > 0.0 && part(3) > 0.0);
        let grads = losses.total.backward()?;
        crate::testing::assert_every_variable_trained(&varmap, &grads, 40);
        Ok(())
    }
}
